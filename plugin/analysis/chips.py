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

The output, the manifest and its summary are written under temporary names beside them
(``<name>.partial``) and moved into place only when the job is complete: a cancelled or failed job
leaves nothing behind, and an older output stays untouched until a new one replaces it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..stac.http import Fetcher
from . import composite
from .executor import CONNECT_TIMEOUT_S, BlockRunner, ByValue, Canceled, block_runner
from .grid import GridError, OutputGrid, native_crs, native_resolution, output_grid, transform_bounds
from .minicube import MinicubeError, load_stac_bands, search
from .minicube_store import block_tasks, remove
from .quality import QualityRule, rule_for, rule_from_user
from .splits import BlockSplitter

COMPOSITE, DATES, FORECAST = "composite", "dates", "forecast"
MODES = (COMPOSITE, DATES, FORECAST)
ZARR, NPZ = "zarr", "npz"
IN_MEMORY = 256 * 1024 * 1024
"""Jobs whose whole stack (float32 bytes) is at most this are read at once; larger ones chip by chip."""

OUTSIDE = "outside the data"
CROSSES = "crosses a split boundary"
MASKED = "too many masked pixels"
NO_DATE = "no acquisition on the chosen date"
TOO_SHORT = "too few dates for a context/target window"


class ChipError(ValueError):
    """Chips that cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class ChipRequest:
    """Everything a chip job needs, copied on the main thread before a task starts."""

    source: str
    """STAC API or static catalog (URL or path)."""
    collection: str
    bands: tuple[str, ...]
    start: datetime
    end: datetime
    output: str
    """A ``.zarr`` store, or a folder for ``.npz`` files; the manifest goes beside (``<output>.csv``)."""
    points: tuple[tuple[str, float, float], ...] = ()
    """(id, x, y) in ``points_crs``; or give ``extent``."""
    points_crs: str = "EPSG:4326"
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str = "EPSG:4326"
    stride: int = 0
    """Pixels between chips on a regular grid; 0 for the chip size (chips side by side)."""
    chip_size: int = 256
    resolution: float = 0.0
    """0 for the bands' finest native resolution."""
    crs: str = ""
    """Empty for the items' native CRS."""
    mode: str = COMPOSITE
    """"composite" (median of clear values over the period), "dates" (one sample per date) or
    "forecast" (context/target windows)."""
    dates: tuple[date, ...] = ()
    """For "dates": the dates wanted; empty for every acquisition."""
    context: int = 0
    target: int = 0
    shift: int = 1
    """Dates between the starts of consecutive forecasting windows."""
    label_source: str = ""
    label_collection: str = ""
    label_band: str = ""
    label_polygons: tuple[tuple[dict, float], ...] = ()
    """(GeoJSON geometry in ``label_polygons_crs``, class value) rasterised per chip (0 elsewhere)."""
    label_polygons_crs: str = "EPSG:4326"
    max_masked: float = 0.5
    """Skip samples with a larger fraction of masked (not clear or no-data) pixels."""
    quality_band: str = ""
    """Empty for the collection's own, "none" for no mask."""
    clear_values: str = ""
    block_size: float = 2560.0
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    buffer: float = 0.0
    format: str = ZARR
    dask_scheduler: str = ""
    """Address of a Dask scheduler (tcp://host:8786); empty to compute with local threads."""
    scheduler_timeout: float = CONNECT_TIMEOUT_S
    """Seconds to wait for the scheduler (and for its first worker) before giving up."""
    read_at_once: int = IN_MEMORY
    """Bytes (float32 stack of every date and band) up to which the job is read at once and cut in
    memory; larger jobs are read chip by chip. 0: always chip by chip."""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        object.__setattr__(self, "bands", tuple(b.strip() for b in self.bands if b and b.strip()))
        if not self.bands:
            raise ChipError("Choose at least one band")
        if bool(self.points) == (self.extent is not None):
            raise ChipError("Give either points or an extent")
        if self.mode not in MODES:
            raise ChipError(f"Unknown mode '{self.mode}'; choose one of {', '.join(MODES)}")
        if self.mode == FORECAST and (self.context < 1 or self.target < 1 or self.shift < 1):
            raise ChipError("Forecasting windows need a context and a target of at least 1 date and a shift >= 1, "
                            f"got {self.context}, {self.target}, {self.shift}")
        if not 2 <= self.chip_size <= 4096:
            raise ChipError(f"The chip size must be 2 to 4096 pixels, got {self.chip_size}")
        if not 0 <= self.max_masked <= 1:
            raise ChipError(f"The masked-pixel threshold is a fraction from 0 to 1, got {self.max_masked}")
        if self.format not in (ZARR, NPZ):
            raise ChipError(f"Unknown format '{self.format}'; choose {ZARR} or {NPZ}")
        BlockSplitter(self.block_size, self.seed, self.fractions, self.buffer)


