"""ESA EOPF Sentinel-2 L2A Zarr products as sources (issue 27, Zarr v2): the demo's EOPF products of tile
34TGR, their hrefs inside the Zarr hierarchy mapped to GDAL for local, HTTP (nginx, by ranges) and S3
(moto) stores, bands found by name, id and common name (through a group asset's ``bands`` too), and
point time series and median composites equal to the COG demo's of the same dates, hence to the truth.
Real files and servers throughout."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from demo_series import check_against_truth
from osgeo import gdal, osr
from qgis.core import QgsRasterLayer
from qgis_desktop import qgis_process
from servers.process import run_checked, server_env, servers_bin
from servers.s3 import UPLOADER

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import run
from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL, rule_for
from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.layer_plan import FALSE_COLOUR, TRUE_COLOUR, plan_layers
from cubescope.plugin.stac.bands import AmbiguousBand, BandNotFound, quality_band, resolve_band
from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.gdal_env import opened, read_array
from cubescope.plugin.stac.hrefs import gdal_source
from cubescope.plugin.stac.http import local_fetcher, requests_fetcher
from cubescope.plugin.stac.items import item_self_href
from cubescope.plugin.stac.object_store import ObjectStoreFetcher
from cubescope.plugin.stac.s3_options import S3Options
from cubescope.plugin.stac.sources import Source, SourceKind
from cubescope.plugin.stac.zarr_hrefs import split_zarr_href

EOPF, COG = "demo-eopf-s2-l2a", "demo-s2-l2a"
BUCKET = "cubescope-eopf"
WEST = (732320.0, 5042880.0, 733600.0, 5044160.0)
"""128 x 128 px of tile 34TGR west of the other tile (no second tile to fuse in the COG demo)."""
SUMMER = Period(datetime(2023, 6, 1), datetime(2023, 8, 31))
BANDS = ["blue", "green", "red", "nir", "swir16", "scl"]
B08 = "measurements/reflectance/r10m/b08"


def search(source: Source, fetch, collection: str) -> list[dict]:
    query = SearchQuery(collections=(collection,), bbox=None, start=None, end=None, max_cloud=None)
    return [item for page in CatalogClient(source, fetch).search(query) for item in page.items]


@pytest.fixture(scope="module")
def eopf_items(demo_cube) -> list[dict]:
    return search(Source("eopf", SourceKind.STATIC, str(demo_cube.eopf_catalog)), local_fetcher(), EOPF)


@pytest.fixture(scope="module")
def cog_items(demo_cube, eopf_items) -> list[dict]:
    """The COG demo's items of tile 34TGR on the EOPF products' dates."""
    days = {item["properties"]["datetime"] for item in eopf_items}
    found = search(Source("demo", SourceKind.STATIC, str(demo_cube.catalog)), local_fetcher(), COG)
    return [item for item in found if item["properties"]["datetime"] in days and item["id"].endswith("_T34TGR")]


def product_path(item: dict) -> Path:
    return Path(split_zarr_href(item["assets"]["B08_10m"]["href"])[0])


# ---- the products ---------------------------------------------------------------------------------

def test_the_products_follow_the_published_structure(demo_cube, eopf_items, truth):
    assert len(eopf_items) == 6 and all("_N0509_R093_T34TGR_" in item["id"] for item in eopf_items)
    store = product_path(eopf_items[0])
    assert store.name == f"{eopf_items[0]['id']}.zarr"
    metadata = json.loads((store / ".zmetadata").read_text())["metadata"]
    for array in ("measurements/reflectance/r10m/b02", B08, "measurements/reflectance/r20m/b11",
                  "conditions/mask/l2a_classification/r20m/scl", "measurements/reflectance/r10m/x"):
        assert f"{array}/.zarray" in metadata, array
    zarray, zattrs = metadata[f"{B08}/.zarray"], metadata[f"{B08}/.zattrs"]
    assert (zarray["zarr_format"], zarray["dtype"], zarray["fill_value"]) == (2, "<u2", 0)
    assert (zattrs["scale_factor"], zattrs["add_offset"], zattrs["proj:epsg"]) == (0.0001, -0.1, 32634)
    assert zattrs["_eopf_attrs"]["units"] == "digital_counts" and zattrs["_ARRAY_DIMENSIONS"] == ["y", "x"]
    assert metadata["conditions/mask/l2a_classification/r20m/scl/.zarray"]["dtype"] == "|u1"
    assert metadata[".zattrs"]["other_metadata"]["horizontal_CRS_code"] == "EPSG:32634"
    item = eopf_items[0]
    assert item["assets"]["SR_10m"]["href"].endswith(".zarr/measurements/reflectance/r10m")
    assert item["assets"]["SR_10m"]["type"] == "application/vnd+zarr"
    assert [b["name"] for b in item["assets"]["SR_10m"]["bands"]] == ["B02", "B03", "B04", "B08"]
    assert item["assets"]["B08_10m"]["href"].endswith(f".zarr/{B08}")


def test_gdal_reads_an_eopf_array_on_the_cog_grid_with_its_scale_and_fill_value(eopf_items, cog_items):
    for band, key, cog_key in (("nir", "B08_10m", "nir"), ("swir16", "B11_20m", "swir16"), ("scl", "SCL_20m", "scl")):
        item = eopf_items[0]
        source = gdal_source(item["assets"][key]["href"])
        inner = split_zarr_href(item["assets"][key]["href"])[1]
        assert source.path.startswith('ZARR:"') and source.path.endswith(f'.zarr":/{inner}'), source.path
        cog = next(i for i in cog_items if i["properties"]["datetime"] == item["properties"]["datetime"])
        expected = gdal.Open(cog["assets"][cog_key]["href"])
        with opened(source) as dataset:
            assert dataset.GetGeoTransform() == expected.GetGeoTransform(), band
            # Their CRS is in attributes GDAL reads from 3.13 on (proj:epsg); before, the item supplies it.
            crs = osr.SpatialReference(wkt=dataset.GetProjection()) if dataset.GetProjection() else None
            assert crs is None or crs.GetAuthorityCode(None) == "32634", dataset.GetProjection()
            pixels = read_array(dataset.GetRasterBand(1), source.description)
            if band != "scl":
                assert (dataset.GetRasterBand(1).GetScale(), dataset.GetRasterBand(1).GetOffset()) == (0.0001, -0.1)
        assert np.array_equal(pixels, expected.GetRasterBand(1).ReadAsArray()) and pixels.any()


# ---- hrefs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("href", "expected"), [
    ("/d/S2C_MSIL2A_x.zarr/measurements/reflectance/r10m/b08", ("/d/S2C_MSIL2A_x.zarr", B08)),
    ("https://h/p/x.zarr/measurements/reflectance/r10m/", ("https://h/p/x.zarr", "measurements/reflectance/r10m")),
    ("s3://b/k/x.ZARR/conditions/mask/l2a_classification/r20m/scl",
     ("s3://b/k/x.ZARR", "conditions/mask/l2a_classification/r20m/scl")),
    ("https://h/p/x.zarr", None), ("https://h/p/x.zarr/.zmetadata", None), ("https://h/p/x.zarr/zarr.json", None),
    ("https://h/p/x.zarr/r10m/b08?sig=abc", None), ("https://h/p/red.tif", None), ("/d/cube.zarr/", None),
])
def test_split_zarr_href(href, expected):
    assert split_zarr_href(href) == expected


def test_a_local_href_inside_a_store_maps_to_the_zarr_driver(tmp_path):
    source = gdal_source(f"../products/x.zarr/{B08}", base=str(tmp_path / "items" / "i" / "i.json"))
    assert source.path == f'ZARR:"{tmp_path / "items" / "products" / "x.zarr"}":/{B08}'
    assert gdal_source(f"file://{tmp_path}/x.zarr/{B08}").path == f'ZARR:"{tmp_path}/x.zarr":/{B08}'


def test_http_hrefs_keep_the_sources_headers_and_options_on_the_store(tmp_path):
    headers = {"Authorization": "Bearer t0ken"}
    href = f"https://data.example.org/p/x.zarr/{B08}"
    source = gdal_source(href, auth_headers=headers, auth_scope="https://stac.example.org/")
    assert source.path == f'ZARR:"/vsicurl/https://data.example.org/p/x.zarr":/{B08}'
    assert source.config["GDAL_HTTP_HEADERS"] == "Authorization: Bearer t0ken"
    assert source.config["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    away = gdal_source(f"https://cdn.elsewhere.net/p/x.zarr/{B08}", auth_headers=headers,
                       auth_scope="https://stac.example.org/")
    assert "GDAL_HTTP_HEADERS" not in away.config, "another site's asset never gets the source's secret"
    with_file = gdal_source(href, auth_headers=headers, header_file=str(tmp_path / "h.txt"),
                            auth_scope="https://stac.example.org/")
    assert with_file.path.startswith('ZARR:"/vsicurl?header_file=') and with_file.path.endswith(f'":/{B08}')
    assert "t0ken" not in repr(with_file) and "t0ken" not in with_file.path


def test_s3_hrefs_map_to_vsis3_with_the_endpoint_and_keys():
    s3 = S3Options(endpoint="127.0.0.1:9000", region="eu-central-1", https=False, virtual_hosting=False)
    keys = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    source = gdal_source(f"s3://bucket/p/x.zarr/{B08}", s3=s3, credentials=keys)
    assert source.path == f'ZARR:"/vsis3/bucket/p/x.zarr":/{B08}'
    assert source.config["AWS_S3_ENDPOINT"] == "127.0.0.1:9000" and source.config["AWS_HTTPS"] == "NO"
    assert source.config["AWS_SECRET_ACCESS_KEY"] == "s3cr3t" and "s3cr3t" not in repr(source)


# ---- bands ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "key", "array"), [
    ("nir", "B08_10m", "r10m/b08"), ("b08", "B08_10m", "r10m/b08"), ("B08", "B08_10m", "r10m/b08"),
    ("B08_10m", "B08_10m", "r10m/b08"), ("red", "B04_10m", "r10m/b04"), ("swir16", "B11_20m", "r20m/b11"),
    ("swir1", "B11_20m", "r20m/b11"),
])
def test_bands_by_id_common_name_and_key(eopf_items, name, key, array):
    band = resolve_band(eopf_items[0], name)
    assert (band.asset_key, band.scale, band.offset, band.nodata, band.resolution) == \
        (key, 0.0001, -0.1, 0.0, 10.0 if "r10m" in array else 20.0)
    assert band.href.endswith(f"measurements/reflectance/{array}")


@pytest.mark.parametrize(("name", "key"), [("nir", "SR_10m:b08"), ("b08", "SR_10m:b08"), ("B08", "SR_10m:b08"),
                                           ("blue", "SR_10m:b02"), ("swir16", "SR_20m:b11")])
def test_bands_of_a_group_asset_are_its_arrays(eopf_items, name, key):
    """An item with the groups only (SR_10m with its `bands`): the band is the group's array."""
    item = {**eopf_items[0], "assets": {k: a for k, a in eopf_items[0]["assets"].items()
                                        if k.startswith("SR_") or k in ("SCL_20m", "product")}}
    band = resolve_band(item, name)
    assert band.asset_key == key and band.href == f"{item['assets'][key.split(':')[0]]['href']}/{key.split(':')[1]}"
    with pytest.raises(BandNotFound):
        resolve_band(item, "rededge")
    both = {**item, "assets": {**item["assets"], "SR_20m": {**item["assets"]["SR_20m"], "bands": [
        *item["assets"]["SR_20m"]["bands"], *item["assets"]["SR_10m"]["bands"]]}}}
    assert resolve_band(both, "blue").asset_key == "SR_10m:b02", "the finer group of two holding the band"
    assert not isinstance(resolve_band(both, "blue"), AmbiguousBand)


