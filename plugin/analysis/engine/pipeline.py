"""The analysis job: a request in, a COG out.

``run(request, progress, is_canceled)`` searches the items of each period, plans the job (output
grid, bands, quality rule, scene order), builds a lazy odc-stac/dask graph, computes it block by
block locally or on a Dask cluster and streams the blocks into a COG that appears only when
complete. ``estimate(request)`` does the search and the planning only, for the data volume shown
before running. The dock's QgsTask and the three Processing algorithms call these; nothing here
imports QGIS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from ...stac.catalog_client import CatalogClient, SearchQuery
from ...stac.http import Fetcher, fetcher_for_call
from ...stac.items import item_datetime
from ...stac.paging import page_notes
from ...stac.signing import signer_for
from ...stac.sources import SourceKind
from ..ops import composite
from . import graph
from .analysis_request import COMPOSITE_OP, DIFFERENCE_OP, STATISTICS_OP, AnalysisRequest, Period, Progress
from .cog_writer import CogWriter
from .executor import Canceled, SchedulerUnreachable, block_runner
from .graph import ReadFailed
from .grid import OutputGrid, crs_label, human_size, transform_bounds
from .load import touching
from .planning import AnalysisError, EmptyPeriod, PeriodPlan, colour_roles, plan_periods
from .skipped_reads import Gathering, report_skipped
from .zarr_items import cube_items, in_period


@dataclass(frozen=True)
class VolumeEstimate:
    """What a run would read and write, known before reading any pixel."""

    items: int
    dates: int
    width: int
    height: int
    crs: str
    resolution: float
    bands_read: tuple[str, ...]
    bytes_read: int
    """Uncompressed pixels read on the output grid (all dates, all loaded bands)."""
    bytes_written: int
    """The uncompressed result (float32 per band)."""
    output_bands: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        return (f"{self.items} items on {self.dates} dates; {self.width:,} x {self.height:,} px at "
                f"{self.resolution:g} ({crs_label(self.crs)}); reads {human_size(self.bytes_read)} of "
                f"{', '.join(self.bands_read)}; writes {len(self.output_bands)} band(s), "
                f"{human_size(self.bytes_written)} before compression")


@dataclass
class JobPlan:
    request: AnalysisRequest
    grid: OutputGrid
    periods: list[PeriodPlan]
    output_names: tuple[str, ...]
    chunk: int
    gdal_options: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    quality: str = "none"
    signer: Callable[[str], str] | None = None
    """Signs asset hrefs (Planetary Computer, BDC) before GDAL opens them."""
    colours: tuple[str | None, ...] = ()
    """Per output band its true-colour channel ("red", "green", "blue") or None."""

    @property
    def volume(self) -> VolumeEstimate:
        pixels = self.grid.width * self.grid.height
        read = sum(len(p.slices) * pixels * p.bytes_per_pixel for p in self.periods)
        keys: list[str] = []
        for period in self.periods:
            keys += [k for k in period.asset_keys if k not in keys]
        return VolumeEstimate(
            items=sum(len(p.items) for p in self.periods), dates=sum(len(p.slices) for p in self.periods),
            width=self.grid.width, height=self.grid.height, crs=self.grid.crs, resolution=self.grid.resolution,
            bands_read=tuple(keys), bytes_read=int(read), bytes_written=int(pixels * len(self.output_names) * 4),
            output_bands=self.output_names, warnings=tuple(self.warnings))


def zarr_cube_items(request: AnalysisRequest, fetch: Fetcher | None = None) -> list[dict]:
    """The request's Zarr cube as items, one per time step (`zarr_items`); AnalysisError if it cannot be."""
    from ...cube.zarr_cube import ZarrError, describe_zarr

    source = request.connection
    try:
        description = describe_zarr(source.url, source.s3, dict(request.credentials) or None, fetch=fetch,
                                    auth_headers=dict(request.auth_headers) or None)
    except ZarrError as error:
        raise AnalysisError(str(error)) from None
    return cube_items(description, request.collection)


def search_items(request: AnalysisRequest, period: Period, fetch: Fetcher | None = None,
                 is_canceled: Callable[[], bool] = lambda: False, cube: list[dict] | None = None,
                 say: Callable[[str], None] | None = None) -> list[dict]:
    """The items of ``period`` in the request's extent and cloud limit; ``say`` hears, as warnings, the
    items the catalog gave that were left out and why paging stopped early (the run goes on with the rest).

    For a Zarr source, its time steps in the period (``cube``: the cube's items when already read).
    A Zarr cube has no cloud cover per date, so the cloud limit does not apply (`plan` says so).
    """
    if request.connection.kind == SourceKind.ZARR:
        found = in_period(cube if cube is not None else zarr_cube_items(request, fetch), period.start, period.end)
        return touching(found, _bbox_lonlat(request))
    query = SearchQuery(collections=(request.collection,), bbox=_bbox_lonlat(request), start=period.start,
                        end=period.end, max_cloud=request.max_cloud, max_items=request.max_items)
    items: list[dict] = []
    with fetcher_for_call(fetch) as fetch:
        for page in CatalogClient(request.connection, fetch).search(query, is_canceled=is_canceled):
            items.extend(page.items)
            for note in page_notes(page):
                (say or (lambda _message: None))(f"Warning: {note}")
    if is_canceled():
        raise Canceled("Cancelled")
    return items


