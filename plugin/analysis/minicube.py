"""EarthNet-style minicubes: several sources regridded onto one small grid, written as NetCDF or Zarr.

Each source is a STAC collection (odc-stac loads it onto the grid: nearest for categorical and
quality bands, bilinear otherwise) or a Zarr cube (its coordinates are transformed into the cube's
CRS and the variable interpolated there). Sources more frequent than the cadence are aggregated per
variable (mean, min, max, sum, median, first); static layers (one acquisition, such as a DEM or a
land-cover map) become variables without time. Every variable records where it came from.
Nothing here imports QGIS.

Memory does not grow with the minicube: :func:`build` keeps every variable lazy (dask, BLOCK x BLOCK
pixels with the time axis whole; regridding and the aggregation per cadence step are per-block
functions) and :func:`write` computes one block of one variable at a time and writes it into its
chunk of a Zarr store, a few blocks in flight. With ``dask_scheduler`` the STAC blocks (odc-stac
reads and aggregation) run on that Dask cluster and only finished blocks come back; the functions
travel with the tasks as code (:class:`.executor.ByValue`), so workers need odc-stac, not Cubescope,
and must be able to read the assets. Zarr sources are read and interpolated in this process (they may
go through this process's authenticated fetcher), also block by block. Both compute the same
functions on the same blocks, so a cluster run writes the same numbers as a local one.

Limit: NetCDF is written with scipy (NetCDF-3, the engine available with QGIS), whose ``netcdf_file``
keeps every variable in memory until the file is closed. A NetCDF minicube is therefore streamed into
a temporary Zarr store first and then copied into the NetCDF file chunk by chunk: its peak memory is
about the size of the minicube (plus one variable), which is why NetCDF keeps the lower size limit
(:data:`MAX_SIDE_NETCDF`). Zarr output stays bounded by the block size at any size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..stac.bands import BandNotFound, quality_band, resolve_band
from ..stac.catalog_client import CatalogClient, SearchQuery
from ..stac.http import Fetcher
from ..stac.sources import Source, SourceKind, guess_kind
from .executor import CONNECT_TIMEOUT_S, BlockRunner, ByValue, Canceled, block_runner
from .grid import OutputGrid, snap, transform_bounds, transform_point
from .load import gdal_items, grid_longitude, group_by_solar_day, load_lazy, touching

AGGREGATIONS = ("mean", "min", "max", "sum", "median", "first")
STATIC = "static"
NATIVE = "native"
NETCDF, ZARR = "netcdf", "zarr"
MAX_SIDE = 16384
"""Refuse Zarr minicubes wider or taller than this many pixels: written block by block their memory
stays bounded, but the task graph and the run time grow with the area (a minicube is small)."""
MAX_SIDE_NETCDF = 4096
"""The limit for NetCDF, which holds the whole minicube in memory while it is written (see above)."""
BLOCK = 256
"""Pixels a side of one block: one task, one Zarr chunk (with every cadence step)."""
LOCAL = "cubescope-local"
"""Name prefix of the dask layers that must run in this process (Zarr sources), never on a cluster."""


def max_side(fmt: str) -> int:
    """The largest side in pixels a minicube may have in ``fmt``."""
    return MAX_SIDE_NETCDF if fmt == NETCDF else MAX_SIDE


class MinicubeError(ValueError):
    """A minicube that cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class SourceSpec:
    """One source of a minicube."""

    url: str
    """A STAC API or static catalog (URL or path), or a Zarr store (``.zarr``)."""
    collection: str
    """The STAC collection; ignored for Zarr stores."""
    bands: tuple[str, ...]
    """Band names (asset key or common name) or Zarr variable names; ``name=band`` renames."""
    aggregation: str = "mean"
    """How observations within one cadence step combine, or "static" for a layer without time."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(b.strip() for b in self.bands if b and b.strip()))
        if not self.url.strip():
            raise MinicubeError("A source has no URL or path")
        if not self.bands:
            raise MinicubeError(f"The source {self.url} lists no bands")
        if self.aggregation not in (*AGGREGATIONS, STATIC):
            raise MinicubeError(f"Unknown aggregation '{self.aggregation}' for {self.url}; choose one of "
                                f"{', '.join(AGGREGATIONS)} or {STATIC}")
        if not self.is_zarr and not self.collection.strip():
            raise MinicubeError(f"The STAC source {self.url} needs a collection")

    @property
    def names(self) -> tuple[str, ...]:
        """The minicube's variable names (``elevation`` for ``elevation=data``)."""
        return tuple(b.split("=", 1)[0].strip() for b in self.bands)

    @property
    def sources(self) -> tuple[str, ...]:
        """The bands or variables read (``data`` for ``elevation=data``)."""
        return tuple(b.split("=", 1)[-1].strip() for b in self.bands)

    @property
    def is_zarr(self) -> bool:
        return guess_kind(self.url) == SourceKind.ZARR or Path(self.url, ".zgroup").is_file()


