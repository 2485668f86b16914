"""The composite methods and time statistics against plain-numpy references, with random stacks.

The references are written here from the definitions (nanmedian, per-pixel loops, polyfit), not
from the code under test: exact for min, max, best-pixel, quality-mosaic and counts, within float
tolerance for mean, median, std and slope.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cubescope.plugin.analysis.ops import composite, statistics
from cubescope.plugin.analysis.ops.blocks import BandStack, BlockSpec, Layer, compute_block
from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def stacks(draw, dtype=np.uint16, max_t: int = 30):
    """(values, valid) with ties, a few observations per pixel or none at all."""
    t = draw(st.integers(1, max_t))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-1.0, 1.0, width=32, allow_nan=False)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(0, 20) | st.integers(int(info.min), int(info.max))
    values = draw(hnp.arrays(dtype, (t, h, w), elements=elements))
    valid = draw(hnp.arrays(np.bool_, (t, h, w)))
    return values, valid


def _masked(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, values.astype(np.float64), np.nan)


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args, **kwargs)


@pytest.mark.parametrize("n", list(range(1, 65)))
def test_sorting_network_sorts_every_length(n):
    rng = np.random.default_rng(n)
    data = rng.integers(0, 7, size=(n, 300)).astype(np.uint16)
    rows, count = composite.sorted_stack(data.copy(), np.ones_like(data, dtype=bool))
    assert np.array_equal(np.stack(rows), np.sort(data, axis=0))
    assert (count == n).all()


@SETTINGS
@given(stacks(np.uint16) | stacks(np.int16) | stacks(np.float32))
def test_median_matches_nanmedian(stack):
    values, valid = stack
    expected = _quiet(np.nanmedian, _masked(values, valid), axis=0)
    np.testing.assert_allclose(composite.median(values, valid), expected, rtol=1e-12, atol=0, equal_nan=True)


@SETTINGS
@given(stacks(np.uint16) | stacks(np.float32))
def test_mean_matches_nanmean(stack):
    values, valid = stack
    expected = _quiet(np.nanmean, _masked(values, valid), axis=0)
    np.testing.assert_allclose(composite.mean(values, valid), expected, rtol=1e-12, equal_nan=True)


@SETTINGS
@given(stacks(np.uint16) | stacks(np.int16) | stacks(np.float32))
def test_min_and_max_are_exact(stack):
    values, valid = stack
    masked = _masked(values, valid)
    assert np.array_equal(composite.minimum(values, valid), _quiet(np.nanmin, masked, axis=0), equal_nan=True)
    assert np.array_equal(composite.maximum(values, valid), _quiet(np.nanmax, masked, axis=0), equal_nan=True)


@SETTINGS
@given(stacks(np.uint16) | stacks(np.uint8, max_t=70), st.data())
def test_median_of_dns_with_zero_nodata_is_the_median(stack, data):
    """The engine's shortcut for DNs with no-data 0 (raw - 1 turns 0 into the sentinel)."""
    values, clear = stack
    masked = np.where(clear, 0, np.iinfo(values.dtype).max).astype(values.dtype)
    expected = composite.median(values, clear & (values != 0))
    assert np.array_equal(composite.median_zero_nodata(values, masked), expected, equal_nan=True)


