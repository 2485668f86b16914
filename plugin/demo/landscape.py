"""The demo landscape: land-cover patches as polygons in lon/lat.

The truth lives in geographic coordinates so that two tiles in different UTM zones that
overlap see exactly the same ground. Patches are designed in a local kilometre frame
centred on 24°E 45.5°N (the UTM 34/35 boundary in Romania), converted once to lon/lat
vertices rounded to 1e-7° and from then on evaluated only in lon/lat: the polygons written
to the truth are exactly the ones used to paint the pixels.

The layout is fixed (it does not depend on the seed) so that tests and documentation can
name points per class; the seed drives the sky (clouds, shadows, swath edges) and speckle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Centre of the local frame: on the zone boundary between UTM 34 and 35.
LON0 = 24.0
LAT0 = 45.5
#: Kilometres per degree at LAT0 (spherical approximation; only used to lay out shapes).
KM_PER_DEG_LON = 111.320 * math.cos(math.radians(LAT0))
KM_PER_DEG_LAT = 110.574


@dataclass(frozen=True)
class LandClass:
    """One class of the truth legend."""

    code: int  #: class code in the truth rasters
    name: str  #: short snake_case name
    worldcover: int  #: ESA WorldCover code the land-cover product uses
    scl: int  #: Sentinel-2 SCL code of a clear pixel of this class
    color: str  #: hex colour for renderings


FOREST = LandClass(1, "forest", 10, 4, "1b6e1b")
GRASSLAND = LandClass(2, "grassland", 30, 4, "b7d36b")
WINTER_CROP = LandClass(3, "winter_crop", 40, 4, "e6c84a")
SUMMER_CROP = LandClass(4, "summer_crop", 40, 4, "d68a2e")
BUILT_UP = LandClass(5, "built_up", 50, 5, "c83232")
WATER = LandClass(6, "water", 80, 6, "2060c0")
CLEAR_CUT = LandClass(7, "clear_cut", 60, 5, "a07850")

CLASSES: tuple[LandClass, ...] = (
    FOREST, GRASSLAND, WINTER_CROP, SUMMER_CROP, BUILT_UP, WATER, CLEAR_CUT,
)
CLASS_BY_CODE = {c.code: c for c in CLASSES}
BACKGROUND = GRASSLAND

#: The clear-cut: a forest patch cut between two autumn 2023 acquisitions.
CHANGE_DATE = "2023-10-12"


@dataclass(frozen=True)
class Patch:
    """A polygon painted with one class; later patches paint over earlier ones."""

    name: str
    code: int
    ring: tuple[tuple[float, float], ...]  #: closed ring of (lon, lat), first == last


def km_to_lonlat(x_km: float, y_km: float) -> tuple[float, float]:
    """Local kilometres to lon/lat, rounded so JSON round-trips exactly."""
    return (
        round(LON0 + x_km / KM_PER_DEG_LON, 7),
        round(LAT0 + y_km / KM_PER_DEG_LAT, 7),
    )


def lonlat_to_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`km_to_lonlat` (without rounding), for smooth fields like clouds."""
    return (np.asarray(lon) - LON0) * KM_PER_DEG_LON, (np.asarray(lat) - LAT0) * KM_PER_DEG_LAT


def _patch(name: str, cls: LandClass, pts_km: list[tuple[float, float]]) -> Patch:
    ring = [km_to_lonlat(x, y) for x, y in pts_km]
    ring.append(ring[0])
    return Patch(name, cls.code, tuple(ring))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> list[tuple[float, float]]:
    return [
        (cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n))
        for k in range(n)
    ]


def _buffer_line(pts: list[tuple[float, float]], width: float) -> list[tuple[float, float]]:
    """A band of `width` km around a gently bending polyline (mitred joints)."""
    half = width / 2
    left, right = [], []
    for i, (x, y) in enumerate(pts):
        x0, y0 = pts[max(i - 1, 0)]
        x1, y1 = pts[min(i + 1, len(pts) - 1)]
        dx, dy = x1 - x0, y1 - y0
        norm = math.hypot(dx, dy)
        nx, ny = -dy / norm, dx / norm
        left.append((x + nx * half, y + ny * half))
        right.append((x - nx * half, y - ny * half))
    return left + right[::-1]


