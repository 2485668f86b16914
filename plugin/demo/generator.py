"""Generating the whole demo cube into an empty directory.

Items are independent, so they are written by a small thread pool (GDAL releases the GIL
while encoding COGs); each item draws its randomness from the seed and its own indices, so
the bytes do not depend on thread timing. Cancellation is checked between items.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from . import layout
from . import other_products as op
from . import sentinel2 as s2w
from .datacube import write_cube
from .eopf_writer import write_collection as write_eopf
from .grids import TILES
from .landscape import CHANGE_DATE
from .layout import DemoCubeCanceled
from .scenes import TileTruth, dem, render_s1, render_s2, tile_truth, worldcover
from .schedule import Acquisition, s1_acquisitions, s2_acquisitions, sun_position
from .sky import SkyScenario, make_scenarios
from .stac_writer import catalog, write_json
from .truth_writer import document, write_document, write_rasters

Progress = Callable[[float], None]

#: Share of the progress bar spent writing items; the rest is collections, truth and Zarr.
_ITEMS_SHARE = 0.85


class _Reporter:
    """Forwards progress at most once per percent, and raises when cancelled."""

    def __init__(self, progress: Progress | None, is_canceled: Callable[[], bool] | None) -> None:
        self._progress = progress
        self._is_canceled = is_canceled
        self._last = -1.0

    def check(self) -> None:
        if self._is_canceled is not None and self._is_canceled():
            raise DemoCubeCanceled("demo cube generation was cancelled")

    def report(self, fraction: float) -> None:
        if self._progress is not None and (fraction - self._last >= 0.01 or fraction >= 1.0):
            self._last = fraction
            self._progress(min(max(fraction, 0.0), 1.0))


def _s2_job(stac: Path, truth: TileTruth, acq: Acquisition, scn: SkyScenario, sun: tuple[float, float]) -> dict:
    scene = render_s2(truth, acq, scn)
    iid = s2w.item_id(truth.tile, acq)
    s2w.write_item(stac / layout.S2_COLLECTION / iid, truth.tile, acq, scene, sun)
    record = {"id": iid, "datetime": acq.iso, "cloud_cover": scene.cloud_cover,
              "has_nodata": scene.nodata_fraction > 0, "nodata_fraction": scene.nodata_fraction}
    return {"kind": "s2", "tile": truth.tile.code, "index": acq.index, "record": record,
            "sky": scene.sky, "scene": scene if truth.tile.code == layout.TILE_A_CODE else None}


def _s1_job(stac: Path, truth: TileTruth, acq: Acquisition, seed: int, tile_index: int) -> dict:
    iid = op.s1_item_id(truth.tile, acq)
    op.write_s1_item(stac / layout.S1_COLLECTION / iid, truth.tile, acq, render_s1(truth, acq, seed, tile_index))
    return {"kind": "s1", "tile": truth.tile.code, "index": acq.index, "id": iid}


def _dem_job(stac: Path, truth: TileTruth) -> dict:
    doc = op.write_dem_item(stac / layout.DEM_COLLECTION / f"DEM_T{truth.tile.code}", truth.tile, dem(truth.tile))
    return {"kind": "dem", "id": doc["id"]}


def _landcover_job(stac: Path, truth: TileTruth) -> dict:
    iid = f"LC{op.LANDCOVER_YEAR}_T{truth.tile.code}"
    op.write_landcover_item(stac / layout.LANDCOVER_COLLECTION / iid, truth.tile, worldcover(truth))
    return {"kind": "landcover", "id": iid}


def _run(jobs: list[Callable[[], dict]], reporter: _Reporter) -> list[dict]:
    """Run jobs on a few threads, keeping at most two per worker in flight so cancel is prompt."""
    workers = max(1, min(2, os.cpu_count() or 1))
    results: list[dict | None] = [None] * len(jobs)
    pending: dict[Future, int] = {}
    done_count = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-cube") as pool:
        try:
            nxt = 0
            while nxt < len(jobs) or pending:
                while nxt < len(jobs) and len(pending) < 2 * workers:
                    reporter.check()
                    pending[pool.submit(jobs[nxt])] = nxt
                    nxt += 1
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    results[pending.pop(fut)] = fut.result()
                    done_count += 1
                reporter.report(_ITEMS_SHARE * done_count / len(jobs))
        finally:
            for fut in pending:
                fut.cancel()
    return [r for r in results if r is not None]


def _change_neighbours(s2: list[Acquisition]) -> tuple[int, int]:
    change = date.fromisoformat(CHANGE_DATE)
    after = next(a.index for a in s2 if a.day >= change)
    return after - 1, after


def generate(out: Path, seed: int, progress: Progress | None = None,
             is_canceled: Callable[[], bool] | None = None) -> None:
    """Write the complete cube (except the manifest) into `out`, which must not exist."""
    reporter = _Reporter(progress, is_canceled)
    reporter.report(0.0)
    out.mkdir(parents=True)
    stac = out / layout.STAC_DIR
    s2, s1 = list(s2_acquisitions()), list(s1_acquisitions())
    sun = [sun_position(a.datetime) for a in s2]
    neighbours = _change_neighbours(s2)
    scenarios = make_scenarios(seed, [a.datetime for a in s2], sun, keep_clear={0, *neighbours})
    truths = [tile_truth(t) for t in TILES]

    jobs: list[Callable[[], dict]] = []
    for acq in s2:
        jobs += [partial(_s2_job, stac, tt, acq, scenarios[acq.index], sun[acq.index]) for tt in truths]
    for acq in s1:
        jobs += [partial(_s1_job, stac, tt, acq, seed, k) for k, tt in enumerate(truths)]
    jobs += [partial(_dem_job, stac, tt) for tt in truths]
    jobs += [partial(_landcover_job, stac, tt) for tt in truths]
    results = _run(jobs, reporter)

    by_kind: dict[str, list[dict]] = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r)
    s2_ids = [r["record"]["id"] for r in by_kind["s2"]]
    covers = [r["record"]["cloud_cover"] for r in by_kind["s2"]]
    collections = {
        layout.S2_COLLECTION: s2w.collection_doc(TILES, s2_ids, [s2[0].iso, s2[-1].iso], covers),
        layout.S1_COLLECTION: op.s1_collection(TILES, [r["id"] for r in by_kind["s1"]], [s1[0].iso, s1[-1].iso]),
        layout.DEM_COLLECTION: op.dem_collection(TILES, [r["id"] for r in by_kind["dem"]]),
        layout.LANDCOVER_COLLECTION: op.landcover_collection(TILES, [r["id"] for r in by_kind["landcover"]]),
    }
    for cid, doc in collections.items():
        write_json(layout.collection_path(out, cid), doc)
    write_json(layout.catalog_path(out), catalog([(cid, doc["title"]) for cid, doc in collections.items()]))
    reporter.check()
    reporter.report(0.88)

    truth_dir = layout.truth_dir(out)
    truth_dir.mkdir()
    s2_items: dict[str, list[dict[str, Any]]] = {t.code: [] for t in TILES}
    s1_items: dict[str, list[str]] = {t.code: [] for t in TILES}
    sky: dict[str, list] = {t.code: [] for t in TILES}
    for r in by_kind["s2"]:
        s2_items[r["tile"]].append(r["record"])
        sky[r["tile"]].append(r["sky"])
    for r in by_kind["s1"]:
        s1_items[r["tile"]].append(r["id"])
    for tt in truths:
        write_rasters(truth_dir, tt, s2, sky[tt.tile.code])
    write_document(truth_dir, document(seed, layout.GENERATOR_VERSION, truths, s2, s1, scenarios, sun,
                                       s2_items, s1_items, neighbours))
    reporter.check()
    reporter.report(0.92)

    scenes_a = [r["scene"] for r in by_kind["s2"] if r["tile"] == layout.TILE_A_CODE]
    (out / layout.ZARR_DIR).mkdir()
    write_cube(layout.zarr_path(out), TILES[0], s2, scenes_a, layout.GENERATOR_VERSION)
    reporter.check()
    eopf = [a for a in s2 if layout.EOPF_PERIOD[0] <= a.iso[:10] <= layout.EOPF_PERIOD[1]]
    write_eopf(out, TILES[0], eopf, [scenes_a[a.index] for a in eopf])
    reporter.report(1.0)