@dataclass
class Chip:
    """One window on the grid."""

    id: str
    row: int
    col: int
    bounds: tuple[float, float, float, float]
    split: str | None = None
    reason: str = ""


@dataclass
class ChipResult:
    output: Path
    manifest: Path
    samples: int
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> how many chips or samples were skipped for it."""


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


def _label_raster(request: ChipRequest, grid: OutputGrid, fetch: Fetcher) -> Any:
    if not request.label_collection:
        return None
    bbox = transform_bounds(grid.bounds, grid.crs, "EPSG:4326")
    items = search(request.label_source or request.source, request.label_collection, bbox, None, None, fetch,
                   max_items=500)
    if not items:
        raise ChipError(f"No items of the label collection {request.label_collection} touch the chips")
    loaded, _ = load_stac_bands(items, [request.label_band or "data"], grid, resampling="nearest")
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


class _ZarrSink:
    """Samples appended along ``sample`` to one Zarr store, readable by xarray (dims in attributes)."""

    def __init__(self, path: Path, attrs: dict) -> None:
        import zarr

        self.path = path
        self.group = zarr.open_group(str(path), mode="w")
        self.group.attrs.update(attrs)
        self.arrays: dict[str, Any] = {}

    def add(self, arrays: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> None:
        for name, (dims, value) in arrays.items():
            value = np.asarray(value)
            if name not in self.arrays:
                chunks = (1, *value.shape) if value.ndim else (1024,)
                array = self.group.create_dataset(name, shape=(0, *value.shape), chunks=chunks, dtype=value.dtype,
                                                  fill_value=None)
                array.attrs["_ARRAY_DIMENSIONS"] = ["sample", *dims]
                self.arrays[name] = array
            self.arrays[name].append(value[np.newaxis])

    def close(self, coords: dict[str, tuple[str, list]]) -> None:
        import zarr

        for name, (dim, values) in coords.items():
            array = self.group.create_dataset(name, data=np.asarray(values), overwrite=True)
            array.attrs["_ARRAY_DIMENSIONS"] = [dim]
        zarr.consolidate_metadata(str(self.path))


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
    from ..stac.http import local_fetcher, requests_fetcher

    fetcher = fetch or (local_fetcher() if "://" not in request.source else requests_fetcher())
    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    try:
        with block_runner(request.dask_scheduler, 0, request.scheduler_timeout) as runner:
            return _run(request, fetcher, runner, report, is_canceled, say)
    except Canceled:
        raise InterruptedError("Cancelled") from None


def _run(request: ChipRequest, fetcher: Fetcher, runner: BlockRunner, report: Callable[[float], None],
         is_canceled: Callable[[], bool], say: Callable[[str], None]) -> ChipResult:
    import dask.array as da

    items = search(request.source, request.collection, _search_bbox(request), request.start, request.end, fetcher)
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
        loaded, _ = load_stac_bands(items, names, grid, chunk=request.chip_size)
    except MinicubeError as error:
        raise ChipError(str(error)) from error
    days = [str(t)[:10] for t in loaded["time"].values]
    stack = da.stack([loaded[name].data for name in names], axis=1)  # (time, plane, y, x), lazy
    labels = _label_raster(request, grid, fetcher)
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
    writer = _Writer(request, grid)
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
             label: np.ndarray | None, writer: _Writer) -> None:
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


MANIFEST_FIELDS = ("id", "chip", "status", "reason", "split", "centre_x", "centre_y", "crs", "xmin", "ymin", "xmax",
                   "ymax", "dates", "context_dates", "target_dates", "masked_fraction", "index", "file")


def _partial(path: Path) -> Path:
    """Where ``path`` is written until it is complete: beside it, so that moving it into place is a rename."""
    return path.with_name(path.name + ".partial")


class _Writer:
    """Samples to Zarr or .npz, and every chip or sample (kept or skipped) to the manifest; all of it
    under temporary names until :meth:`finish` moves it into place (:meth:`discard` removes it)."""

    def __init__(self, request: ChipRequest, grid: OutputGrid) -> None:
        self.request, self.grid = request, grid
        self.path = Path(request.output)
        self.manifest = self.path.with_name(self.path.name + ".csv")
        self.summary = self.manifest.with_suffix(".json")
        self.staging = _partial(self.path)
        self.rows: list[dict] = []
        self.skipped: Counter = Counter()
        self.kept = 0
        attrs = {"crs": grid.crs, "resolution": grid.resolution, "chip_size": request.chip_size,
                 "bands": list(request.bands), "mode": request.mode, "source": request.source,
                 "collection": request.collection, "block_size": request.block_size, "seed": request.seed,
                 "split_fractions": list(request.fractions), "max_masked": request.max_masked,
                 "context": request.context, "target": request.target, "shift": request.shift}
        self.attrs = attrs
        if request.format == NPZ and self.path.exists() and not self.path.is_dir():
            raise ChipError(f"{self.path} is a file; .npz samples go into a folder")
        self.discard()  # what an interrupted process may have left
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if request.format == ZARR:
            self.sink: _ZarrSink | None = _ZarrSink(self.staging, attrs)
        else:
            self.staging.mkdir()
            self.sink = None

    def _row(self, chip: Chip, sample_id: str, status: str, reason: str, dates: str = "", **extra: Any) -> dict:
        b = chip.bounds
        row = {"id": sample_id, "chip": chip.id, "status": status, "reason": reason, "split": chip.split or "",
               "centre_x": (b[0] + b[2]) / 2, "centre_y": (b[1] + b[3]) / 2, "crs": self.grid.crs,
               "xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3], "dates": dates, **extra}
        self.rows.append(row)
        return row

    def skip(self, chip: Chip, reason: str, sample_id: str = "", dates: str = "") -> None:
        self.skipped[reason] += 1
        self._row(chip, sample_id or chip.id, "skipped", reason, dates)

    def sample(self, chip: Chip, sample_id: str, arrays: dict, label: np.ndarray | None, masked: float,
               dates: str, **extra: Any) -> None:
        if masked > self.request.max_masked:
            self.skipped[MASKED] += 1
            self._row(chip, sample_id, "skipped", MASKED, dates, masked_fraction=round(masked, 6), **extra)
            return
        if label is not None:
            arrays = {**arrays, "label": (("y", "x"), label.astype(np.float32))}
        row = self._row(chip, sample_id, "kept", "", dates, masked_fraction=round(masked, 6), index=self.kept, **extra)
        if self.sink is not None:
            self.sink.add(arrays)
        else:
            target = self.staging / f"{sample_id}.npz"
            np.savez_compressed(target, **{k: v for k, (_, v) in arrays.items()},
                                bands=np.asarray(self.request.bands), bounds=np.asarray(chip.bounds))
            row["file"] = target.name
        self.kept += 1

    def finish(self) -> ChipResult:
        kept = [r for r in self.rows if r["status"] == "kept"]
        if self.sink is not None:
            if not kept:
                raise ChipError(f"Every chip was skipped ({_describe(self.skipped)}); nothing was written")
            self.sink.close({"sample": ("sample", [r["id"] for r in kept]),
                             "band": ("band", list(self.request.bands)),
                             "split": ("sample", [r["split"] for r in kept]),
                             "centre_x": ("sample", [r["centre_x"] for r in kept]),
                             "centre_y": ("sample", [r["centre_y"] for r in kept])})
        with _partial(self.manifest).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: row.get(k, "") for k in MANIFEST_FIELDS})
        summary = {"samples": len(kept), "skipped": dict(self.skipped),
                   "splits": dict(Counter(r["split"] for r in kept)), **self.attrs}
        _partial(self.summary).write_text(json.dumps(summary, indent=1), encoding="utf-8")
        self._move_into_place()
        return ChipResult(self.path, self.manifest, len(kept), dict(self.skipped))

    def _move_into_place(self) -> None:
        """The complete output replaces the older one: a Zarr store whole; .npz files one by one into an
        existing folder (which may hold other files), or the whole folder when there is none."""
        if self.sink is not None or not self.path.is_dir():
            remove(self.path)
            os.replace(self.staging, self.path)
        else:
            for sample in self.staging.iterdir():
                os.replace(sample, self.path / sample.name)
            self.staging.rmdir()
        os.replace(_partial(self.manifest), self.manifest)
        os.replace(_partial(self.summary), self.summary)

    def discard(self) -> None:
        """Remove what an unfinished job wrote; an older output and its manifest stay as they were."""
        for path in (self.staging, _partial(self.manifest), _partial(self.summary)):
            remove(path)


def _describe(skipped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"


def read_manifest(path: str | Path) -> list[dict]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def footprint_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two (xmin, ymin, xmax, ymax) footprints share more than an edge."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
