"""What is computed for one spatial block: raw stacks in, float32 result bands out.

The same function runs in a local thread or on a Dask worker, so everything it needs travels in a
small picklable :class:`BlockSpec`: which variables are bands or index inputs, their no-data value
and per-time-slice scale/offset, the quality rule, the scene order and the dates. Raw integer
stacks are composited as integers (a median, min or max of DNs is a DN) and scaled once at the end
when the scale and offset are the same for every slice, which they nearly always are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import composite, statistics
from .indices import compute_index
from .quality import QualityRule

COMPOSITE, STATISTICS = "composite", "statistics"
CLEAROB, TOTALOB, PROVENANCE = "CLEAROB", "TOTALOB", "PROVENANCE"


@dataclass(frozen=True)
class BandStack:
    """A loaded variable (an asset) and how its numbers become physical values."""

    var: str
    nodata: float | None
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    """Per time slice: physical = raw * scale[t] + offset[t]."""

    @property
    def uniform(self) -> bool:
        """One positive scale and one offset for all slices: order statistics can run on raw DNs."""
        return len(set(self.scale)) <= 1 and len(set(self.offset)) <= 1 and (not self.scale or self.scale[0] > 0)


@dataclass(frozen=True)
class Layer:
    """One result band: a band (``var``) or an index (``index`` from ``inputs``)."""

    name: str
    var: str | None = None
    index: str | None = None
    inputs: tuple[tuple[str, str], ...] = ()
    """(common name, var) pairs the index is computed from."""


@dataclass(frozen=True)
class BlockSpec:
    operation: str
    """"composite" or "statistics"."""
    method: str
    """A composite method or a statistic."""
    layers: tuple[Layer, ...]
    bands: tuple[BandStack, ...]
    quality_var: str | None = None
    quality_rule: QualityRule | None = None
    order: tuple[int, ...] = ()
    """Best-pixel scene order (best first)."""
    day_of_year: tuple[int, ...] = ()
    years: tuple[float, ...] = ()
    """Observation times in fractional years (slope)."""
    extra_bands: bool = False
    score: Layer | None = None
    """The quality-mosaic score (NDVI)."""
    variables: tuple[str, ...] = field(default=())
    """Order of the arrays passed to :func:`compute_block`."""

    def band(self, var: str) -> BandStack:
        for stack in self.bands:
            if stack.var == var:
                return stack
        raise KeyError(f"no loaded variable '{var}'")

    @property
    def output_names(self) -> tuple[str, ...]:
        names = [f"{layer.name} {self.method}" for layer in self.layers]
        if self.operation == COMPOSITE and self.extra_bands:
            names += [CLEAROB, TOTALOB]
            if self.method in composite.SELECTING:
                names.append(PROVENANCE)
        return tuple(names)


#: Lookup tables per (rule, types); plain dicts, since functools caches do not pickle by value for Dask.
_TABLES: dict[tuple, np.ndarray] = {}


def _lookup(rule: QualityRule, dtype: str) -> tuple[np.ndarray, int]:
    info = np.iinfo(np.dtype(dtype))
    key = (rule, dtype)
    if key not in _TABLES:
        _TABLES[key] = np.asarray(rule.is_clear(np.arange(info.min, info.max + 1)), dtype=bool)
    return _TABLES[key], int(info.min)


def _masking(rule: QualityRule, quality_dtype: str, dn_dtype: str) -> np.ndarray:
    """Per quality value: 0 where clear, the DN type's maximum where masked (see median_zero_nodata)."""
    key = (rule, quality_dtype, dn_dtype)
    if key not in _TABLES:
        table, _ = _lookup(rule, quality_dtype)
        _TABLES[key] = np.where(table, 0, np.iinfo(np.dtype(dn_dtype)).max).astype(dn_dtype)
    return _TABLES[key]


def masked_dn(rule: QualityRule | None, quality: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype
              ) -> np.ndarray:
    """0 where clear, the maximum of ``dtype`` where the quality band masks (uint8/uint16 quality)."""
    if rule is None or quality is None:
        return np.zeros(shape, dtype=dtype)
    table = _masking(rule, quality.dtype.str, np.dtype(dtype).str)
    return table[quality] if np.iinfo(quality.dtype).min == 0 else table[quality.astype(np.int32) + 2 ** 15]


