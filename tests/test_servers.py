"""Each real local server answers a real request with what the demo cube on disk says.

The expected answers come from the static catalog's JSON and the files themselves, read here
independently of the code that loaded the servers.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
from distributed import Client
from osgeo import gdal
from pystac_client import Client as StacClient
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import box, shape

pytestmark = pytest.mark.usefixtures("gdal_raises")

S2 = "demo-s2-l2a"
# Reading remote files the way the plugin does: never list directories next to a COG.
HTTP_CONFIG = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def static_items(collection_json: Path) -> list[dict[str, Any]]:
    """The collection's items as files on disk (`<item-id>/<item-id>.json`), not through its links."""
    return [json.loads(p.read_text()) for p in sorted(collection_json.parent.glob("*/*.json"))
            if p.stem == p.parent.name]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def s2_items(demo_cube) -> list[dict[str, Any]]:
    items = static_items(demo_cube.collections[S2])
    assert len(items) > 10, "the demo's Sentinel-2 collection should have a time series"
    return items


@pytest.fixture(scope="module")
def search_case(s2_items: list[dict[str, Any]]) -> tuple[list[float], str, set[str]]:
    """A bbox inside the first item's footprint and a datetime range between acquisition dates, with
    the ids of the static items that intersect both (bounds fall between dates: no edge cases)."""
    footprint = shape(s2_items[0]["geometry"])
    x, y = footprint.centroid.x, footprint.centroid.y
    bbox = [x - 0.01, y - 0.01, x + 0.01, y + 0.01]
    times = sorted({parse_time(i["properties"]["datetime"]) for i in s2_items})
    lo, hi = len(times) // 4, 3 * len(times) // 4
    start = times[lo - 1] + (times[lo] - times[lo - 1]) / 2
    end = times[hi] + (times[hi + 1] - times[hi]) / 2
    expected = {
        i["id"] for i in s2_items
        if shape(i["geometry"]).intersects(box(*bbox)) and start <= parse_time(i["properties"]["datetime"]) <= end
    }
    assert 5 < len(expected) < len(s2_items), "the case should page and should exclude items"
    return bbox, f"{start.isoformat()}/{end.isoformat()}", expected


@contextmanager
def stac_api(url: str) -> Iterator[StacClient]:
    """A pystac-client Client whose HTTP session is closed afterwards (it keeps sockets open)."""
    stac_io = StacApiIO(timeout=30)
    try:
        yield StacClient.open(url, stac_io=stac_io)
    finally:
        stac_io.session.close()