def explain_empty(request: AnalysisRequest, period: Period, fetch: Fetcher | None = None,
                  cube: list[dict] | None = None) -> None:
    """Raise EmptyPeriod saying whether the period or the extent is the reason no item was found."""
    span = f"between {period.start:%Y-%m-%d} and {period.end:%Y-%m-%d}"
    is_zarr = request.connection.kind == SourceKind.ZARR
    cloud = (f" with at most {request.max_cloud:g} % cloud cover"
             if request.max_cloud is not None and not is_zarr else "")
    if is_zarr and cube is None:
        cube = zarr_cube_items(request, fetch)
    if is_zarr and cube:
        first, last = item_datetime(cube[0]), item_datetime(cube[-1])
        span += f" (the cube has {len(cube)} dates from {first:%Y-%m-%d} to {last:%Y-%m-%d})"
    if request.extent is not None:
        anywhere = search_items(replace(request, extent=None, max_items=1), period, fetch, cube=cube)
        if anywhere:
            west, south, east, north = _bbox_lonlat(request) or (0, 0, 0, 0)
            raise EmptyPeriod(
                f"The extent (lon {west:.4f} to {east:.4f}, lat {south:.4f} to {north:.4f}) touches no item of "
                f"{request.collection} {span}{cloud}; there are items elsewhere: move or enlarge the extent")
    raise EmptyPeriod(f"No items of {request.collection} {span}{cloud}: choose another period"
                      + (" or a higher cloud limit" if cloud else ""))


def _bbox_lonlat(request: AnalysisRequest) -> tuple[float, float, float, float] | None:
    if request.extent is None:
        return None
    if request.extent_crs.upper() in ("EPSG:4326", "OGC:CRS84"):
        west, south, east, north = request.extent
    else:
        west, south, east, north = transform_bounds(request.extent, request.extent_crs, "EPSG:4326")
    return max(-180.0, west), max(-90.0, south), min(180.0, east), min(90.0, north)


def plan(request: AnalysisRequest, items_per_period: list[list[dict]]) -> JobPlan:
    """Grid, bands, quality rule and block size of a job; AnalysisError for anything that cannot run."""
    periods, grid, quality, warnings = plan_periods(request, items_per_period, _bbox_lonlat(request))
    first = periods[0].spec
    names = first.output_names
    if request.operation == DIFFERENCE_OP:
        names = tuple(f"{layer.name} {request.method} difference" for layer in first.layers)
    chunk = request.chunk_size or auto_chunk(max(len(p.slices) * p.bytes_per_pixel for p in periods))
    options = {}
    for period in periods:
        options.update(period.gdal_options)
    options.update(dict(request.gdal_options))
    if request.connection.kind == SourceKind.ZARR and request.max_cloud is not None:
        warnings.append("A Zarr cube has no cloud cover per date: the cloud limit is not applied "
                        "(the quality mask still is)")
    colours = colour_roles(periods[0].items[0], list(first.layers)) if request.operation == COMPOSITE_OP else ()
    return JobPlan(request=request, grid=grid, periods=periods, output_names=names, chunk=chunk,
                   gdal_options=options, warnings=warnings, quality=quality, colours=colours)