def _fast_median(spec: BlockSpec, stack: BandStack | None, values: np.ndarray, quality: np.ndarray | None) -> bool:
    """Whether a layer's median can run on DNs with no-data 0 (the common Sentinel-2/Landsat case)."""
    return (spec.operation == COMPOSITE and spec.method == composite.MEDIAN and stack is not None
            and stack.uniform and stack.nodata == 0 and values.dtype.kind == "u" and values.dtype.itemsize <= 2
            and (quality is None or (quality.dtype.kind in "ui" and quality.dtype.itemsize <= 2)))


def clear_mask(rule: QualityRule | None, quality: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Where the quality band says clear; everything is clear without a rule."""
    if rule is None or quality is None:
        return np.ones(shape, dtype=bool)
    if quality.dtype.kind in "ui" and quality.dtype.itemsize <= 2:
        table, low = _lookup(rule, quality.dtype.str)
        return table[quality] if low == 0 else table[quality.astype(np.int32) - low]
    return np.asarray(rule.is_clear(quality), dtype=bool)


def reads_only_clear(spec: BlockSpec) -> bool:
    """Whether the result uses band values only where the quality band says clear, so that a date
    with no clear pixel in a block need not be read for that block. Not so for best-pixel (it falls
    back to the first value that is not no-data) nor with the extra bands (TOTALOB counts every
    observation)."""
    return (spec.quality_var is not None and spec.quality_rule is not None and not spec.extra_bands
            and not (spec.operation == COMPOSITE and spec.method == composite.BEST_PIXEL))


def clear_dates(quality: np.ndarray, rule: QualityRule) -> np.ndarray:
    """Per time slice of a (time, y, x) quality chunk: whether any of its pixels is clear."""
    return clear_mask(rule, quality, quality.shape).reshape(quality.shape[0], -1).any(axis=1)


def present(stack: BandStack, raw: np.ndarray) -> np.ndarray:
    """Observations that are not no-data (nor NaN)."""
    ok = np.ones(raw.shape, dtype=bool) if stack.nodata is None or np.isnan(stack.nodata) else raw != stack.nodata
    if raw.dtype.kind == "f":
        ok &= ~np.isnan(raw)
    return ok


def physical(stack: BandStack, raw: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """raw * scale + offset in float64, per time slice (or per chosen slice ``index``)."""
    scale = np.asarray(stack.scale, dtype=np.float64)
    offset = np.asarray(stack.offset, dtype=np.float64)
    if index is not None:
        return raw.astype(np.float64) * scale[index] + offset[index]
    shape = (-1,) + (1,) * (raw.ndim - 1)
    return raw.astype(np.float64) * scale.reshape(shape) + offset.reshape(shape)


def _physical_nan(stack: BandStack, raw: np.ndarray) -> np.ndarray:
    values = physical(stack, raw)
    values[~present(stack, raw)] = np.nan
    return values


def layer_values(spec: BlockSpec, layer: Layer, data: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, BandStack | None]:
    """(values, present, stack): raw values and their stack for a band, physical floats for an index."""
    if layer.var is not None:
        stack = spec.band(layer.var)
        raw = data[layer.var]
        return raw, present(stack, raw), stack
    inputs = {common: _physical_nan(spec.band(var), data[var]) for common, var in layer.inputs}
    values = np.asarray(compute_index(layer.index or layer.name, inputs), dtype=np.float64)
    return values, np.isfinite(values), None


def _reduce(spec: BlockSpec, values: np.ndarray, valid: np.ndarray, stack: BandStack | None) -> np.ndarray:
    if stack is not None and not (stack.uniform and values.dtype.kind in "ui" and spec.method != composite.MEAN):
        values, stack = physical(stack, values), None
    result = composite.REDUCERS[spec.method](values, valid)
    if stack is not None:
        result = result * (stack.scale[0] if stack.scale else 1.0) + (stack.offset[0] if stack.offset else 0.0)
    return result


def _chosen(values: np.ndarray, stack: BandStack | None, index: np.ndarray, has: np.ndarray) -> np.ndarray:
    picked = composite.take(values, index)
    result = physical(stack, picked, index) if stack is not None else picked.astype(np.float64)
    result[~has] = np.nan
    return result


def _arrays(arrays: tuple) -> tuple[np.ndarray, ...]:
    """Blocks as dask passes them: an array, or a one-element list when the time axis is not concatenated."""
    return tuple(a[0] if isinstance(a, list) and len(a) == 1 else a for a in arrays)


def compute_block(*arrays: np.ndarray, spec: BlockSpec) -> np.ndarray:
    """The result bands (float32, NaN for no data) of one block from its stacks (time, y, x)."""
    arrays = _arrays(arrays)
    data = dict(zip(spec.variables, arrays))
    shape = arrays[0].shape
    quality = data.get(spec.quality_var) if spec.quality_var else None
    rule = spec.quality_rule if quality is not None else None
    cached: dict[str, np.ndarray] = {}

    def clear_of() -> np.ndarray:
        if "clear" not in cached:
            cached["clear"] = clear_mask(rule, quality, shape)
        return cached["clear"]

    out: list[np.ndarray] = []
    first_present: np.ndarray | None = None
    choice: tuple[np.ndarray, np.ndarray] | None = None
    score: tuple[np.ndarray, np.ndarray] | None = None
    if spec.operation == COMPOSITE and spec.method == composite.QUALITY_MOSAIC:
        if spec.score is None:
            raise ValueError("a quality mosaic needs a score (NDVI) layer")
        ndvi, ndvi_ok, _ = layer_values(spec, spec.score, data)
        score = composite.quality_mosaic_index(ndvi, clear_of() & ndvi_ok)
    for number, layer in enumerate(spec.layers):
        if layer.var is not None and _fast_median(spec, spec.band(layer.var), data[layer.var], quality) \
                and not (number == 0 and spec.extra_bands):
            stack, raw = spec.band(layer.var), data[layer.var]
            key = f"masked-{raw.dtype.str}"
            if key not in cached:
                cached[key] = masked_dn(rule, quality, shape, raw.dtype)
            median = composite.median_zero_nodata(raw, cached[key])
            out.append(median * stack.scale[0] + stack.offset[0])
            continue
        values, ok, stack = layer_values(spec, layer, data)
        if first_present is None:
            first_present = ok
        clear = clear_of()
        valid = clear & ok
        if spec.operation == STATISTICS:
            if stack is not None:
                values = physical(stack, values)
            out.append(statistics.time_statistic(values, valid, spec.method, spec.years))
        elif spec.method == composite.BEST_PIXEL:
            index, has = composite.best_pixel_index(valid, ok, spec.order)
            choice = choice or (index, has)
            out.append(_chosen(values, stack, index, has))
        elif spec.method == composite.QUALITY_MOSAIC:
            assert score is not None
            index, has = score
            choice = choice or score
            out.append(_chosen(values, stack, index, has & composite.take(ok, index)))
        else:
            out.append(_reduce(spec, values, valid, stack))
    if spec.operation == COMPOSITE and spec.extra_bands:
        assert first_present is not None
        clear = clear_of()
        out.append(composite.clear_count(clear & first_present).astype(np.float64))
        out.append(composite.clear_count(first_present).astype(np.float64))
        if spec.method in composite.SELECTING and choice is not None:
            doy = np.asarray(spec.day_of_year, dtype=np.float64)
            provenance = doy[choice[0]]
            provenance[~choice[1]] = np.nan
            out.append(provenance)
    return np.stack(out).astype(np.float32)


def clear_counts(*arrays: np.ndarray, spec: BlockSpec) -> np.ndarray:
    """Clear observations per time slice in a block, shape (time, 1, 1) (for the best-pixel order).

    Clear means the quality band says so and the first layer has data there.
    """
    arrays = _arrays(arrays)
    data = dict(zip(spec.variables, arrays))
    shape = arrays[0].shape
    clear = clear_mask(spec.quality_rule, data.get(spec.quality_var) if spec.quality_var else None, shape)
    layer = spec.layers[0]
    if layer.var is not None:
        clear &= present(spec.band(layer.var), data[layer.var])
    else:
        for _, var in layer.inputs:
            clear &= present(spec.band(var), data[var])
    return clear.reshape(shape[0], -1).sum(axis=1, dtype=np.int64).reshape(-1, 1, 1)


def spec_variables(spec: BlockSpec, for_counts: bool = False) -> tuple[str, ...]:
    """The loaded variables a block computation reads, in a fixed order."""
    names: list[str] = []

    def add(var: str | None) -> None:
        if var is not None and var not in names:
            names.append(var)

    layers: Sequence[Layer] = spec.layers[:1] if for_counts else spec.layers
    for layer in list(layers) + ([spec.score] if spec.score is not None and not for_counts else []):
        add(layer.var)
        for _, var in layer.inputs:
            add(var)
    add(spec.quality_var)
    return tuple(names)
