"""Regular cubes: one composite per period of a regular timeline, as a Zarr store or COGs + STAC.

``build_cube(CubeRequest(...))`` searches the whole time range once, cuts the items into the
periods of the timeline, plans every period on one common grid and computes each with the
analysis engine's own planning, block graph and runner (so a period's values are exactly those
of ``engine.run`` for that period), streaming the blocks into the store:

- Zarr v2 (``time, y, x``, one float32 variable per band, CF time/coordinates/grid mapping plus
  GDAL's ``_CRS``, consolidated metadata; chunks span all periods and 256 x 256 px, the shape of
  a pixel time-series read). The store is created complete (NaN everywhere) in a temporary folder
  and renamed into place, then each period is written into its slice; chunk files are replaced
  atomically, so the store opens at every moment.
- One COG per band per period (the engine's atomic COG writer) and a static STAC catalog
  (catalog -> collection -> one item per period), rewritten after every period.

Builds resume: ``cubescope-build.json`` in the output records the request's fingerprint and the
periods written; a period is recorded only after all its data is on disk, and a build run again
with the same parameters continues with the first period not recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...analysis.engine import graph
from ...analysis.engine.analysis_request import AnalysisRequest, Period
from ...analysis.engine.executor import BlockRunner, block_runner
from ...analysis.engine.grid import OutputGrid
from ...analysis.engine.pipeline import Canceled, JobPlan, explain_empty, plan, search_items
from ...analysis.engine.planning import EmptyPeriod
from ...analysis.engine.skipped_reads import Gathering, report_skipped
from ...analysis.ops import composite
from ...stac.http import Fetcher, fetcher_for_call
from ...stac.items import ItemError, item_datetime
from ...stac.signing import signer_for
from .model import (  # noqa: F401 (re-exported: callers import the cube API from here)
    CHUNK_XY,
    COG_STAC,
    COUNT_BANDS,
    FORMATS,
    PROGRESS_FILE,
    ZARR,
    CubeError,
    CubeRequest,
    Log,
    collection_id,
)
from .stores import Sink, StacSink, ZarrSink


def build_cube(cube: CubeRequest, progress: Callable[[float], None] | None = None,
               is_canceled: Callable[[], bool] | None = None, fetch: Fetcher | None = None,
               log: Log | None = None) -> Path:
    """Search the whole range once, then build (or resume) the cube; returns its path (the Zarr store,
    or the STAC catalog.json). Canceled when cancelled: running it again resumes."""
    canceled = is_canceled or (lambda: False)
    request = cube.request
    if not cube.periods:
        raise CubeError("The timeline has no period between the start and the end")
    whole = request.periods[0]
    with fetcher_for_call(fetch) as fetch:  # the signer may fetch a token while the cube is built
        items = search_items(request, whole, fetch, canceled, say=log)
        if not items:
            explain_empty(request, whole, fetch)
        signer = signer_for(request.connection, fetch, request.token or None)
        return build_from_items(cube, items, progress, canceled, log, signer)


def build_from_items(cube: CubeRequest, items: Sequence[dict], progress: Callable[[float], None] | None = None,
                     is_canceled: Callable[[], bool] | None = None, log: Log | None = None,
                     signer: Callable[[str], str] | None = None) -> Path:
    """Build (or resume) the cube from the items already found in its whole range."""
    canceled = is_canceled or (lambda: False)
    report = progress or (lambda _percent: None)
    say = log or (lambda _message: None)
    request, periods = cube.request, cube.periods
    if not periods:
        raise CubeError("The timeline has no period between the start and the end")
    items = list(items)
    buckets = _bucket(items, periods)
    say(f"{len(items)} items in {len(periods)} periods of {cube.step}{' (cyclic)' if cube.cyclic else ''}")
    report(3.0)
    overall = plan(request, [items])
    grid, names = overall.grid, _variable_names(overall)
    for warning in overall.warnings:
        say(f"Warning: {warning}")
    fingerprint = _fingerprint(cube, grid, names, periods)
    sink: Sink = (ZarrSink if cube.format == ZARR else StacSink)(cube, grid, names, periods, fingerprint)
    done = sink.open()
    try:
        return _build_periods(cube, buckets, grid, names, sink, done, report, canceled, say, signer)
    finally:
        sink.close()


def _build_periods(cube: CubeRequest, buckets: list[list[dict]], grid: OutputGrid, names: Sequence[str],
                   sink: Sink, done: set[int], report: Callable[[float], None], canceled: Callable[[], bool],
                   say: Log, signer: Callable[[str], str] | None) -> Path:
    request, periods = cube.request, cube.periods
    if done:
        say(f"Resuming: {len(done)} of {len(periods)} periods already written")
    report(5.0)
    with block_runner(request.dask_scheduler, request.threads, request.scheduler_timeout) as runner:
        say(f"Computing {grid.width:,} x {grid.height:,} px per period on {runner.description}")
        for number, (period, found) in enumerate(zip(periods, buckets)):
            if number in done:
                continue
            if canceled():
                raise Canceled(_stopped(done, periods))
            share = (5.0 + 95.0 * number / len(periods), 95.0 / len(periods))
            job = _period_job(request, period, found, grid)
            sink.begin(number, job)
            try:
                if job is None:
                    _write_empty(sink, grid, names)
                else:
                    job.signer = signer
                    with Gathering(request.fail_on_bad_input, runner.client) as skipped:
                        _compute(runner, job, sink, canceled, lambda f, s=share: report(s[0] + s[1] * 0.9 * f),
                                 skipped.options)
                        report_skipped(skipped.collect(), say)
                        sink.skipped_metadata = dict(skipped.inputs.metadata())
                sink.finish_period(number, job, lambda f, s=share: report(s[0] + s[1] * (0.9 + 0.1 * f)),
                                   canceled)
            except Canceled:
                sink.abort_period()
                raise Canceled(_stopped(done, periods)) from None
            except BaseException:
                sink.abort_period()
                raise
            done.add(number)
            sink.record(done)
            say(f"Period {number + 1} of {len(periods)} ({period.label}): "
                f"{len(job.periods[0].slices) if job else 0} dates, written")
    path = sink.finish()
    report(100.0)
    say(f"Wrote {path}")
    return path


def _variable_names(job: JobPlan) -> tuple[str, ...]:
    """The cube's variables: each layer's own name ("red", "NDVI"), then CLEAROB, TOTALOB, PROVENANCE."""
    layers = job.periods[0].spec.layers
    return tuple(layer.name for layer in layers) + tuple(job.output_names[len(layers):])


def _stopped(done: set[int], periods: Sequence[Period]) -> str:
    return (f"Cancelled after {len(done)} of {len(periods)} periods; run the build again with the same "
            "parameters to resume")


def _bucket(items: Sequence[dict], periods: Sequence[Period]) -> list[list[dict]]:
    """The items of each period, by their datetime (periods do not overlap)."""
    buckets: list[list[dict]] = [[] for _ in periods]
    for item in items:
        try:
            when = item_datetime(item)
        except ItemError:
            continue
        for bucket, period in zip(buckets, periods):
            if period.start <= when <= period.end:
                bucket.append(item)
                break
    return buckets


def _period_job(request: AnalysisRequest, period: Period, items: list[dict], grid: OutputGrid) -> JobPlan | None:
    """The engine's plan of one period, on the cube's grid; None for a period without items."""
    if not items:
        return None
    try:
        job = plan(replace(request, periods=(period,)), [items])
    except EmptyPeriod:
        return None
    job.grid = grid
    return job


def _compute(runner: BlockRunner, job: JobPlan, sink: Sink, canceled: Callable[[], bool],
             progress: Callable[[float], None], read_options: Mapping[str, str]) -> None:
    """engine.execute's computation of one period, with the blocks going to ``sink``; ``read_options``
    carry the run's policy for inputs that cannot be read (:mod:`.skipped_reads`)."""
    request = job.request
    datasets = graph.load_periods(job.periods, job.grid, job.chunk, request.resampling,
                                  {**job.gdal_options, **read_options},
                                  job.signer, request.connection.s3, dict(request.credentials) or None,
                                  auth_headers=dict(request.auth_headers), auth_scope=request.connection.url)
    if request.method == composite.BEST_PIXEL:
        graph.order_scenes(runner, job.periods, datasets, canceled, lambda f: progress(0.1 * f))
    result = graph.result_array(job.periods, datasets)
    with graph.reading_errors():
        runner.run(graph.block_tasks(result), lambda key, block: sink.write(block, *key), canceled,
                   lambda done, total: progress(0.1 + 0.9 * done / total), graph.reads_per_block(job.periods))
    if canceled():
        raise Canceled("Cancelled")


