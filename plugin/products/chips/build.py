"""Training chips: fixed-size windows of chosen bands at points or on a regular grid, with labels,
forecasting windows, masked-pixel skipping and spatial-block splits, written to one Zarr store or
one ``.npz`` per sample, with a manifest CSV saying where every chip is and why any was skipped.

The items are loaded once, lazily, onto one grid (the data's native grid unless asked otherwise), and
each chip computes only its own window: memory follows the chip, not the job. A chip's pixel work (its
odc-stac reads, the masks and, for composites, the median) is one task, run by local threads or, with
``dask_scheduler``, on that Dask cluster (the functions travel as code: workers need odc-stac, not
Cubescope); a few chips are in flight at a time and they are written in order, so a cluster run writes
what a local one does. Small jobs (:data:`IN_MEMORY`) are read once, block by block by the same runner,
and cut in memory, so that overlapping chips do not read the same pixels again. Nothing imports QGIS.

The request and result are in :mod:`.chip_model`; the output, the manifest and its summary are
written by :mod:`.chip_writer`, under temporary names moved into place only when the job is complete:
a cancelled or failed job leaves nothing behind, and an older output stays untouched until a new one
replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ...analysis.engine.executor import BlockRunner, ByValue, Canceled, block_runner
from ...analysis.engine.grid import (
    GridError,
    OutputGrid,
    native_crs,
    native_resolution,
    output_grid,
    transform_bounds,
)
from ...analysis.engine.skipped_reads import Gathering, report_skipped
from ...analysis.ops import composite
from ...analysis.ops.quality import QualityRule, rule_for, rule_from_user
from ...stac.http import Fetcher
from ..minicubes.build import MinicubeError, load_stac_bands, search
from ..minicubes.store import block_tasks
from .model import (
    COMPOSITE,
    CROSSES,
    DATES,
    FORECAST,
    IN_MEMORY,
    MASKED,
    MODES,
    NO_DATE,
    NPZ,
    OUTSIDE,
    TOO_SHORT,
    ZARR,
    Chip,
    ChipError,
    ChipRequest,
    ChipResult,
)
from .splits import BlockSplitter
from .writer import ChipWriter, read_manifest

__all__ = ["COMPOSITE", "CROSSES", "DATES", "FORECAST", "IN_MEMORY", "MASKED", "MODES", "NO_DATE", "NPZ", "OUTSIDE",
           "TOO_SHORT", "ZARR", "Chip", "ChipError", "ChipRequest", "ChipResult", "chip_windows", "footprint_overlap",
           "plan_grid", "read_manifest", "run"]


def _search_bbox(request: ChipRequest) -> tuple[float, float, float, float]:
    if request.extent is not None:
        return transform_bounds(request.extent, request.extent_crs, "EPSG:4326")
    xs = [p[1] for p in request.points]
    ys = [p[2] for p in request.points]
    return transform_bounds((min(xs), min(ys), max(xs), max(ys)), request.points_crs, "EPSG:4326")


def plan_grid(request: ChipRequest, items: list[dict]) -> OutputGrid:
    """The grid the chips are cut from: the data's own pixels unless a CRS or resolution is asked."""
    from pyproj import Transformer

    target = request.crs or native_crs(items)
    if request.extent is not None:
        return output_grid(items, request.bands, request.extent, request.extent_crs, request.crs or None,
                           request.resolution or None)
    size = request.resolution or native_resolution(items, request.bands)[0]
    xs, ys = Transformer.from_crs(request.points_crs, target, always_xy=True).transform(
        [p[1] for p in request.points], [p[2] for p in request.points])
    half = (request.chip_size / 2 + 2) * size
    bounds = (min(xs) - half, min(ys) - half, max(xs) + half, max(ys) + half)
    return output_grid(items, request.bands, bounds, target, request.crs or None, request.resolution or None)


