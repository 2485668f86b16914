"""Per-pixel statistics of a time series over its valid (clear) observations, on numpy arrays.

``values[t, ...]`` with ``valid[t, ...]`` and the observation times in fractional years; the result
is float64 with NaN where a statistic is undefined (no observation; fewer than two for the slope).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from . import composite

MEAN, STD, MIN, MAX, MEDIAN, COUNT, SLOPE = "mean", "std", "min", "max", "median", "count", "slope"
STATISTICS: tuple[str, ...] = (MEAN, STD, MIN, MAX, MEDIAN, COUNT, SLOPE)
"""In the order of the Processing enum."""

UNITS = {SLOPE: "per year", COUNT: "observations"}


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise ValueError(f"Unknown statistic '{statistic}'; choose one of {', '.join(STATISTICS)}")
    return statistic


def decimal_year(when: datetime) -> float:
    """2023-07-02T12:00Z -> 2023.5: the year plus the elapsed fraction of it (leap years counted)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    start = datetime(when.year, 1, 1, tzinfo=timezone.utc)
    end = datetime(when.year + 1, 1, 1, tzinfo=timezone.utc)
    return when.year + (when - start).total_seconds() / (end - start).total_seconds()


def _prepare(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if values.shape != valid.shape:
        raise ValueError(f"values {values.shape} and valid {valid.shape} differ in shape")
    data = np.asarray(values, dtype=np.float64)
    return data, valid & np.isfinite(data)


def std(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Population standard deviation (ddof=0, as numpy's default), two-pass for accuracy."""
    data, ok = _prepare(values, valid)
    count = ok.sum(axis=0)
    center = composite.mean(data, ok)
    squares = np.where(ok, (data - center) ** 2, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.sqrt(squares / count)
    result[count == 0] = np.nan
    return result


def slope(values: np.ndarray, valid: np.ndarray, years: Sequence[float] | np.ndarray) -> np.ndarray:
    """Least-squares linear trend per year over the valid observations (NaN with fewer than two dates)."""
    data, ok = _prepare(values, valid)
    times = np.asarray(years, dtype=np.float64)
    if times.shape != (data.shape[0],):
        raise ValueError(f"{data.shape[0]} observations but {times.shape} times")
    times = (times - times.min()).reshape((-1,) + (1,) * (data.ndim - 1))
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(ok, times, 0.0).sum(axis=0) / count
        v_mean = np.where(ok, data, 0.0).sum(axis=0) / count
        dt = np.where(ok, times - t_mean, 0.0)
        dv = np.where(ok, data - v_mean, 0.0)
        spread = (dt * dt).sum(axis=0)
        result = (dt * dv).sum(axis=0) / spread
    result[(count < 2) | ~(spread > 0)] = np.nan
    return result


def time_statistic(values: np.ndarray, valid: np.ndarray, statistic: str,
                   years: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """One statistic of the stack per pixel, float64."""
    check_statistic(statistic)
    if statistic == COUNT:
        return composite.clear_count(_prepare(values, valid)[1]).astype(np.float64)
    if statistic == STD:
        return std(values, valid)
    if statistic == SLOPE:
        if years is None:
            raise ValueError("the slope needs the observation times (years)")
        return slope(values, valid, years)
    reducer = {MEAN: composite.mean, MIN: composite.minimum, MAX: composite.maximum, MEDIAN: composite.median}
    return reducer[statistic](values, valid)
