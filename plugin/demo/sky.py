"""Clouds, cloud shadows, cirrus and swath edges, drawn per acquisition from the seed.

The sky is a smooth field in the local kilometre frame (so both tiles see the same cloud
where they overlap), sampled at 20 m pixel centres: a 10 m pixel's sky state is its 20 m
parent's, which keeps the 20 m SCL and the 10 m bands consistent. Shadows are the clouds
displaced away from the sun by ``cloud height / tan(sun elevation)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .landscape import lonlat_to_km

CLEAR, CLOUD, SHADOW, CIRRUS, NODATA = 0, 1, 2, 3, 255
#: Sky-state legend of the truth ``*_sky.tif`` rasters.
SKY_LEGEND = {CLEAR: "clear", CLOUD: "cloud", SHADOW: "cloud_shadow", CIRRUS: "thin_cirrus", NODATA: "nodata"}
#: Sentinel-2 SCL codes used by the demo.
SCL_NODATA, SCL_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 0, 3, 8, 9, 10

CLOUD_HEIGHT_KM = 0.6
#: Reflectance of a fully opaque cloud per band (blue, green, red, nir, swir16).
CLOUD_SPECTRUM = (0.50, 0.50, 0.51, 0.54, 0.40)
#: Reflectance cirrus of full thickness adds per band.
CIRRUS_ADD = (0.09, 0.08, 0.07, 0.06, 0.03)
#: A shadowed pixel's reflectance is the clear one times this.
SHADOW_FACTOR = 0.35
#: Cloud opacity above which SCL says "high probability" (9) instead of "medium" (8).
HIGH_PROBABILITY_ALPHA = 0.7

# Where the cloud-cover quantiles are taken: the union of both tiles in local km.
_SAMPLE_X = np.linspace(-2.1, 2.1, 106)
_SAMPLE_Y = np.linspace(-1.3, 1.3, 66)


@dataclass(frozen=True)
class SkyScenario:
    """What the sky does on one acquisition; all lengths in local kilometres."""

    index: int  #: acquisition index
    kind: str  #: ``clear``, ``cloudy``, ``very_cloudy`` or ``cirrus``
    noise_seed: int  #: seeds the fractal noise the clouds are cut from
    threshold: float  #: cloud where the noise exceeds this (inf: no cloud)
    spread: float  #: noise range over which opacity goes from 0.5 to 1
    cirrus: tuple[float, float] | None  #: (streak direction in radians, threshold) or None
    brightness: float  #: scales CLOUD_SPECTRUM
    shadow_shift: tuple[float, float]  #: from a pixel towards the sun, to the cloud that shades it
    swath_edge: tuple[float, float] | None  #: (x at y=0, dx/dy): no data east of this line


@dataclass(frozen=True)
class SkyLayers:
    """The sky of one tile on one date at 20 m."""

    state: np.ndarray  #: uint8, SKY_LEGEND codes
    scl: np.ndarray  #: uint8, SCL code where the sky decides (0 where the land class does)
    alpha: np.ndarray  #: float64, cloud opacity or cirrus thickness, 0 elsewhere


# Fractal value noise: lattices of random values, smoothly interpolated, summed over octaves.
_EXTENT = (-5.0, 5.0, -4.0, 4.0)  # covers both tiles plus the longest shadow shift
_OCTAVES = ((1.2, 1.0), (0.6, 0.5), (0.3, 0.25), (0.15, 0.125), (0.075, 0.06))


@lru_cache(maxsize=16)
def _lattices(noise_seed: int) -> list[tuple[float, np.ndarray]]:
    rng = np.random.default_rng(noise_seed)
    out = []
    for step, amp in _OCTAVES:
        nx = int((_EXTENT[1] - _EXTENT[0]) / step) + 2
        ny = int((_EXTENT[3] - _EXTENT[2]) / step) + 2
        out.append((step, amp * rng.uniform(-1.0, 1.0, size=(ny, nx))))
    return out


def _interpolate(lattice: np.ndarray, step: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    gx = np.clip((x - _EXTENT[0]) / step, 0.0, lattice.shape[1] - 1.001)
    gy = np.clip((y - _EXTENT[2]) / step, 0.0, lattice.shape[0] - 1.001)
    i, j = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - i, gy - j
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    top = lattice[j, i] * (1 - sx) + lattice[j, i + 1] * sx
    bottom = lattice[j + 1, i] * (1 - sx) + lattice[j + 1, i + 1] * sx
    return top * (1 - sy) + bottom * sy


def _field(scn: SkyScenario, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cumulus-like fractal noise."""
    f = np.zeros(np.shape(x))
    for step, lattice in _lattices(scn.noise_seed):
        f += _interpolate(lattice, step, x, y)
    return f