def chip_windows(request: ChipRequest, grid: OutputGrid) -> list[Chip]:
    """The chips' windows on the grid, centred on the points or side by side over the extent."""
    from pyproj import Transformer

    size, res = request.chip_size, grid.resolution
    x0, _, _, y1 = grid.bounds
    chips = []
    if request.points:
        xs, ys = Transformer.from_crs(request.points_crs, grid.crs, always_xy=True).transform(
            [p[1] for p in request.points], [p[2] for p in request.points])
        for (name, _, _), x, y in zip(request.points, xs, ys):
            col = math.floor((x - x0) / res) - size // 2
            row = math.floor((y1 - y) / res) - size // 2
            chips.append(Chip(str(name), row, col, _bounds(grid, row, col, size)))
    else:
        stride = request.stride or size
        for row in range(0, grid.height - size + 1, stride):
            for col in range(0, grid.width - size + 1, stride):
                chips.append(Chip(f"r{row}_c{col}", row, col, _bounds(grid, row, col, size)))
    splitter = BlockSplitter(request.block_size, request.seed, request.fractions, request.buffer)
    for chip in chips:
        if chip.row < 0 or chip.col < 0 or chip.row + size > grid.height or chip.col + size > grid.width:
            chip.reason = OUTSIDE
            continue
        chip.split = splitter.split_of(chip.bounds)
        if chip.split is None:
            chip.reason = CROSSES
    return chips


def _bounds(grid: OutputGrid, row: int, col: int, size: int) -> tuple[float, float, float, float]:
    x0, _, _, y1 = grid.bounds
    res = grid.resolution
    return (x0 + col * res, y1 - (row + size) * res, x0 + (col + size) * res, y1 - row * res)


def _rule(request: ChipRequest, items: list[dict]) -> QualityRule | None:
    if request.quality_band.strip().casefold() == "none":
        return None
    if request.quality_band.strip() and request.clear_values.strip():
        return rule_from_user(request.quality_band.strip(), request.clear_values)
    rule = rule_for(items[0])
    if rule is None and request.quality_band.strip():
        raise ChipError(f"No known clear values for '{request.quality_band}': give them (such as 4,5,6)")
    return rule


def _label_raster(request: ChipRequest, grid: OutputGrid, fetch: Fetcher, read_options: Mapping[str, str]) -> Any:
    if not request.label_collection:
        return None
    bbox = transform_bounds(grid.bounds, grid.crs, "EPSG:4326")
    items = search(request.label_source or request.source, request.label_collection, bbox, None, None, fetch,
                   max_items=500)
    if not items:
        raise ChipError(f"No items of the label collection {request.label_collection} touch the chips")
    loaded, _ = load_stac_bands(items, [request.label_band or "data"], grid, resampling="nearest",
                                read_options=read_options)
    data = loaded[request.label_band or "data"]
    return data.isel(time=0) if data.sizes["time"] == 1 else data.max("time")


def _rasterise(request: ChipRequest, grid: OutputGrid, chip: Chip) -> np.ndarray:
    from affine import Affine
    from pyproj import Transformer
    from rasterio.features import rasterize

    transformer = Transformer.from_crs(request.label_polygons_crs, grid.crs, always_xy=True)

    def project(coords: Any) -> Any:
        if coords and isinstance(coords[0], (int, float)):
            return list(transformer.transform(coords[0], coords[1]))
        return [project(c) for c in coords]

    shapes = [({"type": g["type"], "coordinates": project(g["coordinates"])}, value)
              for g, value in request.label_polygons]
    transform = Affine(grid.resolution, 0, chip.bounds[0], 0, -grid.resolution, chip.bounds[3])
    size = request.chip_size
    if not shapes:
        return np.zeros((size, size), dtype=np.float32)
    return rasterize(shapes, out_shape=(size, size), transform=transform, fill=0, dtype="float32")


@dataclass(frozen=True)
class ChipSpec:
    """What a chip task needs besides its pixels (small and picklable: it travels to Dask workers)."""

    bands: int
    """The first ``bands`` planes of a window are the bands, in the request's order."""
    quality: int | None
    """The plane of the quality band, None without a mask."""
    rule: QualityRule | None
    composite: bool


def chip_payload(window: np.ndarray, label: np.ndarray | None, spec: ChipSpec) -> dict[str, Any]:
    """What one chip's samples need from its (time, plane, y, x) window: per date the band values and
    where every band has data and the quality band says clear; for a composite, the per-band median of
    those values and where no date was usable instead (far less to send back from a worker)."""
    values = np.asarray(window[:, :spec.bands], dtype=np.float32)
    valid = np.isfinite(values).all(axis=1)
    if spec.rule is not None and spec.quality is not None:
        valid &= spec.rule.is_clear(window[:, spec.quality])
    if spec.composite:
        image = np.stack([composite.median(values[:, b], valid) for b in range(values.shape[1])]).astype(np.float32)
        return {"image": image, "masked": ~valid.any(axis=0), "label": label}
    return {"values": values, "valid": valid, "label": label}


