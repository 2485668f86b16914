"""EarthNet-style minicubes: several sources regridded onto one small grid, written as NetCDF or Zarr.

Each source is a STAC collection (odc-stac loads it onto the grid: nearest for categorical and
quality bands, bilinear otherwise) or a Zarr cube (its coordinates are transformed into the cube's
CRS and the variable interpolated there, :mod:`.zarr_regrid`). Sources more frequent than the cadence
are aggregated per variable (mean, min, max, sum, median, first; :mod:`.time_axis`); static
layers (one acquisition, such as a DEM or a land-cover map) become variables without time. Every
variable records where it came from. The request (sources, cadence, grid) is :mod:`.request`; this
module holds the STAC searches and loading, and :func:`build` and :func:`run`, which tie the parts
together. Nothing here imports QGIS.

Memory does not grow with the minicube: :func:`build` keeps every variable lazy (dask, BLOCK x BLOCK
pixels with the time axis whole; regridding and the aggregation per cadence step are per-block
functions) and :func:`.store.write` computes one block of one variable at a time and writes
it into its chunk of a Zarr store, a few blocks in flight. With ``dask_scheduler`` the STAC blocks
(odc-stac reads and aggregation) run on that Dask cluster and only finished blocks come back; the
functions travel with the tasks as code (:class:`.executor.ByValue`), so workers need odc-stac, not
Cubescope, and must be able to read the assets. Zarr sources are read and interpolated in this process
(they may go through this process's authenticated fetcher), also block by block. Both compute the same
functions on the same blocks, so a cluster run writes the same numbers as a local one.

NetCDF is copied from a streamed Zarr store into a file that scipy keeps in memory until it is closed
(see :mod:`.store`), hence its lower size limit (:data:`MAX_SIDE_NETCDF`).
"""


from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...analysis.engine.executor import block_runner
from ...analysis.engine.grid import OutputGrid, transform_bounds
from ...analysis.engine.load import gdal_items, grid_longitude, group_by_solar_day, load_lazy, touching
from ...analysis.engine.skipped_reads import Gathering, report_skipped
from ...stac.bands import BandNotFound, quality_band, resolve_band
from ...stac.catalog_client import CatalogClient, SearchQuery
from ...stac.http import Fetcher
from ...stac.paging import page_notes
from ...stac.sources import Source, guess_kind
from .errors import MinicubeError
from .request import (
    AGGREGATIONS,
    MAX_SIDE,
    MAX_SIDE_NETCDF,
    NATIVE,
    STATIC,
    Cadence,
    MinicubeRequest,
    SourceSpec,
    max_side,
    minicube_grid,
    parse_sources,
    utm_crs,
)
from .store import NETCDF, ZARR, write
from .time_axis import resample_time, static_layer
from .zarr_regrid import load_zarr_variable, pixel_centres

# The minicube's face: the dock, Processing, chips and the tests take the request's parts from here too.
__all__ = [
    "AGGREGATIONS",
    "BLOCK",
    "MAX_SIDE",
    "MAX_SIDE_NETCDF",
    "NATIVE",
    "NETCDF",
    "STATIC",
    "ZARR",
    "Cadence",
    "MinicubeError",
    "MinicubeRequest",
    "SourceSpec",
    "build",
    "categorical",
    "load_stac_bands",
    "max_side",
    "minicube_grid",
    "parse_sources",
    "run",
    "search",
    "utm_crs",
]

BLOCK = 256
"""Pixels a side of one block: one task, one Zarr chunk (with every cadence step)."""


def grid_bbox_lonlat(grid: OutputGrid) -> tuple[float, float, float, float]:
    """The grid's extent in lon/lat, as STAC searches take it."""
    return transform_bounds(grid.bounds, grid.crs, "EPSG:4326")


def search(url: str, collection: str, bbox: tuple[float, float, float, float], start: datetime | None,
           end: datetime | None, fetch: Fetcher, max_items: int = 0,
           say: Callable[[str], None] | None = None) -> list[dict]:
    """The items of ``collection`` touching ``bbox`` (lon/lat) between ``start`` and ``end``; ``say``
    hears the items left out and why paging stopped early, as warnings."""
    client = CatalogClient(Source(name=url, kind=guess_kind(url), url=url), fetch)
    query = SearchQuery(collections=(collection,), bbox=bbox, start=start, end=end, max_cloud=None,
                        max_items=max_items)
    items: list[dict] = []
    for page in client.search(query):
        items.extend(page.items)
        for note in page_notes(page):
            (say or (lambda _message: None))(f"Warning: {url}: {note}")
    return touching(items, bbox)