def _fields(
    prefix: str,
    x_edges: list[float],
    y_edges: list[float],
    classes: list[LandClass],
    margin: float = 0.012,
    jitter: float = 0.02,
) -> list[Patch]:
    """A patchwork of fields with grass margins; vertex jitter from a fixed generator."""
    rng = np.random.default_rng(sum(map(ord, prefix)))
    patches = []
    k = 0
    for j in range(len(y_edges) - 1):
        for i in range(len(x_edges) - 1):
            x0, x1 = x_edges[i] + margin, x_edges[i + 1] - margin
            y0, y1 = y_edges[j] + margin, y_edges[j + 1] - margin
            jit = rng.uniform(-jitter, jitter, size=8)
            corners = [
                (x0 + jit[0], y0 + jit[1]), (x1 + jit[2], y0 + jit[3]),
                (x1 + jit[4], y1 + jit[5]), (x0 + jit[6], y1 + jit[7]),
            ]
            patches.append(_patch(f"{prefix}-{k}", classes[k % len(classes)], corners))
            k += 1
    return patches


# Water bodies (local km): the DEM's valleys follow them too.
_LAKE = (0.05, 0.02, 0.33, 0.22)  # centre x, y, radius x, y
_POND = (-1.3, -0.2, 0.13, 0.09)
_RIVER_WEST = ((-2.4, 0.02), (-1.8, -0.02), (-1.3, 0.02), (-0.8, 0.12), (-0.2, 0.06))
_RIVER_EAST = ((0.3, 0.0), (0.8, -0.1), (1.3, 0.05), (1.8, -0.15), (2.4, -0.05))


def _layout() -> tuple[list[Patch], Patch]:
    """The patches in painting order, and the clear-cut polygon (painted over forest later)."""
    w, s, g, f, b, water = WINTER_CROP, SUMMER_CROP, GRASSLAND, FOREST, BUILT_UP, WATER
    p: list[Patch] = []
    # Fields south-west (tile A), in the overlap, east and north-east (tile B).
    p += _fields("fields-sw", [-2.3, -1.9, -1.55, -1.2, -0.85, -0.5],
                 [-1.45, -0.95, -0.47], [w, s, g, s, w, w, s, w, s, g])
    p += _fields("fields-mid", [-0.5, -0.02, 0.5], [-0.82, -0.42], [w, s])
    p += _fields("fields-se", [0.5, 0.95, 1.4, 1.85, 2.3],
                 [-1.45, -0.95, -0.45], [s, w, g, w, w, s, s, w])
    p += _fields("fields-ne", [1.15, 1.55, 1.9, 2.3], [0.7, 1.05, 1.45], [w, s, s, g, w, s])
    # Pasture with one field between the river and the road in tile A.
    p.append(_patch("field-west", s, [(-2.0, -0.3), (-1.55, -0.29), (-1.56, -0.08), (-2.0, -0.07)]))
    # The northern forest, from tile A across the overlap into tile B, with a glade.
    p.append(_patch("forest-north", f, [
        (-2.4, 0.15), (-1.6, 0.05), (-1.15, 0.3), (-0.85, 0.55), (-0.3, 0.5), (0.2, 0.58),
        (0.7, 0.5), (1.05, 0.62), (1.12, 1.0), (1.0, 1.5), (-2.4, 1.5),
    ]))
    p.append(_patch("forest-glade", g, _ellipse(-1.6, 0.85, 0.25, 0.17)))
    p.append(_patch("forest-east", f, [(1.5, 0.2), (2.0, 0.15), (2.4, 0.3), (2.4, 0.62), (1.6, 0.6)]))
    # Lake in the overlap, river through it, a pond in tile A.
    p.append(_patch("lake", water, _ellipse(*_LAKE)))
    p.append(_patch("river-west", water, _buffer_line(list(_RIVER_WEST), 0.04)))
    p.append(_patch("river-east", water, _buffer_line(list(_RIVER_EAST), 0.05)))
    p.append(_patch("pond", water, _ellipse(*_POND)))
    # Villages (one in the overlap) and roads.
    p.append(_patch("village-mid", b, [
        (-0.38, -0.88), (0.32, -0.86), (0.42, -1.08), (0.15, -1.45), (-0.3, -1.45), (-0.45, -1.12),
    ]))
    p.append(_patch("hamlet-west", b, [(-1.85, -1.2), (-1.55, -1.18), (-1.56, -0.98), (-1.84, -1.0)]))
    p.append(_patch("village-east", b, [(1.55, -0.55), (2.0, -0.58), (2.05, -0.92), (1.6, -0.9)]))
    p.append(_patch("road-ew", b, _buffer_line(
        [(-2.4, -0.42), (-1.0, -0.38), (0.0, -0.34), (1.0, -0.4), (2.4, -0.3)], 0.02)))
    p.append(_patch("road-ns", b, _buffer_line([(1.45, -1.5), (1.5, -0.36)], 0.02)))
    clear_cut = _patch("clear-cut", CLEAR_CUT, [
        (-0.8, 0.68), (-0.15, 0.72), (-0.12, 1.08), (-0.55, 1.12), (-0.82, 0.95),
    ])
    return p, clear_cut