def test_the_quality_band_is_the_products_scene_classification(eopf_items):
    assert quality_band(eopf_items[0]).asset_key == "SCL_20m"
    assert rule_for(eopf_items[0]).clear_values == SENTINEL2_SCL.clear_values
    untitled = {**eopf_items[0], "assets": {**eopf_items[0]["assets"], "SCL_20m": {
        k: v for k, v in eopf_items[0]["assets"]["SCL_20m"].items() if k not in ("title", "classification:classes")}}}
    assert rule_for(untitled).band == "SCL_20m" and rule_for(untitled).clear_values == SENTINEL2_SCL.clear_values


# ---- layers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bands", [("nir",), TRUE_COLOUR, FALSE_COLOUR, ("swir16", "nir", "red")])
def test_layers_are_georeferenced_with_the_items_crs(qgis_app, eopf_items, cog_items, demo_cube, tmp_path, bands):
    """One band, true or false colour, across the 10 m and 20 m groups: a VRT giving the item's CRS."""
    source = Source("eopf", SourceKind.STATIC, str(demo_cube.eopf_catalog))
    plans, problems = plan_layers(eopf_items[:2], list(bands), source, tmp_path / "vrt", stack=True)
    expected, _ = plan_layers(cog_items[:2], list(bands), Source("demo", SourceKind.STATIC, str(demo_cube.catalog)),
                              tmp_path / "cog-vrt", stack=True)
    assert problems == [] and len(plans) == 2 and plans[0].end == plans[1].start, "a stack for the time slider"
    for plan, cog in zip(plans, expected):
        assert plan.path.endswith(".vrt") and plan.hrefs[0].endswith(".zarr/" + {
            "nir": B08, "red": "measurements/reflectance/r10m/b04", "swir16": "measurements/reflectance/r20m/b11",
        }[bands[0]])
        got, want = gdal.Open(plan.path), gdal.Open(cog.path)
        assert got.GetSpatialRef().GetAuthorityCode(None) == "32634"
        assert got.GetGeoTransform() == want.GetGeoTransform() and got.RasterCount == len(bands)
        assert np.array_equal(got.ReadAsArray(), want.ReadAsArray())
        assert plan.stretch == cog.stretch
        layer = QgsRasterLayer(plan.path, plan.name, "gdal")
        assert layer.isValid() and layer.crs().authid() == "EPSG:32634" and layer.bandCount() == len(bands)