def run(request: ChipRequest, fetch: Fetcher | None = None, progress: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] | None = None) -> ChipResult:
    """Cut, filter, split and write the chips on the request's Dask scheduler or with local threads;
    returns where they went and what was skipped. SchedulerUnreachable (an OSError) within the request's
    timeout when the scheduler does not answer; InterruptedError when cancelled."""
    from ...stac.http import fetcher_for_call

    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    try:
        with fetcher_for_call(fetch, local_only="://" not in request.source) as fetcher, \
                block_runner(request.dask_scheduler, 0, request.scheduler_timeout) as runner, \
                Gathering(request.fail_on_bad_input, runner.client) as skipped:
            return _run(request, fetcher, runner, report, is_canceled, say, skipped)
    except Canceled:
        raise InterruptedError("Cancelled") from None


def _run(request: ChipRequest, fetcher: Fetcher, runner: BlockRunner, report: Callable[[float], None],
         is_canceled: Callable[[], bool], say: Callable[[str], None], skipped: Gathering) -> ChipResult:
    import dask.array as da

    items = search(request.source, request.collection, _search_bbox(request), request.start, request.end, fetcher,
                   say=say)
    if not items:
        raise ChipError(f"No items of {request.collection} between {request.start:%Y-%m-%d} and "
                        f"{request.end:%Y-%m-%d} touch the points or extent")
    try:
        grid = plan_grid(request, items)
    except GridError as error:
        raise ChipError(str(error)) from error
    rule = _rule(request, items)
    names = list(request.bands) + ([rule.band] if rule is not None and rule.band not in request.bands else [])
    try:
        loaded, _ = load_stac_bands(items, names, grid, chunk=request.chip_size, read_options=skipped.options)
    except MinicubeError as error:
        raise ChipError(str(error)) from error
    days = [str(t)[:10] for t in loaded["time"].values]
    stack = da.stack([loaded[name].data for name in names], axis=1)  # (time, plane, y, x), lazy
    labels = _label_raster(request, grid, fetcher, skipped.options)
    label_data = labels.data if labels is not None else None
    chips = chip_windows(request, grid)
    spec = ChipSpec(len(request.bands), names.index(rule.band) if rule is not None else None, rule,
                    request.mode == COMPOSITE)
    at_once = stack.nbytes <= request.read_at_once
    say(f"{len(items)} items on {len(days)} dates; {len(chips)} chips of {request.chip_size} px on "
        f"{grid.crs} at {grid.resolution:g}, computed on {runner.description}"
        + ("; read at once" if at_once else "; read chip by chip"))
    if at_once:  # small jobs: read once (overlapping chips share pixels), then cut in memory
        arrays = _read_at_once(runner, {"stack": stack, "label": label_data}, is_canceled, lambda f: report(50 * f))
        compute = partial(_payloads_in_memory, arrays, request=request, spec=spec)
        share = (50.0, 50.0)
    else:
        compute = partial(_chip_payloads, runner, stack, label_data, request=request, spec=spec,
                          is_canceled=is_canceled)
        share = (0.0, 100.0)
    writer = ChipWriter(request, grid)
    try:
        batch = 2 * _parallelism(runner)
        for first in range(0, len(chips), batch):
            if is_canceled():
                raise InterruptedError("Cancelled")
            part = [(n, chips[n]) for n in range(first, min(len(chips), first + batch))]
            computed = compute([(n, chip) for n, chip in part if not chip.reason])
            for n, chip in part:  # in the chips' order, whatever order their tasks finished in
                if chip.reason:
                    writer.skip(chip, chip.reason, dates=f"{days[0]}/{days[-1]}")
                    continue
                payload = computed.pop(n)
                label = payload["label"]
                if label is None and request.label_polygons:
                    label = _rasterise(request, grid, chip)
                _samples(request, chip, payload, days, label, writer)
            report(share[0] + share[1] * min(len(chips), first + batch) / len(chips))
        inputs = skipped.collect()
        report_skipped(inputs, say)
        writer.attrs.update({key.lower(): value for key, value in inputs.metadata().items()})
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def _window(chip: Chip, request: ChipRequest) -> tuple[slice, slice]:
    return slice(chip.row, chip.row + request.chip_size), slice(chip.col, chip.col + request.chip_size)


def _parallelism(runner: BlockRunner) -> int:
    if runner.client is not None:
        return max(1, sum(runner.client.nthreads().values()))
    return max(1, runner.threads)