def parse_sources(text: str) -> tuple[SourceSpec, ...]:
    """``url|collection|band1,band2|aggregation`` entries separated by ``;`` or new lines."""
    specs = []
    for entry in re.split(r"[;\n]", text):
        if not entry.strip():
            continue
        parts = [p.strip() for p in entry.split("|")]
        if len(parts) not in (3, 4):
            raise MinicubeError(f"'{entry.strip()}' is not url|collection|bands|aggregation")
        specs.append(SourceSpec(parts[0], parts[1], tuple(parts[2].split(",")),
                                parts[3] if len(parts) == 4 and parts[3] else "mean"))
    if not specs:
        raise MinicubeError("Give at least one source (url|collection|bands|aggregation)")
    return tuple(specs)


@dataclass(frozen=True)
class Cadence:
    """Regular time steps from the start date: ``days`` days or ``months`` calendar months; neither: native."""

    days: int = 0
    months: int = 0

    @classmethod
    def parse(cls, text: str) -> Cadence:
        text = (text or NATIVE).strip().upper()
        if text == NATIVE.upper():
            return cls()
        match = re.fullmatch(r"P(\d+)([DWM])", text)
        if not match or int(match.group(1)) == 0:
            raise MinicubeError(f"Cadence '{text}' is not native, PnD, PnW or PnM (such as P5D)")
        n, unit = int(match.group(1)), match.group(2)
        return cls(months=n) if unit == "M" else cls(days=n * (7 if unit == "W" else 1))

    @property
    def native(self) -> bool:
        return not (self.days or self.months)

    @property
    def label(self) -> str:
        return NATIVE if self.native else (f"P{self.months}M" if self.months else f"P{self.days}D")

    def edges(self, start: datetime, end: datetime) -> list[datetime]:
        """Step edges from ``start`` to past ``end``."""
        edges = [start]
        while edges[-1] <= end:
            if self.months:
                k = len(edges) * self.months
                month = start.month - 1 + k
                edges.append(start.replace(year=start.year + month // 12, month=month % 12 + 1, day=1)
                             if start.day > 28 else start.replace(year=start.year + month // 12, month=month % 12 + 1))
            else:
                edges.append(edges[-1] + timedelta(days=self.days))
        return edges


@dataclass(frozen=True)
class MinicubeRequest:
    """Everything a minicube needs, copied on the main thread before a task starts."""

    sources: tuple[SourceSpec, ...]
    start: datetime
    end: datetime
    output: str
    point: tuple[float, float] | None = None
    """Centre (x, y) in ``point_crs``; or give ``extent``."""
    point_crs: str = "EPSG:4326"
    size: int = 128
    """Side in pixels around the point."""
    resolution: float = 10.0
    """Pixel size in the grid CRS's units."""
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str = "EPSG:4326"
    crs: str = ""
    """Grid CRS; empty for the UTM zone of the centre."""
    cadence: str = "P5D"
    format: str = NETCDF
    dask_scheduler: str = ""
    """Address of a Dask scheduler (tcp://host:8786); empty to compute with local threads."""
    scheduler_timeout: float = CONNECT_TIMEOUT_S
    """Seconds to wait for the scheduler (and for its first worker) before giving up."""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if self.start > self.end:
            raise MinicubeError(f"The minicube starts ({self.start:%Y-%m-%d}) after it ends ({self.end:%Y-%m-%d})")
        if (self.point is None) == (self.extent is None):
            raise MinicubeError("Give either a point or an extent")
        if not (isinstance(self.resolution, (int, float)) and math.isfinite(self.resolution) and self.resolution > 0):
            raise MinicubeError(f"The resolution must be a positive number, got {self.resolution!r}")
        if self.format not in (NETCDF, ZARR):
            raise MinicubeError(f"Unknown format '{self.format}'; choose {NETCDF} or {ZARR}")
        if self.point is not None and not 1 <= self.size <= max_side(self.format):
            raise MinicubeError(f"The size must be 1 to {max_side(self.format)} pixels for {self.format}, "
                                f"got {self.size}")
        Cadence.parse(self.cadence)
        if not self.sources:
            raise MinicubeError("Give at least one source")


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone of a point."""
    zone = min(60, max(1, math.floor((lon + 180) / 6) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def minicube_grid(request: MinicubeRequest) -> OutputGrid:
    """The common grid: ``size`` pixels around the point (or the extent), edges on multiples of the resolution."""
    res = float(request.resolution)
    if request.point is not None:
        lon, lat = transform_point(*request.point, request.point_crs, "EPSG:4326")
        crs = request.crs or utm_crs(lon, lat)
        cx, cy = transform_point(*request.point, request.point_crs, crs)
        half = request.size * res / 2
        x0 = math.floor((cx - half) / res + 0.5) * res
        y0 = math.floor((cy - half) / res + 0.5) * res
        grid = OutputGrid(crs, res, (x0, y0, x0 + request.size * res, y0 + request.size * res))
    else:
        west, south, east, north = transform_bounds(request.extent, request.extent_crs, "EPSG:4326")
        crs = request.crs or utm_crs((west + east) / 2, (south + north) / 2)
        grid = OutputGrid(crs, res, snap(transform_bounds(request.extent, request.extent_crs, crs), res))
    limit = max_side(request.format)
    if max(grid.width, grid.height) > limit:
        raise MinicubeError(f"The minicube would be {grid.width} x {grid.height} pixels; the limit is "
                            f"{limit} a side in {request.format}. Use a coarser resolution or a smaller extent"
                            + (", or Zarr." if request.format == NETCDF else "."))
    return grid


def grid_bbox_lonlat(grid: OutputGrid) -> tuple[float, float, float, float]:
    return transform_bounds(grid.bounds, grid.crs, "EPSG:4326")


def search(url: str, collection: str, bbox: tuple[float, float, float, float], start: datetime | None,
           end: datetime | None, fetch: Fetcher, max_items: int = 0) -> list[dict]:
    """The items of ``collection`` touching ``bbox`` (lon/lat) between ``start`` and ``end``."""
    client = CatalogClient(Source(name=url, kind=guess_kind(url), url=url), fetch)
    query = SearchQuery(collections=(collection,), bbox=bbox, start=start, end=end, max_cloud=None,
                        max_items=max_items)
    items: list[dict] = []
    for page in client.search(query):
        items.extend(page.items)
    return touching(items, bbox)


def categorical(item: dict, asset_key: str) -> bool:
    """Quality bands and classified assets are resampled with nearest neighbour and never averaged."""
    quality = quality_band(item)
    if quality is not None and quality.asset_key == asset_key:
        return True
    asset = (item.get("assets") or {}).get(asset_key) or {}
    return bool(asset.get("classification:classes") or asset.get("classification:bitfields"))


def load_stac_bands(items: list[dict], bands: Sequence[str], grid: OutputGrid, resampling: str = "bilinear",
                    chunk: int = BLOCK) -> tuple[Any, list[dict]]:
    """The bands on ``grid`` as a lazy float32 Dataset (physical values, NaN no-data) named as asked,
    and per band its provenance (asset key, resampling, scale, offset)."""
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
                        gdal_options=options)
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


def aggregate(values: np.ndarray, how: str, axis: int = 0) -> np.ndarray:
    """Combine observations along ``axis`` ignoring NaN; all-NaN stays NaN (a sum of nothing is not 0)."""
    import warnings

    present = np.isfinite(values).any(axis=axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if how == "mean":
            out = np.nanmean(values, axis=axis)
        elif how == "min":
            out = np.nanmin(values, axis=axis)
        elif how == "max":
            out = np.nanmax(values, axis=axis)
        elif how == "sum":
            out = np.nansum(values, axis=axis)
        elif how == "median":
            out = np.nanmedian(values, axis=axis)
        elif how == "first":
            index = np.argmax(np.isfinite(values), axis=axis)
            out = np.take_along_axis(values, np.expand_dims(index, axis), axis=axis).squeeze(axis)
        else:
            raise MinicubeError(f"Unknown aggregation '{how}'")
    return np.where(present, out, np.nan).astype(np.float32)


def _is_lazy(values: Any) -> bool:
    return hasattr(values, "__dask_graph__") and values.__dask_graph__() is not None


def _steps(values: np.ndarray, step: np.ndarray, count: int, how: str) -> np.ndarray:
    """(time, y, x) observations aggregated into ``count`` cadence steps; ``step[t]`` is observation t's step."""
    values = np.asarray(values, dtype=np.float32)
    out = np.full((count, *values.shape[1:]), np.nan, dtype=np.float32)
    for k in range(count):
        chosen = step == k
        if chosen.any():
            out[k] = aggregate(values[chosen], how)
    return out


def _first(values: np.ndarray) -> np.ndarray:
    """(time, y, x) observations to (y, x): per pixel the first value with data."""
    return aggregate(np.asarray(values, dtype=np.float32), "first")


def _over_time(values: Any, function: Callable[[np.ndarray], np.ndarray], steps: int | None) -> Any:
    """``function`` applied to every spatial block of (time, y, x) ``values``, the time axis whole;
    ``steps`` is the length of the new time axis, None when the function drops it. Lazy stays lazy."""
    if not _is_lazy(values):
        return function(values)
    from uuid import uuid4

    values = values.rechunk({0: -1})
    if steps is None:
        return values.map_blocks(ByValue(function), drop_axis=0, chunks=values.chunks[1:], dtype=np.float32,
                                 meta=np.empty((0, 0), dtype=np.float32), name=f"cubescope-first-{uuid4().hex}")
    return values.map_blocks(ByValue(function), chunks=((steps,), *values.chunks[1:]), dtype=np.float32,
                             meta=np.empty((0, 0, 0), dtype=np.float32), name=f"cubescope-steps-{uuid4().hex}")


def resample_time(data: Any, how: str, edges: Sequence[datetime] | None) -> Any:
    """``data`` (time, y, x) aggregated into the steps between ``edges`` (time = step start); None: as is.
    Dask-backed data stays lazy (one task per spatial block)."""
    import xarray

    if edges is None:
        return data.astype("float32")
    times = data["time"].values.astype("datetime64[ns]")
    bounds = np.array([e.replace(tzinfo=None) for e in edges], dtype="datetime64[ns]")
    step = np.searchsorted(bounds, times, side="right") - 1
    function = partial(_steps, step=step, count=len(bounds) - 1, how=how)
    out = _over_time(data.data, function, len(bounds) - 1)
    return xarray.DataArray(out, dims=("time", "y", "x"), coords={"time": bounds[:-1]})


def _static(data: Any) -> Any:
    """A layer without time: the first value with data over its acquisitions."""
    import xarray

    return xarray.DataArray(_over_time(data.transpose("time", "y", "x").data, _first, None), dims=("y", "x"))


def load_zarr_variable(url: str, variable: str, grid: OutputGrid, start: datetime, end: datetime,
                       method: str = "linear", fetch: Fetcher | None = None, block: int = BLOCK) -> Any:
    """A Zarr cube's variable on ``grid``, lazily: grid pixel centres transformed into the cube's CRS, then
    interpolated there (``linear`` or ``nearest``); time limited to [start, end]. Each BLOCK x BLOCK
    block reads only the source pixels around it, in this process (the store may need ``fetch``)."""
    from pyproj import CRS, Transformer

    from ..cube.zarr_cube import ZarrError, open_zarr_dataset

    try:
        dataset = open_zarr_dataset(url, fetch=fetch)
    except ZarrError as error:
        raise MinicubeError(str(error)) from error
    if variable not in dataset.data_vars:
        raise MinicubeError(f"The Zarr cube {url} has no variable '{variable}'; it has "
                            f"{', '.join(map(str, dataset.data_vars))}")
    data = dataset[variable]
    wkt = _zarr_crs(dataset, data)
    transformer = None
    if wkt is not None and not CRS.from_user_input(wkt).equals(CRS.from_user_input(grid.crs)):
        transformer = Transformer.from_crs(grid.crs, wkt, always_xy=True)
    if "time" in data.dims:
        data = data.sel(time=slice(np.datetime64(start.replace(tzinfo=None), "ns"),
                                   np.datetime64(end.replace(tzinfo=None), "ns")))
    dims = ("time", "y", "x") if "time" in data.dims else ("y", "x")
    prefix = (data.sizes["time"],) if "time" in data.dims else ()

    def interpolate(rows: slice, cols: slice) -> np.ndarray:
        return _interpolate(data, grid, rows, cols, transformer, method, dims)

    import xarray

    coords = {"time": data["time"].values} if "time" in data.dims else {}
    return xarray.DataArray(_local_blocks(interpolate, prefix, grid, block), dims=dims, coords=coords)


def _interpolate(data: Any, grid: OutputGrid, rows: slice, cols: slice, transformer: Any, method: str,
                 dims: tuple[str, ...]) -> np.ndarray:
    """The block (rows, cols) of the grid interpolated from ``data`` (float64 arithmetic, float32 result)."""
    import xarray

    xs, ys = _centres(grid)
    gx, gy = np.meshgrid(xs[cols], ys[rows])
    if transformer is not None:
        gx, gy = transformer.transform(gx, gy)
    window = {dim: _window(data[dim].values, values) for dim, values in (("x", gx), ("y", gy))}
    if any(part.start >= part.stop for part in window.values()):  # the block lies outside the cube
        return np.full((*([data.sizes["time"]] if "time" in dims else []), *gx.shape), np.nan,
                       dtype=np.float32)
    target = {"x": xarray.DataArray(gx, dims=("y", "x")), "y": xarray.DataArray(gy, dims=("y", "x"))}
    near = data.isel(window).astype("float64")  # reads only the source pixels around the block
    result = near.interp(target, method=method).drop_vars(["x", "y"], errors="ignore")
    return np.asarray(result.transpose(*dims).values, dtype=np.float32)


def _window(coords: np.ndarray, wanted: np.ndarray, margin: int = 2) -> slice:
    """The index range of monotonic ``coords`` covering the finite ``wanted`` values, ``margin`` more
    each side (the neighbours an interpolation uses); empty when they lie outside."""
    wanted = wanted[np.isfinite(wanted)]
    if not wanted.size or not coords.size:
        return slice(0, 0)
    descending = coords.size > 1 and coords[0] > coords[-1]
    ascending = coords[::-1] if descending else coords
    low, high = float(wanted.min()), float(wanted.max())
    if high < ascending[0] - _spacing(ascending) or low > ascending[-1] + _spacing(ascending):
        return slice(0, 0)
    first = max(0, int(np.searchsorted(ascending, low, side="left")) - margin)
    last = min(coords.size, int(np.searchsorted(ascending, high, side="right")) + margin)
    return slice(coords.size - last, coords.size - first) if descending else slice(first, last)


def _spacing(coords: np.ndarray) -> float:
    return float(abs(coords[1] - coords[0])) if coords.size > 1 else 0.0


def _local_blocks(function: Callable[[slice, slice], np.ndarray], prefix: tuple[int, ...], grid: OutputGrid,
                  block: int) -> Any:
    """A lazy array (*prefix, height, width) whose BLOCK x BLOCK blocks are ``function(rows, cols)``, in
    dask layers named LOCAL so that :func:`write` computes them here and never sends them to a cluster."""
    from uuid import uuid4

    import dask
    import dask.array as da

    token = uuid4().hex
    rows = []
    for y0 in range(0, grid.height, block):
        row = []
        for x0 in range(0, grid.width, block):
            h, w = min(block, grid.height - y0), min(block, grid.width - x0)
            task = dask.delayed(function, pure=False)(slice(y0, y0 + h), slice(x0, x0 + w),
                                                      dask_key_name=f"{LOCAL}-task-{token}-{y0}-{x0}")
            row.append(da.from_delayed(task, (*prefix, h, w), dtype=np.float32,
                                       meta=np.empty((0,) * (len(prefix) + 2), dtype=np.float32),
                                       name=f"{LOCAL}-{token}-{y0}-{x0}"))
        rows.append(row)
    return da.block(rows)


def _zarr_crs(dataset: Any, data: Any) -> str | None:
    name = data.attrs.get("grid_mapping") or data.encoding.get("grid_mapping") or "spatial_ref"
    if name in dataset.variables:
        attrs = dataset[name].attrs
        return attrs.get("crs_wkt") or attrs.get("spatial_ref")
    return None


def _centres(grid: OutputGrid) -> tuple[np.ndarray, np.ndarray]:
    x0, _, _, y1 = grid.bounds
    xs = x0 + (np.arange(grid.width) + 0.5) * grid.resolution
    ys = y1 - (np.arange(grid.height) + 0.5) * grid.resolution
    return xs, ys


def _cf_grid_mapping(crs: str) -> dict[str, Any]:
    from pyproj import CRS

    attrs = {k: v for k, v in CRS.from_user_input(crs).to_cf().items() if isinstance(v, (str, int, float))}
    attrs["spatial_ref"] = attrs.get("crs_wkt", "")
    return attrs


def build(request: MinicubeRequest, fetch: Fetcher | None = None, progress: Callable[[float], None] | None = None,
          is_canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] | None = None) -> Any:
    """The minicube as a lazy ``xarray.Dataset`` on one grid, with CF and provenance attributes.

    Only the searches happen here; every variable is a dask array of BLOCK x BLOCK blocks (all cadence
    steps in each) that :func:`write` computes block by block, or ``.compute()`` all at once."""
    from ..stac.http import local_fetcher, requests_fetcher

    fetcher = fetch or (local_fetcher() if all("://" not in s.url for s in request.sources) else requests_fetcher())
    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    grid = minicube_grid(request)
    cadence = Cadence.parse(request.cadence)
    edges = None if cadence.native else cadence.edges(request.start, request.end)
    bbox = grid_bbox_lonlat(grid)
    variables: dict[str, Any] = {}
    for n, spec in enumerate(request.sources):
        if is_canceled():
            raise InterruptedError("Cancelled")
        if spec.is_zarr:
            for name, band in zip(spec.names, spec.sources):
                data = load_zarr_variable(spec.url, band, grid, request.start, request.end, fetch=fetch)
                static = spec.aggregation == STATIC or "time" not in data.dims
                data = _static(data) if static and "time" in data.dims else (
                    data if static else resample_time(data, spec.aggregation, edges))
                data.attrs.update(source_url=spec.url, source_collection="", source_variable=band,
                                  resampling="linear interpolation after transforming the grid's coordinates",
                                  aggregation="static" if static else spec.aggregation)
                variables[_unique(name, variables)] = data
            say(f"{spec.url}: {', '.join(spec.bands)}")
        else:
            items = [] if spec.aggregation == STATIC else search(
                spec.url, spec.collection, bbox, request.start, request.end, fetcher)
            static = spec.aggregation == STATIC or (
                bool(items) and not any((i.get("properties") or {}).get("datetime") for i in items))
            if not items:
                items = search(spec.url, spec.collection, bbox, None, None, fetcher, max_items=200)
                static = True
                if len(group_by_solar_day(items, grid_longitude(grid))) > 1 and spec.aggregation != STATIC:
                    raise MinicubeError(f"No items of {spec.collection} between {request.start:%Y-%m-%d} and "
                                        f"{request.end:%Y-%m-%d} over the minicube")
            if not items:
                raise MinicubeError(f"No items of {spec.collection} touch the minicube "
                                    f"(lon {bbox[0]:.4f} to {bbox[2]:.4f}, lat {bbox[1]:.4f} to {bbox[3]:.4f})")
            loaded, provenance = load_stac_bands(items, spec.sources, grid)
            for name, band, prov in zip(spec.names, spec.sources, provenance):
                data = loaded[band]
                how = "static" if static else ("first" if prov["categorical"] and spec.aggregation in (
                    "mean", "sum", "median") else spec.aggregation)
                data = _static(data) if static else resample_time(data, how, edges)
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

    xs, ys = _centres(grid)
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


def write(dataset: Any, output: str | Path, fmt: str, progress: Callable[[float], None] | None = None,
          is_canceled: Callable[[], bool] = lambda: False, runner: BlockRunner | None = None) -> Path:
    """The minicube written block by block and atomically: into ``<output>.partial`` (NetCDF through a
    temporary ``<output>.partial.zarr``), moved into place when complete. Lazy variables are computed
    one block at a time by ``runner`` (default: local threads); ``progress`` gets percent. A cancelled
    or failed write raises (InterruptedError when cancelled) and leaves neither output nor partial files."""
    import os

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    staging = partial if fmt == ZARR else path.with_name(path.name + ".partial.zarr")
    report = progress or (lambda _p: None)
    share = 100.0 if fmt == ZARR else 85.0  # percent done when the blocks are written
    encoding = _encoding(dataset)
    try:
        for leftover in (partial, staging):
            _remove(leftover)
        written = _stream_zarr(dataset, staging, encoding, runner or BlockRunner(), lambda f: report(share * f),
                               is_canceled)
        if fmt != ZARR:
            _zarr_to_netcdf(written, staging, partial, encoding, lambda f: report(share + (100.0 - share) * f),
                            is_canceled)
            _remove(staging)
        _remove(path)
        os.replace(partial, path)
    except BaseException as error:
        for leftover in (partial, staging):
            _remove(leftover)
        if isinstance(error, Canceled):
            raise InterruptedError("Cancelled") from None
        raise
    return path


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _encoding(dataset: Any) -> dict[str, dict]:
    """CF time units and NaN as the fill value of float variables."""
    encoding: dict[str, dict] = {}
    if "time" in dataset.variables:
        encoding["time"] = {"units": "days since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}
    for name in dataset.data_vars:
        if dataset[name].dtype.kind == "f":
            encoding[name] = {"_FillValue": np.float32(np.nan)}
    return encoding


def _stream_zarr(dataset: Any, store: Path, encoding: dict[str, dict], runner: BlockRunner,
                 progress: Callable[[float], None], is_canceled: Callable[[], bool]) -> Any:
    """Write ``dataset`` into a new Zarr ``store``: the metadata and in-memory variables first, then
    every block of every lazy variable into its own chunk as it is computed. Returns the dataset as
    written (lazy variables chunked with the time axis whole, like the store)."""
    import dask
    import zarr

    lazy = [name for name in dataset.data_vars if _is_lazy(dataset[name].data)]
    dataset = dataset.copy()
    for name in lazy:  # one chunk of the store per block: every time step, BLOCK x BLOCK pixels
        data = dataset[name]
        dataset[name] = data.chunk({dim: -1 if dim == "time" else data.chunks[data.dims.index(dim)][0]
                                    for dim in data.dims})
    dataset.to_zarr(store, mode="w", compute=False, consolidated=False, encoding=encoding)
    group = zarr.open_group(str(store), mode="r+")
    here, anywhere = [], []
    for name in lazy:
        array = dataset[name].data
        (here if _runs_here(array) else anywhere).extend(block_tasks(name, array))
    total, done = max(1, len(here) + len(anywhere)), [0]

    def consume(key: tuple[str, tuple[slice, ...]], block: np.ndarray) -> None:
        name, where = key
        group[name][where] = _encoded(dataset[name], block, encoding.get(name, {}))
        done[0] += 1
        progress(done[0] / total)

    runner.run(anywhere, consume, is_canceled)
    for key, task in here:  # Zarr sources: this process's stores and fetcher, one block at a time
        if is_canceled():
            raise Canceled("Cancelled")
        (block,) = dask.compute(task, scheduler="sync")
        consume(key, block)
    zarr.consolidate_metadata(str(store))
    return dataset


def _runs_here(array: Any) -> bool:
    """Whether a lazy array depends on blocks that only this process can compute (see :data:`LOCAL`)."""
    return any(str(name).startswith(LOCAL) for name in array.__dask_graph__().layers)


def block_tasks(name: str, array: Any) -> list[tuple[tuple[str, tuple[slice, ...]], Any]]:
    """((variable, its slices), delayed block) for every block of a dask array."""
    delayed = array.to_delayed(optimize_graph=True)
    offsets = [np.cumsum((0, *chunks)) for chunks in array.chunks]
    tasks = []
    for index in np.ndindex(*array.numblocks):
        where = tuple(slice(int(o[i]), int(o[i + 1])) for o, i in zip(offsets, index))
        tasks.append(((name, where), delayed[index]))
    return tasks


def _encoded(data: Any, block: np.ndarray, encoding: dict) -> np.ndarray:
    """A block as xarray stores it (CF encoding: the fill value, a dtype if one is asked)."""
    import xarray
    from xarray.conventions import encode_cf_variable

    variable = xarray.Variable(data.dims, block, dict(data.attrs), {**data.encoding, **encoding})
    return np.asarray(encode_cf_variable(variable, name=str(data.name)).values)


def _zarr_to_netcdf(dataset: Any, staging: Path, target: Path, encoding: dict[str, dict],
                    progress: Callable[[float], None], is_canceled: Callable[[], bool]) -> None:
    """Copy the streamed Zarr store into a NetCDF file chunk by chunk (local threads), with the
    metadata of ``dataset``. scipy keeps the whole file in memory until it is closed (see the module)."""
    import dask
    import xarray
    from dask.callbacks import Callback

    counts = {"done": 0, "total": 1}

    def start(dsk: Any, _state: Any) -> None:
        counts["total"] = max(1, len(dsk))

    def before(_key: Any, _dsk: Any, _state: Any) -> None:
        if is_canceled():
            raise Canceled("Cancelled")

    def after(_key: Any, _result: Any, _dsk: Any, _state: Any, _worker: Any) -> None:
        counts["done"] += 1
        progress(min(1.0, counts["done"] / counts["total"]))

    with xarray.open_zarr(staging, consolidated=True) as staged:
        out = dataset.copy()
        for name in dataset.data_vars:
            if _is_lazy(dataset[name].data):
                out[name] = dataset[name].copy(data=staged[name].data)
        with Callback(start_state=start, pretask=before, posttask=after), dask.config.set(scheduler="threads"):
            out.to_netcdf(target, engine=_netcdf_engine(), encoding=encoding)


def _netcdf_engine() -> str:
    import importlib.util

    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        if importlib.util.find_spec(module) is not None:
            return engine
    raise MinicubeError("Writing NetCDF needs netCDF4, h5netcdf or scipy; none is installed (choose Zarr)")


def run(request: MinicubeRequest, fetch: Fetcher | None = None, progress: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] | None = None) -> Path:
    """Build the minicube and write it block by block, on the request's Dask scheduler or with local
    threads; returns the written path. SchedulerUnreachable (an OSError) within the request's timeout
    when the scheduler does not answer."""
    report, say = progress or (lambda _p: None), log or (lambda _m: None)
    with block_runner(request.dask_scheduler, 0, request.scheduler_timeout) as runner:
        dataset = build(request, fetch, lambda p: report(0.05 * p), is_canceled, log)
        say(f"Computing {dataset.sizes['x']:,} x {dataset.sizes['y']:,} px in blocks of {BLOCK} px on "
            f"{runner.description}")
        path = write(dataset, request.output, request.format, lambda p: report(5.0 + 0.95 * p), is_canceled, runner)
    report(100.0)
    say(f"Wrote {path}")
    return path