# ---- time series and composites -------------------------------------------------------------------

def _series(items, truth, point, **reader_options):
    p = truth["points"][point]
    with CogStackReader(items, **reader_options) as reader:
        series = read_series(reader, p["lon"], p["lat"], BANDS, rule_for(items[0]))
    assert series.warnings == [] and len(series.observations) == 6
    return series


@pytest.mark.parametrize("point", ["forest_a", "water_a"])
def test_a_point_series_equals_the_cog_demo_and_the_truth(eopf_items, cog_items, truth, demo_cube, point):
    eopf, cog = _series(eopf_items, truth, point), _series(cog_items, truth, point)
    for got, expected in zip(eopf.observations, cog.observations):
        assert got.datetime == expected.datetime and got.clear == expected.clear and got.quality == expected.quality
        assert np.array_equal([got.values[b] for b in BANDS], [expected.values[b] for b in BANDS], equal_nan=True)
        check_against_truth(got, truth, demo_cube.root, point, "34TGR")
    assert any(o.valid for o in eopf.observations) and not all(o.valid for o in eopf.observations)


def test_items_with_group_assets_only_give_the_same_series(eopf_items, truth):
    """SR_10m/SR_20m and SCL_20m only: each band read from its group's array, scaled as the array says."""
    groups = [{**item, "assets": {k: a for k, a in item["assets"].items() if k.startswith("SR_") or k == "SCL_20m"}}
              for item in eopf_items]
    got, expected = _series(groups, truth, "forest_a"), _series(eopf_items, truth, "forest_a")
    assert [o.values for o in got.observations] == [o.values for o in expected.observations]
    assert [o.clear for o in got.observations] == [o.clear for o in expected.observations]


