"""`cubescope:pointtimeseries` from the command line: the README's line, STAC APIs, Zarr, bad input.

Each run is a real ``qgis_process`` with Cubescope enabled in a throwaway HOME; the table it writes
must equal what the engine gives in-process, and the truth's sky mask.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3

import pytest
from broken_cogs import catalog_with_broken_reds
from osgeo import ogr, osr
from qgis_desktop import qgis_process

from cubescope.plugin.analysis.ops.quality import rule_for, rule_for_bands
from cubescope.plugin.analysis.timeseries import read_series, series_to_rows
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.zarr_reader import ZarrReader
from cubescope.plugin.demo.truth import date_index

#: The README's example, word for word but for the demo cube's location and the output file.
README_POINTS = ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"forest"},'
                 '"geometry":{"type":"Point","coordinates":[24.0025633,45.5085915]}},{"type":"Feature",'
                 '"properties":{"name":"clear-cut"},"geometry":{"type":"Point","coordinates":[23.9923102,45.5081393]}}]}')
README_ARGS = ("run", "cubescope:pointtimeseries", "--", "SOURCE={catalog}", "COLLECTION=demo-s2-l2a",
               "BANDS=red,nir,ndvi", "POINTS={points}", "ID_FIELD=name", "START=2023-01-01", "END=2023-12-31",
               "OUTPUT={output}")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("qgis-home")
    enabled = qgis_process(home, "plugins", "enable", "cubescope")
    assert enabled.returncode == 0, enabled.stderr[-2000:]
    return home


def _table(path, layer: str | None = None) -> tuple[list[dict], dict[str, str]]:
    dataset = ogr.Open(str(path))
    assert dataset is not None, path
    lyr = dataset.GetLayerByName(layer) if layer else dataset.GetLayer(0)
    definition = lyr.GetLayerDefn()
    types = {definition.GetFieldDefn(i).GetName(): definition.GetFieldDefn(i).GetTypeName()
             for i in range(definition.GetFieldCount())}
    rows = [{name: feature.GetField(name) for name in types} for feature in lyr]
    assert lyr.GetGeomType() == ogr.wkbNone
    return rows, types


def _run(home, *args: str):
    run = qgis_process(home, *args)
    return run, run.stdout + run.stderr


def _expected(reader, points: dict[str, tuple[float, float]], bands, rule) -> list[dict]:
    rows = []
    for point_id, (lon, lat) in points.items():
        rows.extend(series_to_rows(read_series(reader, lon, lat, bands, rule), point_id))
    return rows


def test_the_readme_command_line(home, demo_cube, catalog_items, truth, tmp_path):
    points = tmp_path / "points.geojson"
    points.write_text(README_POINTS)
    output = tmp_path / "timeseries.gpkg"
    args = [a.format(catalog=demo_cube.catalog, points=points, output=output) for a in README_ARGS]
    run, log = _run(home, *args)
    assert run.returncode == 0, log[-3000:]
    rows, types = _table(output)
    assert types == {"point_id": "String", "datetime": "String", "item_id": "String", "red": "Real", "nir": "Real",
                     "ndvi": "Real", "valid": "Integer"}
    in_2023 = [i for i in catalog_items if i["properties"]["datetime"] < "2024"]
    geo = json.loads(README_POINTS)["features"]
    coords = {f["properties"]["name"]: tuple(f["geometry"]["coordinates"]) for f in geo}
    with CogStackReader(in_2023) as reader:
        expected = _expected(reader, coords, ["red", "nir", "ndvi"], rule_for(in_2023[0]))
    assert rows == expected
    assert {r["point_id"] for r in rows} == {"forest", "clear-cut"}
    assert all(r["datetime"].startswith("2023-") and r["datetime"].endswith("Z") for r in rows)
    # the clear-cut on 2023-10-12 at one point and not the other
    cut = [r["ndvi"] for r in rows if r["point_id"] == "clear-cut" and r["valid"]]
    forest = [r["ndvi"] for r in rows if r["point_id"] == "forest" and r["valid"]]
    assert min(cut) < 0.35 < 0.6 < min(forest)
    assert "Quality rule: Sentinel-2 SCL" in log


def _gpkg_points(path, epsg: int, points: dict[str, tuple[float, float]]) -> None:
    """Points in a projected CRS: the algorithm must bring them to lon/lat itself."""
    srs, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    wgs84.ImportFromEPSG(4326)
    for s in (srs, wgs84):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_srs = osr.CoordinateTransformation(wgs84, srs)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("points", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("site", ogr.OFTString))
    for name, (lon, lat) in points.items():
        x, y = to_srs.TransformPoint(lon, lat)[:2]
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("site", name)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    dataset = None


def test_a_stac_api_with_dates_and_cloud_cover_and_points_in_another_crs(home, stac_api_light, catalog_items, truth,
                                                                         tmp_path):
    p = truth["points"]["forest_overlap"]
    points = tmp_path / "points.gpkg"
    _gpkg_points(points, 3857, {"overlap": (p["lon"], p["lat"])})
    output = tmp_path / "api.gpkg"
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={stac_api_light.url}",
                    "COLLECTION=demo-s2-l2a", "BANDS=B04,scl,evi", f"POINTS={points}", "ID_FIELD=site",
                    "START=2023-06-01", "END=2024-03-31", "MAX_CLOUD=30", f"OUTPUT={output}")
    assert run.returncode == 0, log[-3000:]
    rows, types = _table(output)
    assert list(types) == ["point_id", "datetime", "item_id", "B04", "scl", "evi", "valid"]
    chosen = [i for i in catalog_items if "2023-06-01" <= i["properties"]["datetime"][:10] <= "2024-03-31"
              and i["properties"]["eo:cloud_cover"] <= 30]
    with CogStackReader(chosen) as reader:
        expected = _expected(reader, {"overlap": (p["lon"], p["lat"])}, ["B04", "scl", "evi"], rule_for(chosen[0]))
    assert rows == expected and len(rows) > 10
    for row in rows:
        index = date_index(truth, row["datetime"])
        assert truth["s2"]["datetimes"][index] == row["datetime"]
        assert row["valid"] == (row["scl"] in (4, 5, 6, 7, 11))


def test_a_zarr_cube_and_a_user_quality_rule(home, demo_cube, truth, nginx_server, tmp_path):
    zarr = demo_cube.root / "zarr" / "demo-s2-l2a-34TGR.zarr"
    p = truth["points"]["forest_a"]
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]}}]}))
    with ZarrReader(str(zarr)) as reader:
        lonlat = {"0": (p["lon"], p["lat"])}  # without ID_FIELD the point id is the feature id (GeoJSON: from 0)
        expected = _expected(reader, lonlat, ["red", "ndvi"], rule_for_bands(reader.variable_attrs()))
    assert len(expected) == 37 and 0 < sum(r["valid"] for r in expected) < 37
    for n, source in enumerate((zarr, f"{nginx_server.url}/zarr/demo-s2-l2a-34TGR.zarr")):
        output = tmp_path / f"zarr-{n}.gpkg"
        run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={source}", "BANDS=red,ndvi",
                        f"POINTS={points}", f"OUTPUT={output}")
        assert run.returncode == 0, log[-3000:]
        assert _table(output)[0] == expected, source

    # scl 5 and 6 (not vegetated, water) as the only clear classes: a forest pixel is never "valid"
    output = tmp_path / "zarr-rule.gpkg"
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={zarr}", "BANDS=red",
                    f"POINTS={points}", "QUALITY_BAND=scl", "CLEAR_VALUES=5,6", "START=2024-01-01",
                    f"OUTPUT={output}")
    assert run.returncode == 0, log[-3000:]
    rows, _ = _table(output)
    assert len(rows) == sum(d >= "2024" for d in truth["s2"]["datetimes"])
    assert {r["valid"] for r in rows} == {0}
    assert [math.isfinite(r["red"]) for r in rows].count(True) == len(rows)


def test_bad_bands_fail_with_the_bands_that_exist(home, demo_cube, tmp_path):
    points = tmp_path / "points.geojson"
    points.write_text(README_POINTS)
    common = ("COLLECTION=demo-s2-l2a", f"POINTS={points}", f"OUTPUT={tmp_path / 'x.gpkg'}")
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={demo_cube.catalog}",
                    "BANDS=red,B99", *common)
    assert run.returncode != 0
    assert "No band 'B99' in these items; available bands: " in log and "swir16" in log and "scl" in log
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={demo_cube.catalog}",
                    "BANDS=nbr", *common)
    assert run.returncode != 0
    assert "NBR needs the 'swir22' band (common name), which is not available" in log


def _rows_in(path) -> int:
    """Rows in the file, read back by another reader than the one that wrote it."""
    if path.suffix == ".gpkg":
        with sqlite3.connect(path) as db:
            (table,) = db.execute("SELECT table_name FROM gpkg_contents").fetchone()
            return db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return len(list(csv.DictReader(handle)))
    return len(json.loads(path.read_text())["features"])


def test_every_output_format_holds_the_rows_reported_when_reads_fail(home, demo_cube, nginx_server, tmp_path):
    """Three red COGs cannot be read (HTTP 404, a PNG named red.tif, truncated): each is reported by URL
    and cause, counted in SKIPPED_INPUTS (and the GeoPackage's metadata), and every format holds
    exactly the rows the run reports (a GeoPackage had no table at all when any read failed)."""
    catalog, causes = catalog_with_broken_reds(demo_cube, tmp_path / "broken",
                                               gone_url=f"{nginx_server.url}/stac/no-such-file.tif")
    points = tmp_path / "points.geojson"
    points.write_text(README_POINTS)
    counts = set()
    for suffix in ("gpkg", "csv", "geojson"):
        output = tmp_path / f"series.{suffix}"
        run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={catalog}",
                        "COLLECTION=demo-s2-l2a", "BANDS=red,ndvi", f"POINTS={points}", "ID_FIELD=name",
                        "START=2023-01-01", "END=2023-06-30", f"OUTPUT={output}")
        assert run.returncode == 0, log[-3000:]
        reported = re.search(r"Wrote (\d+) rows for 2 points", log)
        assert reported, log[-3000:]
        assert _rows_in(output) == int(reported.group(1)) > 10, suffix
        counts.add(int(reported.group(1)))
        for url, cause in causes.items():
            assert f"Left out {url}: {cause}" in log, (url, log[-3000:])
        assert "3 inputs could not be read and were left out" in log
        assert re.search(r"SKIPPED_INPUTS:\s+3\b", log) and re.search(rf"ROWS:\s+{reported.group(1)}\b", log)
    assert len(counts) == 1, "the same rows whatever the format"
    dataset = ogr.Open(str(tmp_path / "series.gpkg"))  # kept while its layer is used (GDAL would crash)
    layer = dataset.GetLayer(0)
    assert layer.GetMetadataItem("CUBESCOPE_SKIPPED_INPUTS") == "3"
    assert set(causes) <= {line.split(": ", 1)[0] for line in layer.GetMetadataItem("CUBESCOPE_SKIPPED").splitlines()}


def test_fail_on_bad_input_stops_at_the_first_unreadable_cog(home, demo_cube, nginx_server, tmp_path):
    catalog, causes = catalog_with_broken_reds(demo_cube, tmp_path / "broken",
                                               gone_url=f"{nginx_server.url}/stac/no-such-file.tif")
    points = tmp_path / "points.geojson"
    points.write_text(README_POINTS)
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE={catalog}", "COLLECTION=demo-s2-l2a",
                    "BANDS=red", f"POINTS={points}", "START=2023-01-01", "END=2023-06-30",
                    f"OUTPUT={tmp_path / 'x.gpkg'}", "FAIL_ON_BAD_INPUT=true")
    assert run.returncode != 0
    stopped = re.search(r"Stopped at the first input that cannot be read \(FAIL_ON_BAD_INPUT is set\): (\S+): (.+)",
                        log)
    assert stopped, log[-3000:]
    assert stopped.group(1) in causes and stopped.group(2).startswith(causes[stopped.group(1)])
    assert "Traceback" not in log


#: pointtimeseries on a WTSS coverage, as the README writes it (the service's URL after "wtss:").
WTSS_ARGS = ("run", "cubescope:pointtimeseries", "--", "SOURCE=wtss:{url}", "COLLECTION=demo-s2-l2a",
             "BANDS=red,nir,ndvi", "POINTS={points}", "ID_FIELD=name", "START=2023-01-01", "END=2023-12-31",
             "OUTPUT={output}")


def test_a_wtss_coverage_as_source(home, wtss_server, catalog_items, truth, tmp_path):
    """The README's WTSS line: the table equals the STAC table of the same pixels (one tile each)."""
    coords = {name: (truth["points"][name]["lon"], truth["points"][name]["lat"])
              for name in ("forest_a", "grassland_b")}
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name}, "geometry": {"type": "Point", "coordinates": list(xy)}}
        for name, xy in coords.items()]}))
    output = tmp_path / "wtss.gpkg"
    before = len(wtss_server.requests)
    run, log = _run(home, *[a.format(url=wtss_server.url, points=points, output=output) for a in WTSS_ARGS])
    assert run.returncode == 0, log[-3000:]
    rows, types = _table(output)
    assert list(types) == ["point_id", "datetime", "item_id", "red", "nir", "ndvi", "valid"]
    in_2023 = [i for i in catalog_items if i["properties"]["datetime"] < "2024"]
    with CogStackReader(in_2023) as reader:
        stac = _expected(reader, coords, ["red", "nir", "ndvi"], rule_for(in_2023[0]))
    mine = [{k: v for k, v in row.items() if k != "item_id"} for row in rows]
    assert mine == [{k: v for k, v in row.items() if k != "item_id"} for row in stac] and len(rows) > 10
    assert {r["item_id"] for r in rows} == {r["datetime"] for r in rows}, "a WTSS date has no item: its time"
    assert "Quality rule: Sentinel-2 SCL" in log
    asked = [r for r in wtss_server.requests[before:] if r[1] == "/demo-s2-l2a/timeseries"]
    assert asked and all(r[3]["end_datetime"] <= "2023-12-31T23:59:59Z" for r in asked)


def test_a_wtss_source_without_its_coverage_says_so(home, wtss_server, tmp_path):
    points = tmp_path / "points.geojson"
    points.write_text(README_POINTS)
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE=wtss:{wtss_server.url}",
                    "BANDS=red", f"POINTS={points}", f"OUTPUT={tmp_path / 'none.gpkg'}")
    assert run.returncode != 0 and "COLLECTION is required for a WTSS source" in log
    run, log = _run(home, "run", "cubescope:pointtimeseries", "--", f"SOURCE=wtss:{wtss_server.url}",
                    "COLLECTION=S2-16D-2", "BANDS=red", f"POINTS={points}", f"OUTPUT={tmp_path / 'none.gpkg'}")
    assert run.returncode != 0 and f"{wtss_server.url}/S2-16D-2" in log and "404" in log