def search(url: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item the API returns (following next links) and the number of pages it took."""
    with stac_api(url) as client:
        pages = [page["features"] for page in client.search(collections=[S2], limit=5, **params).pages_as_dicts()]
    return [item for page in pages for item in page], len(pages)


def search_ids(url: str, **params: Any) -> list[str]:
    return sorted(item["id"] for item in search(url, **params)[0])


def test_light_api_search_pages_through_the_static_catalogs_items(stac_api_light, search_case) -> None:
    bbox, interval, expected = search_case
    items, pages = search(stac_api_light.url, bbox=bbox, datetime=interval)
    assert sorted(i["id"] for i in items) == sorted(expected)
    assert pages > 1


def test_api_asset_hrefs_read_pixels_from_nginx(stac_api_light, nginx_server, demo_cube) -> None:
    item = search(stac_api_light.url, max_items=1)[0][0]
    href = next(a["href"] for a in item["assets"].values() if a["href"].endswith(".tif"))
    assert href.startswith(f"{nginx_server.url}/")
    local = demo_cube.root / href.removeprefix(f"{nginx_server.url}/")
    with gdal_config(HTTP_CONFIG):
        np.testing.assert_array_equal(read_window(f"/vsicurl/{href}"), read_window(str(local)))


def test_full_api_search_pages_through_the_static_catalogs_items(stac_api_full, search_case) -> None:
    bbox, interval, expected = search_case
    items, pages = search(stac_api_full.url, bbox=bbox, datetime=interval)
    assert sorted(i["id"] for i in items) == sorted(expected)
    assert pages > 1


def test_full_api_filters_on_cloud_cover(stac_api_full, s2_items) -> None:
    expected = {i["id"] for i in s2_items if i["properties"]["eo:cloud_cover"] < 10}
    assert 0 < len(expected) < len(s2_items)
    cql2 = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]}
    assert search_ids(stac_api_full.url, filter=cql2, filter_lang="cql2-json") == sorted(expected)


# pystac-client 0.9 recognises only v1.0.* conformance URIs; stac-fastapi 6 declares sort as v1.1.0.
# The warning is wrong (sortby is sent and honoured), which is what this test checks.
@pytest.mark.filterwarnings("ignore::pystac_client.warnings.DoesNotConformTo")
def test_full_api_sorts_by_datetime_descending(stac_api_full, s2_items) -> None:
    with stac_api(stac_api_full.url) as client:
        search = client.search(collections=[S2], limit=7, sortby="-properties.datetime")
        times = [parse_time(i["properties"]["datetime"]) for i in search.items_as_dicts()]
    assert len(times) == len(s2_items)
    assert times == sorted(times, reverse=True)
    assert times[0] > times[-1]


def test_full_api_declares_filter_conformance(stac_api_full) -> None:
    with urllib.request.urlopen(f"{stac_api_full.url}/conformance", timeout=10) as response:
        classes = json.load(response)["conformsTo"]
    assert any(c.endswith("item-search#filter") for c in classes), classes


@contextmanager
def gdal_config(options: dict[str, str]) -> Iterator[None]:
    """Set GDAL config options for the block and restore the previous values afterwards."""
    previous = {key: gdal.GetConfigOption(key) for key in options}
    for key, value in options.items():
        gdal.SetConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetConfigOption(key, value)


def read_window(path: str) -> np.ndarray:
    """A window in the middle of band 1, away from the origin so internal tiles beyond the first count."""
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    return band.ReadAsArray(ds.RasterXSize // 3, ds.RasterYSize // 3, ds.RasterXSize // 2, ds.RasterYSize // 2)


def first_cog(item: dict[str, Any], item_dir: Path) -> Path:
    href = next(a["href"] for a in item["assets"].values() if a["href"].endswith(".tif"))
    return (item_dir / href).resolve()


def test_nginx_serves_cogs_to_gdal_over_vsicurl(nginx_server, demo_cube, s2_items) -> None:
    item = s2_items[0]
    local = first_cog(item, demo_cube.collections[S2].parent / item["id"])
    relative = local.relative_to(demo_cube.root.resolve()).as_posix()
    expected = read_window(str(local))
    assert np.ptp(expected) > 0, "a constant window would hide a read of the fill value"
    with gdal_config(HTTP_CONFIG):
        remote = read_window(f"/vsicurl/{nginx_server.url}/{relative}")
    np.testing.assert_array_equal(remote, expected)


def test_nginx_answers_range_requests(nginx_server, demo_cube, s2_items) -> None:
    item = s2_items[0]
    local = first_cog(item, demo_cube.collections[S2].parent / item["id"])
    url = f"{nginx_server.url}/{local.relative_to(demo_cube.root.resolve()).as_posix()}"
    data = local.read_bytes()
    request = urllib.request.Request(url, headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert response.headers["Content-Type"] == "image/tiff"
        assert response.read() == data[100:200]
    request = urllib.request.Request(url, headers={"Range": "bytes=0-9,1000-1009"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        assert response.status == 206
        assert response.headers["Content-Type"].startswith("multipart/byteranges")
        assert data[0:10] in body and data[1000:1010] in body
    with urllib.request.urlopen(f"{nginx_server.url}/stac/catalog.json", timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert json.load(response)["type"] == "Catalog"


def test_s3_serves_cogs_to_gdal_over_vsis3(s3_server, demo_cube) -> None:
    key = next(k for k in s3_server.keys if k.startswith(f"stac/{S2}/") and k.endswith(".tif"))
    expected = read_window(str(demo_cube.root / key))
    assert np.ptp(expected) > 0
    with gdal_config(s3_server.gdal_config()):
        remote = read_window(f"/vsis3/{s3_server.bucket}/{key}")
    np.testing.assert_array_equal(remote, expected)


def first_array(store: str) -> np.ndarray:
    """All chunks of the store's first array with two or more dimensions, via GDAL's multidim API."""
    group = gdal.OpenEx(store, gdal.OF_MULTIDIM_RASTER).GetRootGroup()
    arrays = [group.OpenMDArray(name) for name in sorted(group.GetMDArrayNames())]
    return next(a for a in arrays if a.GetDimensionCount() >= 2).ReadAsArray()


def test_s3_serves_zarr_to_gdal_over_vsis3(s3_server, demo_cube) -> None:
    store = sorted({k.split(".zarr/")[0] + ".zarr" for k in s3_server.keys if ".zarr/" in k})[0]
    expected = first_array(str(demo_cube.root / store))
    assert np.count_nonzero(expected), "all zeros would also be what GDAL returns for skipped chunks"
    with gdal_config(s3_server.gdal_config()):
        remote = first_array(f"/vsis3/{s3_server.bucket}/{store}")
    np.testing.assert_array_equal(remote, expected)


def test_dask_cluster_computes_in_worker_processes(dask_cluster) -> None:
    values = np.arange(1_000_000, dtype="float64")
    with Client(dask_cluster, timeout=30) as client:
        # da.arange builds its chunks on the workers: only the task graph and the sum travel.
        total = client.compute(da.arange(1_000_000, chunks=250_000, dtype="float64").sum()).result(timeout=60)
        worker_pids = set(client.run(os.getpid).values())
    assert total == values.sum()
    assert len(worker_pids) == 2
    assert os.getpid() not in worker_pids
