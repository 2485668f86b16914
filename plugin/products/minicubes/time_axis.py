"""Combining a minicube variable's observations over time: into cadence steps, or into one static layer.

Apart from the request types (:mod:`.minicube`) because it is the per-block arithmetic that Dask
workers run: :func:`resample_time` and :func:`static_layer` wrap it in map_blocks tasks that travel as
code (:class:`.executor.ByValue`), so it depends on numpy, xarray and dask only. Lazy (dask) data
stays lazy, one task per spatial block with the time axis whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np

from ...analysis.engine.executor import ByValue
from .errors import MinicubeError


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


def is_lazy(values: Any) -> bool:
    """Whether ``values`` is a dask array (computed later, block by block)."""
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
    if not is_lazy(values):
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


def static_layer(data: Any) -> Any:
    """A layer without time: the first value with data over its acquisitions."""
    import xarray

    return xarray.DataArray(_over_time(data.transpose("time", "y", "x").data, _first, None), dims=("y", "x"))