PATCHES, CHANGE_PATCH = _layout()


def points_in_ring(lon: np.ndarray, lat: np.ndarray, ring: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Even-odd rule point-in-polygon, vectorised over points."""
    xs = np.array([v[0] for v in ring])
    ys = np.array([v[1] for v in ring])
    inside = np.zeros(lon.shape, dtype=bool)
    box = (lon >= xs.min()) & (lon <= xs.max()) & (lat >= ys.min()) & (lat <= ys.max())
    if not box.any():
        return inside
    px, py = lon[box], lat[box]
    hit = np.zeros(px.shape, dtype=bool)
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = xs[i], ys[i], xs[i + 1], ys[i + 1]
        if y0 == y1:
            continue
        crosses = (y0 > py) != (y1 > py)
        x_at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        hit ^= crosses & (px < x_at)
    inside[box] = hit
    return inside


def classify(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Class codes (before the clear-cut) at the given points."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    out = np.full(lon.shape, BACKGROUND.code, dtype=np.uint8)
    for patch in PATCHES:
        out[points_in_ring(lon, lat, patch.ring)] = patch.code
    return out


def change_mask(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """True where the forest is cleared on CHANGE_DATE."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return points_in_ring(lon, lat, CHANGE_PATCH.ring)


def class_at(lon: float, lat: float, after_change: bool = False) -> int:
    """The class code at one point, optionally after the clear-cut."""
    code = int(classify(np.array([lon]), np.array([lat]))[0])
    if after_change and code == FOREST.code and change_mask(np.array([lon]), np.array([lat]))[0]:
        return CLEAR_CUT.code
    return code


def _distance_to_water(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Approximate distance (km) to the nearest river centreline or lake/pond shore."""
    d = np.full(np.shape(x), np.inf)
    for cx, cy, rx, ry in (_LAKE, _POND):
        r = np.hypot((x - cx) / rx, (y - cy) / ry)
        d = np.minimum(d, np.maximum(r - 1.0, 0.0) * min(rx, ry))
    for line in (_RIVER_WEST, _RIVER_EAST):
        for (x0, y0), (x1, y1) in zip(line, line[1:]):
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
            d = np.minimum(d, np.hypot(x - (x0 + t * dx), y - (y0 + t * dy)))
    return d


def elevation(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Smooth hills (metres) sloping down into the river valley; water is flat at 385 m."""
    x, y = lonlat_to_km(lon, lat)
    relief = 22.0 + 9.0 * y + 4.0 * np.sin(3.1 * x + 0.7) * np.cos(2.3 * y - 0.4)
    relief += 70.0 * np.exp(-((x + 1.5) ** 2 + (y - 1.0) ** 2) / 0.5)
    relief += 55.0 * np.exp(-((x - 1.3) ** 2 + (y - 1.2) ** 2) / 0.4)
    relief += 18.0 * np.exp(-((x - 1.6) ** 2 + (y + 1.1) ** 2) / 0.3)
    valley = 1.0 - np.exp(-((_distance_to_water(x, y) / 0.35) ** 2))
    z = 385.5 + valley * relief
    return np.where(classify(lon, lat) == WATER.code, 385.0, z)