def _write_empty(sink: Sink, grid: OutputGrid, names: Sequence[str]) -> None:
    """A period without observations: NaN, and 0 clear / total observations."""
    for row, col, height, width in grid.blocks(1024):
        block = np.full((len(names), height, width), np.nan, dtype=np.float32)
        for number, name in enumerate(names):
            if name in COUNT_BANDS:
                block[number] = 0
        sink.write(block, row, col)


def _fingerprint(cube: CubeRequest, grid: OutputGrid, names: Sequence[str], periods: Sequence[Period]) -> dict:
    """What must not change for a build to resume into an existing output."""
    request = cube.request
    return {
        "source": request.connection.url, "collection": request.collection, "bands": list(names),
        "method": request.method, "extra_bands": request.extra_bands, "max_cloud": request.max_cloud,
        "quality_band": request.quality_band, "clear_values": request.clear_values,
        "resampling": request.resampling, "format": cube.format, "step": cube.step, "cyclic": cube.cyclic,
        "crs": grid.crs, "resolution": grid.resolution, "bounds": list(grid.bounds),
        "periods": [p.label for p in periods],
    }


__all__ = ["COG_STAC", "FORMATS", "PROGRESS_FILE", "ZARR", "CubeError", "CubeRequest", "build_cube",
           "build_from_items", "collection_id"]
