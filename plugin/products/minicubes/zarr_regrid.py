"""A Zarr cube's variable regridded onto a minicube's grid, lazily and block by block.

Apart from the STAC loading (odc-stac, in :mod:`.minicube`) because it works differently: the
grid's pixel centres are transformed into the cube's CRS and the variable is interpolated there,
each block reading only the source pixels around it. Those blocks run in this process (the store
may need this process's authenticated fetcher), so their dask layers carry the
:data:`.minicube_store.LOCAL` prefix that keeps them off a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from ...analysis.engine.grid import OutputGrid
from ...stac.http import Fetcher
from .errors import MinicubeError
from .store import LOCAL


def load_zarr_variable(url: str, variable: str, grid: OutputGrid, start: datetime, end: datetime, *, block: int,
                       method: str = "linear", fetch: Fetcher | None = None) -> Any:
    """A Zarr cube's variable on ``grid``, lazily: grid pixel centres transformed into the cube's CRS, then
    interpolated there (``linear`` or ``nearest``); time limited to [start, end]. Each ``block`` x ``block``
    block reads only the source pixels around it, in this process (the store may need ``fetch``)."""
    from pyproj import CRS, Transformer

    from ...cube.zarr_cube import ZarrError, open_zarr_dataset

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

    xs, ys = pixel_centres(grid)
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
    """A lazy array (*prefix, height, width) whose ``block`` x ``block`` blocks are ``function(rows, cols)``,
    in dask layers named LOCAL so that :func:`.minicube_store.write` computes them here and never sends
    them to a cluster."""
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


def pixel_centres(grid: OutputGrid) -> tuple[np.ndarray, np.ndarray]:
    """The x coordinates of the grid's columns and the y coordinates of its rows, at pixel centres."""
    x0, _, _, y1 = grid.bounds
    xs = x0 + (np.arange(grid.width) + 0.5) * grid.resolution
    ys = y1 - (np.arange(grid.height) + 0.5) * grid.resolution
    return xs, ys

