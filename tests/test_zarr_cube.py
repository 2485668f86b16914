"""Zarr cubes described like collections, read locally, over nginx and from moto S3; GDAL's view agrees."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import numpy as np
import pytest
import xarray as xr
from osgeo import gdal, osr
from token_server import token_server

from cubescope.plugin.cube.zarr_compat import zarr_major
from cubescope.plugin.cube.zarr_cube import ZarrError, describe_zarr, layer_source, open_zarr_dataset
from cubescope.plugin.stac.gdal_env import opened, read_array
from cubescope.plugin.stac.hrefs import GdalSource
from cubescope.plugin.stac.s3_options import S3Options

BANDS = {"blue", "green", "red", "nir", "swir16", "scl"}
ROW, COL = 37, 201


@pytest.fixture(scope="module")
def item_times(demo_cube) -> list[datetime]:
    """Datetimes of the demo Sentinel-2 items of the tile the Zarr cube holds, from their STAC JSON."""
    folder = demo_cube.collections["demo-s2-l2a"].parent
    times = []
    for path in folder.glob("*_T34TGR/*.json"):
        text = json.loads(path.read_text())["properties"]["datetime"]
        times.append(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return sorted(times)


@pytest.fixture(scope="module")
def http_url(demo_cube, nginx_server) -> str:
    return f"{nginx_server.url}/{demo_cube.zarr.relative_to(demo_cube.root).as_posix()}"


@pytest.fixture(scope="module")
def s3_access(demo_cube, s3_server):
    key = demo_cube.zarr.relative_to(demo_cube.root).as_posix()
    options = S3Options(endpoint=s3_server.endpoint, region=s3_server.region, https=False, virtual_hosting=False)
    credentials = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    return f"s3://{s3_server.bucket}/{key}", options, credentials


def epsg(wkt: str | None) -> int | None:
    srs = osr.SpatialReference()
    assert wkt and srs.ImportFromWkt(wkt) == 0
    srs.AutoIdentifyEPSG()
    return int(srs.GetAuthorityCode(None))


def gdal_pixel_and_geotransform(source: GdalSource) -> tuple[float, tuple, tuple[int, int]]:
    with opened(source) as dataset:
        values = read_array(dataset.GetRasterBand(1), source.description)
        return float(values[ROW, COL]), dataset.GetGeoTransform(), (dataset.RasterXSize, dataset.RasterYSize)


def check_demo_description(description, item_times) -> None:
    assert {v.name for v in description.variables} == BANDS
    red = description.variable("red")
    assert red.dims == ("time", "y", "x") and red.shape == (37, 256, 256) and red.dtype == "uint16"
    assert red.attrs["scale_factor"] == pytest.approx(1e-4) and red.attrs["add_offset"] == pytest.approx(-0.1)
    assert red.attrs["_FillValue"] == 0 and "_CRS" not in red.attrs
    assert description.variable("scl").dtype == "uint8"
    assert description.dims == {"time": 37, "y": 256, "x": 256}
    assert list(description.times) == item_times
    assert all(t.tzinfo == timezone.utc for t in description.times)
    assert epsg(description.crs_wkt) == 32634
    west, south, east, north = description.bbox_lonlat
    assert 23.9 < west < east < 24.1 and 45.4 < south < north < 45.6
    assert description.title == "Demo Sentinel-2 L2A cube, tile 34TGR"
    assert (description.time_dim, description.x_dim, description.y_dim) == ("time", "x", "y")


def test_local_cube_is_described_like_its_collection(demo_cube, item_times):
    check_demo_description(describe_zarr(str(demo_cube.zarr)), item_times)


def test_cube_over_http_reads_one_chunk_for_a_pixel_time_series(demo_cube, http_url, nginx_server, item_times):
    check_demo_description(describe_zarr(http_url), item_times)
    log = nginx_server.tmp / "access.log"
    before = len(log.read_text().splitlines())
    dataset = open_zarr_dataset(http_url)
    series = dataset["red"].isel(x=COL, y=ROW).values
    requests = log.read_text().splitlines()[before:]
    local = xr.open_zarr(demo_cube.zarr, chunks=None)["red"].isel(x=COL, y=ROW).values
    np.testing.assert_array_equal(series, local)
    assert [line for line in requests if "/red/" in line and "/red/." not in line] and \
        len([line for line in requests if "/red/" in line and "/red/." not in line]) == 1
    assert len([line for line in requests if ".zmetadata" in line]) == 1


def test_cube_over_http_signs_every_request(http_url):
    signed: list[str] = []

    def signer(url: str) -> str:
        signed.append(url)
        return f"{url}?token=abc"

    dataset = open_zarr_dataset(http_url, signer=signer)
    assert float(dataset["nir"].isel(time=3, x=COL, y=ROW)) > 0
    assert f"{http_url}/.zmetadata" in signed and any(u.startswith(f"{http_url}/nir/") for u in signed)


def test_cube_on_s3_is_the_same_cube(demo_cube, s3_access, item_times):
    url, options, credentials = s3_access
    check_demo_description(describe_zarr(url, options, credentials), item_times)
    remote = open_zarr_dataset(url, options, credentials)["swir16"].isel(time=slice(0, 5)).values
    local = xr.open_zarr(demo_cube.zarr, chunks=None)["swir16"].isel(time=slice(0, 5)).values
    np.testing.assert_array_equal(remote, local)


@pytest.mark.parametrize("where", ["local", "http", "s3"])
def test_gdal_reads_the_same_pixel_as_xarray(demo_cube, http_url, s3_access, where):
    url, s3, credentials = {"local": (str(demo_cube.zarr), None, None), "http": (http_url, None, None),
                            "s3": s3_access}[where]
    description = describe_zarr(url, s3, credentials)
    raw = xr.open_zarr(demo_cube.zarr, chunks=None, mask_and_scale=False)
    for variable, index in (("red", 0), ("nir", 17), ("scl", 36)):
        source = layer_source(description, variable, index, s3=s3, credentials=credentials)
        assert source.path.endswith(f":/{variable}:{index}")
        value, transform, size = gdal_pixel_and_geotransform(source)
        assert size == (256, 256)
        assert transform == pytest.approx((732320.0, 10.0, 0.0, 5044160.0, 0.0, -10.0))
        assert value == float(raw[variable].isel(time=index, y=ROW, x=COL))
    assert gdal.GetThreadLocalConfigOption("AWS_S3_ENDPOINT", None) is None


def test_layer_source_checks_variable_and_index(demo_cube):
    description = describe_zarr(str(demo_cube.zarr))
    with pytest.raises(ZarrError, match=r"no variable 'B04' \(it has: blue, green, nir, red, scl, swir16\)"):
        layer_source(description, "B04", 0)
    with pytest.raises(ZarrError, match="between 0 and 36"):
        layer_source(description, "red")
    with pytest.raises(ZarrError, match=re.escape("Index 37 is outside 'time' of 'red' (0..36)")):
        layer_source(description, "red", 37)
    assert description.time_index(datetime(2023, 3, 16)) == 1


def test_not_a_zarr_store(tmp_path, demo_cube, nginx_server):
    with pytest.raises(ZarrError, match="is not a Zarr store"):
        describe_zarr(str(tmp_path))
    with pytest.raises(ZarrError, match="no such directory"):
        describe_zarr(str(tmp_path / "missing.zarr"))
    with pytest.raises(ZarrError, match=re.escape(f"{nginx_server.url}/zarr/missing.zarr is not a Zarr store")):
        describe_zarr(f"{nginx_server.url}/zarr/missing.zarr")
    with pytest.raises(ZarrError, match="single Zarr array"):
        describe_zarr(str(demo_cube.zarr / "red"))


def test_server_errors_and_missing_buckets_are_reported(s3_access):
    with token_server() as server:
        server.fail_with = (500, '{"detail": "storage backend down"}')
        with pytest.raises(ZarrError, match=r"cube\.zarr/\.zmetadata -> HTTP 500.*storage backend down"):
            describe_zarr(f"{server.url}/cube.zarr")
    _url, options, credentials = s3_access
    with pytest.raises(ZarrError, match=r"(?i)bucket does not exist"):
        describe_zarr("s3://no-such-bucket/cube.zarr", options, credentials)


# --- Zarr v3 sources ---------------------------------------------------------------------------------

def _v3_copy(source, target, consolidated: bool) -> None:
    """``source`` rewritten as Zarr v3 by zarr-python 3, with its chunks, dtypes and CF encodings."""
    with xr.open_zarr(source) as dataset:
        for variable in dataset.variables.values():
            for key in ("compressor", "compressors", "filters", "preferred_chunks"):
                variable.encoding.pop(key, None)
        dataset.to_zarr(target, zarr_format=3, consolidated=consolidated)


@pytest.fixture(scope="module")
def v3_server(demo_cube, tmp_path_factory):
    """nginx serving the demo cube as Zarr v3, with consolidated metadata (``v3.zarr``) and without."""
    if zarr_major() < 3:
        pytest.skip("zarr-python 3 is not installed (Debian 12's lock has zarr 2.18): nothing here writes Zarr v3")
    from servers.nginx import start_nginx

    root = tmp_path_factory.mktemp("zarr-v3")
    _v3_copy(demo_cube.zarr, root / "v3.zarr", consolidated=True)
    _v3_copy(demo_cube.zarr, root / "v3-plain.zarr", consolidated=False)
    server = start_nginx(root, probe="v3.zarr/zarr.json")
    yield server
    server.stop()


def test_a_zarr_v3_cube_is_read_like_its_v2_original(demo_cube, v3_server, item_times):
    local = v3_server.root / "v3.zarr"
    assert json.loads((local / "zarr.json").read_text())["zarr_format"] == 3 and not (local / ".zgroup").exists()
    expected = xr.open_zarr(demo_cube.zarr, chunks=None)["red"].isel(x=COL, y=ROW).values
    for url in (str(local), str(v3_server.root / "v3-plain.zarr"), f"{v3_server.url}/v3.zarr"):
        check_demo_description(describe_zarr(url), item_times)
        np.testing.assert_array_equal(open_zarr_dataset(url)["red"].isel(x=COL, y=ROW).values, expected)


def test_a_zarr_v3_cube_over_http_is_signed_and_reads_its_metadata_once_and_one_chunk(v3_server):
    log = v3_server.tmp / "access.log"
    before = len(log.read_text().splitlines())
    dataset = open_zarr_dataset(f"{v3_server.url}/v3.zarr", signer=lambda url: f"{url}?token=abc")
    assert float(dataset["nir"].isel(time=3, x=COL, y=ROW)) > 0
    requests = [line for line in log.read_text().splitlines()[before:] if "GET " in line]
    assert requests and all("?token=abc " in line for line in requests)
    assert len([line for line in requests if "GET /v3.zarr/zarr.json?" in line]) == 1
    assert len([line for line in requests if "/v3.zarr/nir/c/" in line]) == 1


def test_a_zarr_v3_cube_without_consolidated_metadata_is_explained_over_http(v3_server):
    with pytest.raises(ZarrError, match=r"v3-plain\.zarr has no consolidated metadata .* consolidate the store"):
        describe_zarr(f"{v3_server.url}/v3-plain.zarr")


def test_a_zarr_v3_array_is_refused_and_a_v3_group_needs_zarr_3(tmp_path):
    array, group = tmp_path / "array.zarr", tmp_path / "group.zarr"
    for path, node in ((array, {"node_type": "array", "shape": [2], "data_type": "uint8"}),
                       (group, {"node_type": "group", "attributes": {"title": "An empty v3 group"}})):
        path.mkdir()
        (path / "zarr.json").write_text(json.dumps({"zarr_format": 3, **node}))
    with pytest.raises(ZarrError, match=r"array\.zarr is a single Zarr array"):
        describe_zarr(str(array))
    if zarr_major() < 3:
        with pytest.raises(ZarrError, match=r"group\.zarr is a Zarr v3 store \(zarr\.json\); reading it needs "
                                            r"zarr-python 3, and this Python has zarr 2\."):
            describe_zarr(str(group))
    else:
        description = describe_zarr(str(group))
        assert description.title == "An empty v3 group" and description.variables == ()


def test_real_xcube_cube(shared_data):
    url = str(shared_data / "real" / "xcube-cube-5-100-200.zarr")
    description = describe_zarr(url)
    assert {v.name for v in description.variables} == {"conc_chl", "conc_tsm", "kd489", "c2rcc_flags",
                                                       "quality_flags"}
    chl = description.variable("conc_chl")
    assert chl.dims == ("time", "lat", "lon") and chl.shape == (5, 1000, 2000) and chl.attrs["units"] == "mg m^-3"
    assert len(description.times) == 5
    assert description.times[0].replace(microsecond=0) == datetime(2017, 1, 16, 10, 9, 21, tzinfo=timezone.utc)
    assert list(description.times) == sorted(description.times)
    assert epsg(description.crs_wkt) == 4326
    assert description.bbox_lonlat == pytest.approx((0.0, 50.0, 5.0, 52.5), abs=1e-6)
    dataset = xr.open_zarr(url, chunks=None)
    values = dataset["conc_chl"].isel(time=2).values
    row, col = np.argwhere(np.isfinite(values))[len(np.argwhere(np.isfinite(values))) // 2]
    with opened(layer_source(description, "conc_chl", 2)) as gdal_dataset:
        assert (gdal_dataset.RasterXSize, gdal_dataset.RasterYSize) == (2000, 1000)
        pixels = read_array(gdal_dataset.GetRasterBand(1), "conc_chl")
    assert pixels[row, col] == pytest.approx(values[row, col])