def test_a_composite_from_items_with_group_assets_only_equals_the_full_ones(demo_cube, tmp_path):
    """No B08_10m: the arrays' own scale_factor, add_offset and fill value (read once, at planning)."""
    copy = tmp_path / "eopf"
    shutil.copytree(demo_cube.root / "eopf", copy)
    for path in copy.glob(f"{EOPF}/*/*.json"):
        item = json.loads(path.read_text())
        item["assets"] = {k: a for k, a in item["assets"].items() if k.startswith("SR_") or k == "SCL_20m"}
        path.write_text(json.dumps(item))
    full = _composite(demo_cube, tmp_path / "full.tif", str(demo_cube.eopf_catalog), EOPF)
    assert _composite(demo_cube, tmp_path / "groups.tif", str(copy / "catalog.json"), EOPF).tobytes() == full.tobytes()


def _composite(demo_cube, out: Path, source: str, collection: str) -> np.ndarray:
    request = AnalysisRequest(source=source, collection=collection, operation="composite",
                              bands=("blue", "red", "nir", "swir16", "NDVI"), periods=(SUMMER,), output=str(out),
                              extent=WEST, extent_crs="EPSG:32634", extra_bands=True)
    dataset = gdal.Open(str(run(request)))
    assert dataset.GetMetadata()["CUBESCOPE_DATES"].count(",") == 5
    return dataset.ReadAsArray()


