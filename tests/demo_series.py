"""The demo cube's truth for pixel time series: its search, and the checks of an observation against
the truth (shared by the time-series test modules; the items and a reader are conftest fixtures).

The truth says, for every tile, date and 20 m pixel, whether the sky was clear, cloudy, shadowed,
cirrus or no data, and the exact DN of a clear (or shadowed) pixel of each class.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import rasterio

from cubescope.plugin.analysis.timeseries import Observation
from cubescope.plugin.demo import DemoCube
from cubescope.plugin.demo.truth import class_on, date_index, expected_dn
from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.http import requests_fetcher
from cubescope.plugin.stac.sources import Source

COLLECTION = "demo-s2-l2a"
TILES = ("34TGR", "35TKL")
BANDS_10M = ("blue", "green", "red", "nir")
CLEAR, CLOUD, SHADOW, CIRRUS, NODATA = 0, 1, 2, 3, 255
ZARR_NAME = "zarr/demo-s2-l2a-34TGR.zarr"
ALL_BANDS = [*BANDS_10M, "swir16", "scl"]


def s2_item_dir(cube: DemoCube, truth: dict, tile: str, index: int) -> Path:
    """The folder of the demo's Sentinel-2 item number ``index`` on ``tile`` (its COGs and JSON)."""
    iid = truth["s2"]["items"][tile][index]["id"]
    return cube.root / "stac" / COLLECTION / iid


def search_demo(source: Source, fetch=None, bbox=None) -> list[dict]:
    """The items of the demo collection (around `bbox`), over HTTP with requests unless `fetch` is given."""
    query = SearchQuery(collections=(COLLECTION,), bbox=bbox, start=None, end=None, max_cloud=None)
    if fetch is not None:
        return [item for page in CatalogClient(source, fetch).search(query) for item in page.items]
    with requests_fetcher() as http:
        return [item for page in CatalogClient(source, http).search(query) for item in page.items]


@cache
def raster(path: str) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read()


def sky(root: Path, tile: str, index: int, row_20m: int, col_20m: int) -> int:
    return int(raster(str(root / "truth" / f"{tile}_sky.tif"))[index, row_20m, col_20m])


def reflectance(dn: int) -> float:
    """What the reader must give for a DN: the raster:bands scale and offset, in this order."""
    return dn * 0.0001 + -0.1


def scl_of(truth: dict, class_code: int) -> int:
    return next(c["scl"] for c in truth["classes"] if c["code"] == class_code)


def tile_of(item_id: str) -> str:
    return item_id.rsplit("_T", 1)[1]


def check_against_truth(observation: Observation, truth: dict, root: Path, point: str, tile: str) -> None:
    """Values and the mask of one observation equal the truth of `tile` at the named point."""
    when = observation.datetime.isoformat()[:10]
    index = date_index(truth, when)
    pixel = truth["points"][point]["pixels"][tile]
    state = sky(root, tile, index, pixel["row_20m"], pixel["col_20m"])
    code = class_on(truth, point, when)
    assert observation.valid == (state == CLEAR), (when, state)
    assert observation.clear == (state == CLEAR), (when, state)
    if state in (CLEAR, SHADOW):
        for band in (*BANDS_10M, "swir16"):
            dn = expected_dn(truth, code, band, when, shadow=state == SHADOW)
            assert observation.values[band] == reflectance(dn), (when, band, state)
    if state == CLEAR:
        assert observation.quality == observation.values["scl"] == scl_of(truth, code)
    if state == SHADOW:
        assert observation.quality == 3
    if state == NODATA:
        assert all(math.isnan(v) for v in observation.values.values())
        assert observation.quality is None


def check_against_truth_red(observation: Observation, truth: dict, root: Path) -> None:
    when = observation.datetime.isoformat()[:10]
    pixel = truth["points"]["forest_a"]["pixels"]["34TGR"]
    state = sky(root, "34TGR", date_index(truth, when), pixel["row_20m"], pixel["col_20m"])
    assert observation.valid == (state == CLEAR)
    if state == CLEAR:
        assert observation.values["red"] == reflectance(expected_dn(truth, 1, "red", when))
