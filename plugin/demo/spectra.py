"""Per-class surface reflectance and radar backscatter as smooth functions of the date.

Each vegetated class mixes two end-member spectra with a greenness ``g(day of year)`` built
from logistic steps, so curves are smooth, periodic over the year and easy to read:
forest has mild leaf-on/leaf-off seasonality, winter crops green up in spring and are
harvested in July (bare soil until autumn sowing), summer crops (maize) grow from May to a
September harvest, grassland peaks in late spring. The clear-cut regrows slowly from bare
soil after CHANGE_DATE. Values follow typical Sentinel-2 L2A and Sentinel-1 RTC levels.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from .landscape import BUILT_UP, CHANGE_DATE, CLEAR_CUT, FOREST, GRASSLAND, SUMMER_CROP, WATER, WINTER_CROP

#: Sentinel-2 bands of the demo, in asset order.
BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16")

#: Digital number encoding (Earth Search sentinel-2-c1-l2a convention).
DN_SCALE = 0.0001
DN_OFFSET = -0.1


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _doy(when: date) -> float:
    return float(when.timetuple().tm_yday)


# End members: (soil or dormant, green) reflectance for blue, green, red, nir, swir16.
_END_MEMBERS: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    FOREST.code: ((0.030, 0.045, 0.045, 0.220, 0.170), (0.020, 0.045, 0.022, 0.360, 0.150)),
    GRASSLAND.code: ((0.050, 0.080, 0.100, 0.250, 0.300), (0.030, 0.070, 0.035, 0.380, 0.200)),
    WINTER_CROP.code: ((0.070, 0.100, 0.130, 0.220, 0.310), (0.030, 0.075, 0.030, 0.420, 0.190)),
    SUMMER_CROP.code: ((0.075, 0.105, 0.140, 0.230, 0.320), (0.030, 0.070, 0.032, 0.450, 0.200)),
    CLEAR_CUT.code: ((0.060, 0.085, 0.110, 0.200, 0.280), (0.030, 0.060, 0.035, 0.330, 0.180)),
}
_BUILT = (0.110, 0.120, 0.135, 0.190, 0.240)
_WATER = (0.045, 0.060, 0.040, 0.020, 0.008)


def _leaf_on(d: float) -> float:
    return _sig((d - 115.0) / 7.0) - _sig((d - 295.0) / 9.0)


def greenness(code: int, when: date) -> float:
    """Fraction of the green end member (0 bare or dormant, 1 full canopy)."""
    d = _doy(when)
    if code == FOREST.code:
        return _leaf_on(d)
    if code == GRASSLAND.code:
        return (0.3 + 0.6 * _sig((d - 85.0) / 10.0) - 0.35 * _sig((d - 200.0) / 15.0)
                - 0.25 * _sig((d - 300.0) / 12.0))
    if code == WINTER_CROP.code:
        return (0.2 + 0.75 * _sig((d - 95.0) / 8.0) - 0.55 * _sig((d - 170.0) / 7.0)
                - 0.4 * _sig((d - 195.0) / 2.0) + 0.2 * _sig((d - 300.0) / 10.0))
    if code == SUMMER_CROP.code:
        return 0.9 * _sig((d - 160.0) / 9.0) - 0.55 * _sig((d - 245.0) / 9.0) - 0.35 * _sig((d - 268.0) / 2.0)
    if code == CLEAR_CUT.code:
        days = (when - date.fromisoformat(CHANGE_DATE)).days
        return 0.0 if days < 0 else 0.45 * (1.0 - math.exp(-days / 400.0)) * _leaf_on(d)
    return 0.0


def reflectance(code: int, when: date) -> tuple[float, ...]:
    """Clear-sky surface reflectance of a class on a date, per band of BANDS."""
    d = _doy(when)
    if code == WATER.code:
        bloom = math.exp(-(((d - 200.0) / 40.0) ** 2))
        return (_WATER[0], _WATER[1] + 0.015 * bloom, _WATER[2] + 0.004 * bloom,
                _WATER[3] + 0.006 * bloom, _WATER[4])
    if code == BUILT_UP.code:
        gardens = math.exp(-(((d - 170.0) / 60.0) ** 2))
        return (_BUILT[0], _BUILT[1] + 0.005 * gardens, _BUILT[2] - 0.012 * gardens,
                _BUILT[3] + 0.04 * gardens, _BUILT[4] - 0.01 * gardens)
    soil, green = _END_MEMBERS[code]
    g = greenness(code, when)
    return tuple(s + g * (v - s) for s, v in zip(soil, green))


def to_dn(refl: float) -> int:
    """The digital number of a reflectance: round(refl * 10000 + 1000), at least 1."""
    return max(1, min(65535, math.floor(refl / DN_SCALE - DN_OFFSET / DN_SCALE + 0.5)))


def ndvi(refl: tuple[float, ...]) -> float:
    red, nir = refl[BANDS.index("red")], refl[BANDS.index("nir")]
    return (nir - red) / (nir + red)


# Sentinel-1 RTC gamma0 (linear power): bare level and growth with greenness, per class.
_BACKSCATTER: dict[int, tuple[float, float, float, float]] = {
    FOREST.code: (0.110, 0.030, 0.025, 0.010),
    GRASSLAND.code: (0.050, 0.030, 0.008, 0.008),
    WINTER_CROP.code: (0.045, 0.100, 0.005, 0.035),
    SUMMER_CROP.code: (0.050, 0.120, 0.005, 0.040),
    CLEAR_CUT.code: (0.070, 0.040, 0.010, 0.012),
    BUILT_UP.code: (0.320, 0.0, 0.055, 0.0),
    WATER.code: (0.004, 0.0, 0.0008, 0.0),
}


def backscatter(code: int, when: datetime | date) -> tuple[float, float]:
    """Mean (vv, vh) linear backscatter of a class on a date, before speckle."""
    day = when.date() if isinstance(when, datetime) else when
    vv0, dvv, vh0, dvh = _BACKSCATTER[code]
    g = greenness(code, day)
    return vv0 + dvv * g, vh0 + dvh * g