def test_a_median_composite_equals_the_cog_demos(demo_cube, tmp_path):
    eopf = _composite(demo_cube, tmp_path / "eopf.tif", str(demo_cube.eopf_catalog), EOPF)
    cog = _composite(demo_cube, tmp_path / "cog.tif", str(demo_cube.catalog), COG)
    assert eopf.tobytes() == cog.tobytes()
    clear, total = eopf[-2], eopf[-1]  # CLEAROB, TOTALOB
    assert (total == 6).all() and (clear < total).any(), "the scene classification masked some observations"


@pytest.mark.parametrize(("crs", "resolution"), [("EPSG:32635", 10.0), ("EPSG:4326", 0.0002)])
def test_a_reprojected_composite_equals_the_cog_demos(demo_cube, tmp_path, crs, resolution):
    """Onto another grid the arrays, which have no CRS GDAL reads, are warped from the item's CRS."""
    def composite(name: str, source: str, collection: str) -> np.ndarray:
        request = AnalysisRequest(source=source, collection=collection, operation="composite",
                                  bands=("red", "nir", "swir16"), periods=(SUMMER,), output=str(tmp_path / name),
                                  extent=WEST, extent_crs="EPSG:32634", crs=crs, resolution=resolution)
        return gdal.Open(str(run(request))).ReadAsArray()

    eopf = composite("eopf.tif", str(demo_cube.eopf_catalog), EOPF)
    assert eopf.tobytes() == composite("cog.tif", str(demo_cube.catalog), COG).tobytes()
    assert np.isfinite(eopf).mean() > 0.5


def test_over_http_the_series_and_composite_equal_the_local_ones(demo_cube, nginx_server, eopf_items, truth,
                                                                 tmp_path):
    url = f"{nginx_server.url}/eopf/catalog.json"
    with requests_fetcher() as http:
        remote = search(Source("eopf over http", SourceKind.STATIC, url), http, EOPF)
    assert split_zarr_href(remote[0]["assets"]["B08_10m"]["href"])[0].startswith(nginx_server.url)
    local_series, remote_series = _series(eopf_items, truth, "forest_a"), _series(remote, truth, "forest_a")
    assert [o.values for o in remote_series.observations] == [o.values for o in local_series.observations]
    local = _composite(demo_cube, tmp_path / "local.tif", str(demo_cube.eopf_catalog), EOPF)
    assert _composite(demo_cube, tmp_path / "http.tif", url, EOPF).tobytes() == local.tobytes()
    served = (nginx_server.tmp / "access.log").read_text()
    assert " 206 " in served or "/r10m/b08/0.0" in served, "the chunks came from nginx"