def categorical(item: dict, asset_key: str) -> bool:
    """Quality bands and classified assets are resampled with nearest neighbour and never averaged."""
    quality = quality_band(item)
    if quality is not None and quality.asset_key == asset_key:
        return True
    asset = (item.get("assets") or {}).get(asset_key) or {}
    return bool(asset.get("classification:classes") or asset.get("classification:bitfields"))


def load_stac_bands(items: list[dict], bands: Sequence[str], grid: OutputGrid, resampling: str = "bilinear",
                    chunk: int = BLOCK, read_options: Mapping[str, str] | None = None) -> tuple[Any, list[dict]]:
    """The bands on ``grid`` as a lazy float32 Dataset (physical values, NaN no-data) named as asked,
    and per band its provenance (asset key, resampling, scale, offset). ``read_options`` carry the run's
    policy for inputs that cannot be read (:class:`.skipped_reads.Gathering`)."""
    reference = items[0]
    infos = []
    for band in bands:
        try:
            infos.append(resolve_band(reference, band))
        except BandNotFound as error:
            raise MinicubeError(f"{error} (items such as {reference.get('id')})") from None
    keys = [info.asset_key for info in infos]
    nearest = [key for key in keys if categorical(reference, key)]
    ready, options = gdal_items(items, keys)
    slices = group_by_solar_day(ready, grid_longitude(grid))
    dataset = load_lazy(ready, slices, keys, grid, chunk, resampling=resampling, nearest=nearest,
                        gdal_options={**options, **(read_options or {})})
    import xarray

    out, provenance = {}, []
    for band, info in zip(bands, infos):
        data = dataset[info.asset_key]
        if info.nodata is not None and not (isinstance(info.nodata, float) and math.isnan(info.nodata)):
            data = data.where(data != info.nodata)
        if info.asset_key not in nearest:
            data = data * info.scale + info.offset
        out[band] = data.astype("float32")
        provenance.append({"source_asset": info.asset_key,
                           "resampling": "nearest" if info.asset_key in nearest else resampling,
                           "scale_applied": info.scale if info.asset_key not in nearest else 1.0,
                           "offset_applied": info.offset if info.asset_key not in nearest else 0.0,
                           "categorical": int(info.asset_key in nearest),
                           "units": str(_asset_unit(reference, info.asset_key))})
    result = xarray.Dataset(out)
    result = result.assign_coords(time=[s.when.replace(tzinfo=None) for s in slices])
    return result, provenance


def _asset_unit(item: dict, key: str) -> str:
    asset = (item.get("assets") or {}).get(key) or {}
    bands = asset.get("raster:bands") or []
    return str(bands[0].get("unit", "")) if bands and isinstance(bands[0], dict) else ""


def _cf_grid_mapping(crs: str) -> dict[str, Any]:
    from pyproj import CRS

    attrs = {k: v for k, v in CRS.from_user_input(crs).to_cf().items() if isinstance(v, (str, int, float))}
    attrs["spatial_ref"] = attrs.get("crs_wkt", "")
    return attrs


def build(request: MinicubeRequest, fetch: Fetcher | None = None, progress: Callable[[float], None] | None = None,
          is_canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] | None = None,
          read_options: Mapping[str, str] | None = None) -> Any:
    """The minicube as a lazy ``xarray.Dataset`` on one grid, with CF and provenance attributes.

    Only the searches happen here; every variable is a dask array of BLOCK x BLOCK blocks (all cadence
    steps in each) that :func:`.store.write` computes block by block, or ``.compute()`` all at once."""
    from ...stac.http import fetcher_for_call

    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    grid = minicube_grid(request)
    cadence = Cadence.parse(request.cadence)
    edges = None if cadence.native else cadence.edges(request.start, request.end)
    bbox = grid_bbox_lonlat(grid)
    variables: dict[str, Any] = {}
    local = all("://" not in s.url for s in request.sources)
    with fetcher_for_call(fetch, local_only=local) as fetcher:  # for the searches only
        for n, spec in enumerate(request.sources):
            if is_canceled():
                raise InterruptedError("Cancelled")
            if spec.is_zarr:
                for name, band in zip(spec.names, spec.sources):
                    data = load_zarr_variable(spec.url, band, grid, request.start, request.end, block=BLOCK,
                                              fetch=fetch)
                    static = spec.aggregation == STATIC or "time" not in data.dims
                    data = static_layer(data) if static and "time" in data.dims else (
                        data if static else resample_time(data, spec.aggregation, edges))
                    data.attrs.update(source_url=spec.url, source_collection="", source_variable=band,
                                      resampling="linear interpolation after transforming the grid's coordinates",
                                      aggregation="static" if static else spec.aggregation)
                    variables[_unique(name, variables)] = data
                say(f"{spec.url}: {', '.join(spec.bands)}")
            else:
                items = [] if spec.aggregation == STATIC else search(
                    spec.url, spec.collection, bbox, request.start, request.end, fetcher, say=say)
                static = spec.aggregation == STATIC or (
                    bool(items) and not any((i.get("properties") or {}).get("datetime") for i in items))
                if not items:
                    items = search(spec.url, spec.collection, bbox, None, None, fetcher, max_items=200, say=say)
                    static = True
                    if len(group_by_solar_day(items, grid_longitude(grid))) > 1 and spec.aggregation != STATIC:
                        raise MinicubeError(f"No items of {spec.collection} between {request.start:%Y-%m-%d} and "
                                            f"{request.end:%Y-%m-%d} over the minicube")
                if not items:
                    raise MinicubeError(f"No items of {spec.collection} touch the minicube "
                                        f"(lon {bbox[0]:.4f} to {bbox[2]:.4f}, lat {bbox[1]:.4f} to {bbox[3]:.4f})")
                loaded, provenance = load_stac_bands(items, spec.sources, grid, read_options=read_options)
                for name, band, prov in zip(spec.names, spec.sources, provenance):
                    data = loaded[band]
                    how = "static" if static else ("first" if prov["categorical"] and spec.aggregation in (
                        "mean", "sum", "median") else spec.aggregation)
                    data = static_layer(data) if static else resample_time(data, how, edges)
                    data.attrs.update(source_url=spec.url, source_collection=spec.collection, aggregation=how,
                                      source_band=band, source_items=len(items), **prov)
                    variables[_unique(name, variables)] = data
                say(f"{spec.collection}: {len(items)} items, {', '.join(spec.bands)}")
            report(100.0 * (n + 1) / len(request.sources))
    return _assemble(variables, grid, request, cadence)