def test_median_over_many_pixels_and_long_stacks():
    """More columns than one piece, and stacks longer than the network (np.sort path)."""
    rng = np.random.default_rng(7)
    for t in (24, composite.NETWORK_MAX + 6):
        values = rng.integers(0, 10000, size=(t, 3, composite.PIECE // 2 + 11)).astype(np.uint16)
        valid = rng.random(values.shape) > 0.4
        expected = _quiet(np.nanmedian, _masked(values, valid), axis=0)
        np.testing.assert_allclose(composite.median(values, valid), expected, rtol=1e-12, equal_nan=True)
        # The DN path too, over several pieces, the last one shorter than the others.
        masked = np.where(valid, 0, np.iinfo(np.uint16).max).astype(np.uint16)
        expected = _quiet(np.nanmedian, _masked(values, valid & (values != 0)), axis=0)
        np.testing.assert_allclose(composite.median_zero_nodata(values, masked), expected, rtol=1e-12,
                                   equal_nan=True)


def _best_pixel_reference(values, valid, present, order):
    _, h, w = values.shape
    out = np.full((h, w), np.nan)
    chosen = np.full((h, w), -1)
    for y in range(h):
        for x in range(w):
            for candidates in (valid, present):
                hit = next((i for i in order if candidates[i, y, x]), None)
                if hit is not None:
                    out[y, x], chosen[y, x] = values[hit, y, x], hit
                    break
    return out, chosen


@SETTINGS
@given(stacks(np.uint16), st.data())
def test_best_pixel_matches_a_loop(stack, data):
    values, valid = stack
    present = valid | data.draw(hnp.arrays(np.bool_, values.shape))
    counts = valid.reshape(valid.shape[0], -1).sum(axis=1)
    order = sorted(range(values.shape[0]), key=lambda i: (-counts[i], i))
    assert composite.scene_order(counts).tolist() == order
    index, has = composite.best_pixel_index(valid, present, order)
    result = np.where(has, composite.take(values, index).astype(np.float64), np.nan)
    expected, chosen = _best_pixel_reference(values, valid, present, order)
    assert np.array_equal(result, expected, equal_nan=True)
    assert np.array_equal(np.where(has, index, -1), chosen)


@SETTINGS
@given(stacks(np.float32), st.data())
def test_quality_mosaic_picks_the_highest_score(stack, data):
    score, valid = stack
    values = data.draw(hnp.arrays(np.uint16, score.shape))
    index, has = composite.quality_mosaic_index(score.astype(np.float64), valid)
    t, h, w = score.shape
    for y in range(h):
        for x in range(w):
            candidates = [i for i in range(t) if valid[i, y, x]]
            assert has[y, x] == bool(candidates)
            if candidates:
                best = max(candidates, key=lambda i: (score[i, y, x], -i))
                assert index[y, x] == best
                assert composite.take(values, index)[y, x] == values[best, y, x]


def _slope_reference(values, valid, years):
    _, h, w = values.shape
    out = np.full((h, w), np.nan)
    for y in range(h):
        for x in range(w):
            keep = valid[:, y, x]
            if keep.sum() >= 2 and np.ptp(years[keep]) > 0:
                out[y, x] = np.polyfit(years[keep], values[keep, y, x].astype(np.float64), 1)[0]
    return out


@SETTINGS
@given(stacks(np.float32), st.data())
def test_time_statistics_match_numpy(stack, data):
    values, valid = stack
    t = values.shape[0]
    days = sorted(data.draw(st.lists(st.integers(0, 3000), min_size=t, max_size=t, unique=True)))
    years = 2020 + np.asarray(days, dtype=np.float64) / 365.25
    masked = _masked(values, valid)
    references = {
        "mean": _quiet(np.nanmean, masked, axis=0),
        "std": _quiet(np.nanstd, masked, axis=0),
        "min": _quiet(np.nanmin, masked, axis=0),
        "max": _quiet(np.nanmax, masked, axis=0),
        "median": _quiet(np.nanmedian, masked, axis=0),
        "count": valid.sum(axis=0).astype(np.float64),
        "slope": _slope_reference(values, valid, years),
    }
    for name, expected in references.items():
        result = statistics.time_statistic(values, valid, name, years)
        if name in ("min", "max", "count"):
            assert np.array_equal(result, expected, equal_nan=True), name
        else:
            np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=name)


def test_decimal_years():
    from datetime import datetime, timezone

    assert statistics.decimal_year(datetime(2023, 1, 1, tzinfo=timezone.utc)) == 2023.0
    assert statistics.decimal_year(datetime(2024, 7, 2, tzinfo=timezone.utc)) == pytest.approx(2024 + 183 / 366)


@st.composite
def scenes(draw):
    """Raw uint16 red/nir stacks with no-data 0 and an SCL stack, as a block of the engine sees them."""
    t = draw(st.integers(1, 12))
    shape = (t, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    red = draw(hnp.arrays(np.uint16, shape, elements=st.sampled_from([0, 1000, 1500, 2200, 3000, 4000])))
    nir = draw(hnp.arrays(np.uint16, shape, elements=st.sampled_from([0, 1200, 2500, 3300, 5000])))
    scl = draw(hnp.arrays(np.uint8, shape, elements=st.sampled_from([0, 3, 4, 5, 8, 9, 10])))
    return red, nir, scl


@SETTINGS
@given(scenes(), st.sampled_from(composite.METHODS), st.booleans())
def test_block_kernel_scales_masks_and_counts(scene, method, extra):
    """The engine's block function (raw DNs, SCL mask, scale/offset, extra bands) against numpy."""
    red, nir, scl = scene
    t = red.shape[0]
    scale, offset = (1e-4,) * t, (-0.1,) * t
    stacks_ = (BandStack("red", 0, scale, offset), BandStack("nir", 0, scale, offset))
    ndvi = Layer("NDVI", index="ndvi", inputs=(("nir", "nir"), ("red", "red")))
    doy = tuple(range(10, 10 + 5 * t, 5))
    clear = np.isin(scl, SENTINEL2_SCL.clear_values)
    present = red != 0
    counts = (clear & present).reshape(t, -1).sum(axis=1)
    order = tuple(sorted(range(t), key=lambda i: (-counts[i], i)))
    spec = BlockSpec("composite", method, (Layer("red", var="red"), ndvi), stacks_, "scl", SENTINEL2_SCL,
                     order=order, day_of_year=doy, extra_bands=extra, score=ndvi, variables=("red", "nir", "scl"))
    out = compute_block(red, nir, scl, spec=spec)

    red_phys = np.where(present, red.astype(np.float64) * 1e-4 - 0.1, np.nan)
    nir_phys = np.where(nir != 0, nir.astype(np.float64) * 1e-4 - 0.1, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        index = (nir_phys - red_phys) / (nir_phys + red_phys)
    index[(nir_phys + red_phys) == 0] = np.nan
    expected_red, provenance = _reference_method(method, red_phys, clear, order, index, np.asarray(doy))
    tolerance = method in ("median", "mean")
    if tolerance:
        np.testing.assert_allclose(out[0], expected_red.astype(np.float32), rtol=1e-6, equal_nan=True)
    else:
        assert np.array_equal(out[0], expected_red.astype(np.float32), equal_nan=True)
    if not extra:
        assert out.shape[0] == 2
        return
    assert np.array_equal(out[2], (clear & present).sum(axis=0).astype(np.float32))
    assert np.array_equal(out[3], present.sum(axis=0).astype(np.float32))
    if method in composite.SELECTING:
        assert np.array_equal(out[4], provenance.astype(np.float32), equal_nan=True)
    else:
        assert out.shape[0] == 4


def _reference_method(method, phys, clear, order, ndvi, doy):
    t, h, w = phys.shape
    present = ~np.isnan(phys)
    valid = clear & present
    masked = np.where(valid, phys, np.nan)
    provenance = np.full((h, w), np.nan)
    if method in ("median", "mean", "min", "max"):
        function = {"median": np.nanmedian, "mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}[method]
        return _quiet(function, masked, axis=0), provenance
    out = np.full((h, w), np.nan)
    for y in range(h):
        for x in range(w):
            if method == "best-pixel":
                hit = next((i for i in order if valid[i, y, x]), None)
                if hit is None:
                    hit = next((i for i in order if present[i, y, x]), None)
            else:
                candidates = [i for i in range(t) if clear[i, y, x] and np.isfinite(ndvi[i, y, x])]
                hit = max(candidates, key=lambda i: (ndvi[i, y, x], -i)) if candidates else None
            if hit is not None and (method == "best-pixel" or present[hit, y, x]):
                out[y, x] = phys[hit, y, x]
            if hit is not None:
                provenance[y, x] = doy[hit]
    return out, provenance