@pytest.fixture(scope="module")
def eopf_bucket(s3_server, demo_cube, tmp_path_factory):
    root = demo_cube.root.resolve()
    files = sorted(p for p in (root / "eopf").rglob("*") if p.is_file())
    tmp = tmp_path_factory.mktemp("eopf-bucket")
    (tmp / "files.txt").write_text("\n".join(f.relative_to(root).as_posix() for f in files) + "\n")
    run_checked([servers_bin("python"), UPLOADER, s3_server.url, BUCKET, root, tmp / "files.txt"],
                "uploading the EOPF products", env=server_env(**s3_server.aws_env()), cwd=tmp)
    return s3_server


def test_from_a_bucket_the_arrays_and_the_series_equal_the_local_ones(eopf_bucket, eopf_items, truth):
    s3 = S3Options(endpoint=eopf_bucket.endpoint, region=eopf_bucket.region, https=False, virtual_hosting=False)
    keys = {"AWS_ACCESS_KEY_ID": eopf_bucket.access_key, "AWS_SECRET_ACCESS_KEY": eopf_bucket.secret_key}
    source = Source("eopf in a bucket", SourceKind.STATIC, f"s3://{BUCKET}/eopf/catalog.json", s3=s3)
    items = search(source, ObjectStoreFetcher(local_fetcher(), s3, keys), EOPF)
    item = next(i for i in items if i["id"] == eopf_items[0]["id"])
    assert item_self_href(item).startswith(f"s3://{BUCKET}/eopf/{EOPF}/")
    mapped = gdal_source(item["assets"]["B08_10m"]["href"], s3=s3, credentials=keys)
    assert mapped.path == f'ZARR:"/vsis3/{BUCKET}/eopf/products/{item["id"]}.zarr":/{B08}'
    with opened(mapped) as dataset:
        pixels = read_array(dataset.GetRasterBand(1), mapped.description)
    local = gdal_source(eopf_items[0]["assets"]["B08_10m"]["href"])
    with opened(local) as dataset:
        assert np.array_equal(pixels, read_array(dataset.GetRasterBand(1), local.description))
    remote = _series(items, truth, "forest_a", s3=s3, credentials=keys)
    assert [o.values for o in remote.observations] == [o.values for o in _series(eopf_items, truth, "forest_a")
                                                       .observations]


def test_processing_takes_the_eopf_catalog_unchanged(demo_cube, tmp_path):
    """`cubescope:composite` in a real qgis_process: the same COG from the EOPF catalog as from the COG one."""
    home = tmp_path / "home"
    home.mkdir()
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    outputs = {}
    for catalog, collection in ((demo_cube.eopf_catalog, EOPF), (demo_cube.catalog, COG)):
        out = outputs[collection] = tmp_path / f"{collection}.tif"
        done = qgis_process(home, "run", "cubescope:composite", "--", f"SOURCE={catalog}", f"COLLECTION={collection}",
                            "BANDS=red,nir,NDVI", "START=2023-06-01", "END=2023-08-31", "METHOD=0",
                            "EXTENT=732320,733600,5042880,5044160 [EPSG:32634]", "MAX_CLOUD=100", f"OUTPUT={out}")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    got, expected = gdal.Open(str(outputs[EOPF])), gdal.Open(str(outputs[COG]))
    assert got.ReadAsArray().tobytes() == expected.ReadAsArray().tobytes()
    assert got.GetMetadata()["CUBESCOPE_DATES"] == expected.GetMetadata()["CUBESCOPE_DATES"]