def _unique(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def _assemble(variables: dict[str, Any], grid: OutputGrid, request: MinicubeRequest, cadence: Cadence) -> Any:
    import xarray

    xs, ys = pixel_centres(grid)
    for data in variables.values():
        data.coords["x"], data.coords["y"] = ("x", xs), ("y", ys)
    dataset = xarray.merge([d.rename(name) for name, d in variables.items()], join="outer",
                           combine_attrs="drop")
    for name, data in variables.items():
        dataset[name].attrs = dict(data.attrs)
        dataset[name].attrs.setdefault("long_name", f"{name} ({data.attrs.get('source_collection') or 'zarr'})")
        dataset[name].attrs["grid_mapping"] = "spatial_ref"
        if not dataset[name].attrs.get("units"):
            dataset[name].attrs.pop("units", None)
    dataset["spatial_ref"] = xarray.DataArray(np.int32(0), attrs=_cf_grid_mapping(grid.crs))
    dataset["x"].attrs.update(standard_name="projection_x_coordinate", long_name="x coordinate of pixel centre",
                              units="m")
    dataset["y"].attrs.update(standard_name="projection_y_coordinate", long_name="y coordinate of pixel centre",
                              units="m")
    if "time" in dataset.dims:
        dataset["time"].attrs.update(standard_name="time", long_name="start of the cadence step"
                                     if not cadence.native else "acquisition time")
    dataset.attrs.update(
        Conventions="CF-1.8", title="Cubescope minicube", source="Cubescope minicube builder",
        cadence=cadence.label, time_coverage_start=f"{request.start:%Y-%m-%dT%H:%M:%SZ}",
        time_coverage_end=f"{request.end:%Y-%m-%dT%H:%M:%SZ}", crs=grid.crs, resolution=float(grid.resolution),
        geotransform=" ".join(f"{v:g}" for v in grid.geotransform),
        history=f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} created by Cubescope")
    return dataset


def run(request: MinicubeRequest, fetch: Fetcher | None = None, progress: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] | None = None) -> Path:
    """Build the minicube and write it block by block, on the request's Dask scheduler or with local
    threads; returns the written path. SchedulerUnreachable (an OSError) within the request's timeout
    when the scheduler does not answer."""
    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    with block_runner(request.dask_scheduler, 0, request.scheduler_timeout) as runner, \
            Gathering(request.fail_on_bad_input, runner.client) as skipped:
        dataset = build(request, fetch, lambda p: report(0.05 * p), is_canceled, log, skipped.options)
        say(f"Computing {dataset.sizes['x']:,} x {dataset.sizes['y']:,} px in blocks of {BLOCK} px on "
            f"{runner.description}")

        def left_out() -> dict[str, Any]:  # once the blocks are computed, before the store is closed
            inputs = skipped.collect()
            report_skipped(inputs, say)
            return {key.lower(): value for key, value in inputs.metadata().items()}

        path = write(dataset, request.output, request.format, lambda p: report(5.0 + 0.95 * p), is_canceled, runner,
                     final_attrs=left_out)
    report(100.0)
    say(f"Wrote {path}")
    return path