def _read_at_once(runner: BlockRunner, lazy: dict[str, Any], is_canceled: Callable[[], bool],
                  progress: Callable[[float], None]) -> dict[str, np.ndarray]:
    """The lazy arrays in memory, computed block by block by ``runner`` (on the cluster when it has one)."""
    arrays, tasks = {}, []
    for name, array in lazy.items():
        if array is None:
            continue
        if array.ndim == 4:  # every plane of a block in one task
            array = array.rechunk({1: -1})
        arrays[name] = np.empty(array.shape, dtype=array.dtype)
        tasks.extend(block_tasks(name, array))

    def store(key: tuple[str, tuple[slice, ...]], block: np.ndarray) -> None:
        arrays[key[0]][key[1]] = block

    runner.run(tasks, store, is_canceled, lambda done, total: progress(done / total))
    return arrays


def _payloads_in_memory(arrays: dict[str, np.ndarray], part: list[tuple[int, Chip]], request: ChipRequest,
                        spec: ChipSpec) -> dict[int, dict[str, Any]]:
    """The payloads of ``part``'s chips cut from the stack read at once."""
    out = {}
    for n, chip in part:
        rows, cols = _window(chip, request)
        label = arrays["label"][rows, cols] if "label" in arrays else None
        out[n] = chip_payload(arrays["stack"][:, :, rows, cols], label, spec)
    return out


def _chip_payloads(runner: BlockRunner, stack: Any, labels: Any, part: list[tuple[int, Chip]],
                   request: ChipRequest, spec: ChipSpec, is_canceled: Callable[[], bool]) -> dict[int, dict[str, Any]]:
    """The payloads of ``part``'s chips, one task each (the window's reads and :func:`chip_payload`),
    computed by ``runner``; at most one batch is in memory, so memory follows the batch, not the job."""
    from uuid import uuid4

    import dask

    function, token, tasks = ByValue(partial(chip_payload, spec=spec)), uuid4().hex, []
    for n, chip in part:
        rows, cols = _window(chip, request)
        label = labels[rows, cols] if labels is not None else None
        tasks.append((n, dask.delayed(function, pure=False)(stack[:, :, rows, cols], label,
                                                            dask_key_name=f"cubescope-chip-{token}-{n}")))
    computed: dict[int, dict[str, Any]] = {}
    runner.run(tasks, computed.__setitem__, is_canceled)
    return computed


def _samples(request: ChipRequest, chip: Chip, payload: dict[str, Any], days: list[str],
             label: np.ndarray | None, writer: ChipWriter) -> None:
    """The samples of one chip: one composite, one per chosen date, or the forecasting windows."""
    if request.mode == COMPOSITE:
        masked = payload["masked"]
        writer.sample(chip, f"{chip.id}", {"image": (("band", "y", "x"), payload["image"]),
                                           "mask": (("y", "x"), masked.astype(np.uint8))},
                      label, float(masked.mean()), f"{days[0]}/{days[-1]}")
        return
    values, valid = payload["values"], payload["valid"]
    if request.mode == DATES:
        wanted = [d.isoformat() for d in request.dates] or days
        for day in wanted:
            if day not in days:
                writer.skip(chip, NO_DATE, f"{chip.id}_{day}", day)
                continue
            t = days.index(day)
            masked = ~valid[t]
            writer.sample(chip, f"{chip.id}_{day}", {"image": (("band", "y", "x"), values[t].astype(np.float32)),
                                                     "mask": (("y", "x"), masked.astype(np.uint8))},
                          label, float(masked.mean()), day)
    else:
        length = request.context + request.target
        if len(days) < length:
            writer.skip(chip, TOO_SHORT, dates=f"{days[0]}/{days[-1]}")
            return
        for start in range(0, len(days) - length + 1, request.shift):
            c, t = slice(start, start + request.context), slice(start + request.context, start + length)
            masked = ~valid[start:start + length]
            writer.sample(
                chip, f"{chip.id}_w{start}",
                {"context": (("context_time", "band", "y", "x"), values[c].astype(np.float32)),
                 "target": (("target_time", "band", "y", "x"), values[t].astype(np.float32)),
                 "context_mask": (("context_time", "y", "x"), masked[:request.context].astype(np.uint8)),
                 "target_mask": (("target_time", "y", "x"), masked[request.context:].astype(np.uint8))},
                label, float(masked.mean()), f"{days[start]}/{days[start + length - 1]}",
                context_dates=" ".join(days[c]), target_dates=" ".join(days[t]))


def footprint_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two (xmin, ymin, xmax, ymax) footprints share more than an edge."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