def auto_chunk(bytes_per_pixel_stack: int, budget: int = 64 * 1024 * 1024) -> int:
    """A block side (multiple of 256, 256..2048) whose stacks of all dates and bands fit ``budget``."""
    side = int(math.sqrt(budget / max(1, bytes_per_pixel_stack)))
    return int(min(2048, max(256, side // 256 * 256)))


def estimate(request: AnalysisRequest, fetch: Fetcher | None = None,
             is_canceled: Callable[[], bool] = lambda: False) -> VolumeEstimate:
    """Search and plan only: the data volume before running (no pixel is read)."""
    return plan(request, search_periods(request, fetch, is_canceled)).volume


def search_periods(request: AnalysisRequest, fetch: Fetcher | None = None,
                   is_canceled: Callable[[], bool] = lambda: False,
                   log: Callable[[str], None] | None = None) -> list[list[dict]]:
    """The items of every period; EmptyPeriod (saying why) when a period has none."""
    with fetcher_for_call(fetch) as fetch:
        cube = zarr_cube_items(request, fetch) if request.connection.kind == SourceKind.ZARR else None
        found = []
        for period in request.periods:
            items = search_items(request, period, fetch, is_canceled, cube, log)
            if not items:
                explain_empty(request, period, fetch, cube)
            if log is not None:
                log(f"Period {period.label}: {len(items)} items")
            found.append(items)
    return found


def run(request: AnalysisRequest, progress: Progress | None = None,
        is_canceled: Callable[[], bool] | None = None, fetch: Fetcher | None = None,
        log: Callable[[str], None] | None = None) -> Path:
    """Search, plan, compute and write; returns the written COG. Canceled when cancelled."""
    canceled = is_canceled or (lambda: False)
    report = progress or (lambda _percent: None)
    say = log or (lambda _message: None)
    with fetcher_for_call(fetch) as fetch:  # the signer may fetch a token while the blocks run
        items = search_periods(request, fetch, canceled, say)
        report(4.0)
        job = plan(request, items)
        job.signer = signer_for(request.connection, fetch, request.token or None)
        for warning in job.warnings:
            say(f"Warning: {warning}")
        say(job.volume.describe())
        return execute(job, lambda p: report(5.0 + 0.95 * p), canceled, say)


def execute(job: JobPlan, progress: Progress | None = None, is_canceled: Callable[[], bool] | None = None,
            log: Callable[[str], None] | None = None) -> Path:
    """Compute a planned job block by block into its COG."""
    canceled = is_canceled or (lambda: False)
    report = progress or (lambda _percent: None)
    say = log or (lambda _message: None)
    request, grid = job.request, job.grid
    selecting = request.operation != STATISTICS_OP and request.method == composite.BEST_PIXEL
    share = (10.0 if selecting else 0.0, 80.0)  # percent at the end of: scene order, blocks
    with block_runner(request.dask_scheduler, request.threads, request.scheduler_timeout) as runner, \
            Gathering(request.fail_on_bad_input, runner.client) as skipped:
        say(f"Computing {grid.width:,} x {grid.height:,} px in blocks of {job.chunk} px on {runner.description}")
        datasets = graph.load_periods(job.periods, grid, job.chunk, request.resampling,
                                      {**job.gdal_options, **skipped.options}, job.signer, request.connection.s3,
                                      dict(request.credentials) or None, auth_headers=dict(request.auth_headers),
                                      auth_scope=request.connection.url)
        if selecting:
            graph.order_scenes(runner, job.periods, datasets, canceled, lambda f: report(share[0] * f))
        result = graph.result_array(job.periods, datasets, subtract=request.operation == DIFFERENCE_OP)
        overviews = "NEAREST" if "PROVENANCE" in job.output_names else "AVERAGE"
        with CogWriter(request.output, grid, job.output_names, output_metadata(job), overview_resampling=overviews,
                       colours=job.colours) as out:
            with graph.reading_errors():
                runner.run(graph.block_tasks(result), lambda key, block: out.write(block, *key), canceled,
                           lambda done, total: report(share[0] + (share[1] - share[0]) * done / total),
                           graph.reads_per_block(job.periods))
            if canceled():
                raise Canceled("Cancelled")
            report_skipped(skipped.collect(), say)
            out.add_metadata(skipped.inputs.metadata())
            path = out.finish(lambda fraction: report(share[1] + (100 - share[1]) * fraction), canceled)
    report(100.0)
    say(f"Wrote {path}")
    return path


def output_metadata(job: JobPlan) -> dict[str, str]:
    request = job.request
    meta = {
        "CUBESCOPE_OPERATION": request.operation,
        "CUBESCOPE_SOURCE": request.connection.url,
        "CUBESCOPE_COLLECTION": request.collection,
        "CUBESCOPE_BANDS": ",".join(request.bands),
        "CUBESCOPE_QUALITY": job.quality,
        "CUBESCOPE_RESAMPLING": request.resampling,
    }
    if request.operation == STATISTICS_OP:
        meta["CUBESCOPE_STATISTIC"] = request.statistic
    else:
        meta["CUBESCOPE_METHOD"] = request.method
    if request.max_cloud is not None:
        meta["CUBESCOPE_MAX_CLOUD"] = f"{request.max_cloud:g}"
    names = ("A", "B") if request.operation == DIFFERENCE_OP else ("",)
    for name, period, planned in zip(names, request.periods, job.periods):
        suffix = f"_{name}" if name else ""
        meta[f"CUBESCOPE_PERIOD{suffix}"] = period.label
        meta[f"CUBESCOPE_ITEMS{suffix}"] = str(len(planned.items))
        meta[f"CUBESCOPE_DATES{suffix}"] = ",".join(f"{s.day:%Y-%m-%d}" for s in planned.slices)
    meta["TIFFTAG_SOFTWARE"] = "Cubescope (QGIS plugin)"
    meta["TIFFTAG_DATETIME"] = datetime.now(timezone.utc).strftime("%Y:%m:%d %H:%M:%S")
    return meta


__all__ = [
    "AnalysisError",
    "AnalysisRequest",
    "Canceled",
    "EmptyPeriod",
    "JobPlan",
    "Period",
    "ReadFailed",
    "SchedulerUnreachable",
    "VolumeEstimate",
    "estimate",
    "execute",
    "explain_empty",
    "plan",
    "run",
    "search_items",
    "search_periods",
]