def _cirrus_field(scn: SkyScenario, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fibrous streaks: the same noise stretched along the wind direction."""
    angle = scn.cirrus[0]  # type: ignore[index]
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    lattices = _lattices(scn.noise_seed + 1)
    return (_interpolate(lattices[0][1], 1.2, u / 3.0, v * 1.5)
            + _interpolate(lattices[2][1], 0.3, u / 3.0, v * 1.5))


def _plan(n: int, rng: np.random.Generator, keep_clear: set[int]) -> dict[int, str]:
    """Which acquisitions get which sky: about a third cloudy, a few very cloudy."""
    candidates = [i for i in range(n) if i not in keep_clear]
    cloudy = rng.choice(candidates, size=round(n / 3), replace=False)
    kinds = {int(i): "cloudy" for i in cloudy}
    for i in cloudy[:3]:
        kinds[int(i)] = "very_cloudy"
    for i in cloudy[3:5]:
        kinds[int(i)] = "cirrus"
    return kinds


def make_scenarios(
    seed: int, times: list, sun: list[tuple[float, float]], keep_clear: set[int]
) -> list[SkyScenario]:
    """One scenario per acquisition, reproducible from `seed`; `keep_clear` stay cloudless."""
    rng = np.random.default_rng([seed, 2])
    n = len(times)
    kinds = _plan(n, rng, keep_clear)
    others = [i for i in range(n) if i not in keep_clear]
    edge_dates = set(rng.choice(others, size=n // 4, replace=False).tolist())
    sx, sy = np.meshgrid(_SAMPLE_X, _SAMPLE_Y)
    out = []
    for i in range(n):
        kind = kinds.get(i, "clear")
        az, el = sun[i]
        shift_len = CLOUD_HEIGHT_KM / math.tan(math.radians(el))
        shift = (shift_len * math.sin(math.radians(az)), shift_len * math.cos(math.radians(az)))
        scn = SkyScenario(i, kind, int(rng.integers(2**31)), math.inf, 1.0, None,
                          float(rng.uniform(0.85, 1.1)), shift, None)
        if kind in ("cloudy", "very_cloudy"):
            target = float(rng.uniform(0.7, 0.92) if kind == "very_cloudy" else rng.uniform(0.03, 0.4))
            f = _field(scn, sx, sy)
            thr = float(np.quantile(f, 1.0 - target))
            scn = replace(scn, threshold=thr, spread=max(float(f.max()) - thr, 1e-6))
        if kind == "cirrus" or (kind == "cloudy" and rng.uniform() < 0.3):
            scn = replace(scn, cirrus=(float(rng.uniform(0, math.pi)), float(rng.uniform(0.2, 0.5))))
        if i in edge_dates:
            scn = replace(scn, swath_edge=(float(rng.uniform(1.0, 1.8)), float(rng.uniform(0.15, 0.3))))
        out.append(scn)
    return out


def render_sky(scn: SkyScenario, lon: np.ndarray, lat: np.ndarray) -> SkyLayers:
    """Sky state, SCL override and opacity at the given (20 m pixel centre) points."""
    x, y = lonlat_to_km(lon, lat)
    state = np.full(x.shape, CLEAR, dtype=np.uint8)
    scl = np.zeros(x.shape, dtype=np.uint8)
    alpha = np.zeros(x.shape, dtype=np.float64)
    if math.isfinite(scn.threshold):
        f = _field(scn, x, y)
        cloud = f > scn.threshold
        a = 0.5 + 0.5 * np.clip((f - scn.threshold) / scn.spread, 0.0, 1.0)
        shaded = _field(scn, x + scn.shadow_shift[0], y + scn.shadow_shift[1]) > scn.threshold
        shadow = shaded & ~cloud
        state[shadow] = SHADOW
        scl[shadow] = SCL_SHADOW
        state[cloud] = CLOUD
        scl[cloud] = np.where(a[cloud] > HIGH_PROBABILITY_ALPHA, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
        alpha[cloud] = a[cloud]
    if scn.cirrus is not None:
        c = _cirrus_field(scn, x, y)
        thin = (c > scn.cirrus[1]) & (state != CLOUD)
        state[thin] = CIRRUS
        scl[thin] = SCL_CIRRUS
        alpha[thin] = 0.3 + 0.7 * np.clip((c[thin] - scn.cirrus[1]) / 0.6, 0.0, 1.0)
    if scn.swath_edge is not None:
        x0, slope = scn.swath_edge
        off = x > x0 + slope * y
        state[off] = NODATA
        scl[off] = SCL_NODATA
        alpha[off] = 0.0
    return SkyLayers(state, scl, alpha)
