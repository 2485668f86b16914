"""The two Sentinel-2-style tiles and their pixel grids.

Tile A (34TGR) and tile B (35TKL) sit on either side of the UTM 34/35 boundary at 24°E and
overlap by about 1 km there, as neighbouring MGRS tiles of real national cubes do. Origins
are multiples of 20 m so the 10 m and 20 m grids of a tile share their corner (each 20 m
pixel covers exactly 2 x 2 pixels at 10 m), as on the real Sentinel-2 grid.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from osgeo import osr

#: Tile size at 10 m in pixels.
TILE_SIZE_10M = 256


@dataclass(frozen=True)
class TileGrid:
    """One MGRS-like tile: a square UTM grid at 10 m, with its 20 m sibling."""

    utm_zone: int  #: UTM zone number
    latitude_band: str  #: MGRS latitude band letter
    grid_square: str  #: MGRS 100 km square letters
    x_min: float  #: west edge, metres (easting)
    y_max: float  #: north edge, metres (northing)

    @property
    def code(self) -> str:
        """MGRS tile name, e.g. ``34TGR``."""
        return f"{self.utm_zone}{self.latitude_band}{self.grid_square}"

    @property
    def epsg(self) -> int:
        return 32600 + self.utm_zone

    def shape(self, res: int) -> tuple[int, int]:
        """(rows, cols) at resolution `res` metres (10 or 20)."""
        n = TILE_SIZE_10M * 10 // res
        return n, n

    def geotransform(self, res: int) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform at resolution `res`."""
        return (self.x_min, float(res), 0.0, self.y_max, 0.0, -float(res))

    def proj_transform(self, res: int) -> list[float]:
        """The STAC ``proj:transform`` (affine order a, b, c, d, e, f)."""
        return [float(res), 0.0, self.x_min, 0.0, -float(res), self.y_max]

    def pixel_centres(self, res: int) -> tuple[np.ndarray, np.ndarray]:
        """Easting and northing of every pixel centre, each of shape (rows, cols)."""
        rows, cols = self.shape(res)
        xs = self.x_min + (np.arange(cols) + 0.5) * res
        ys = self.y_max - (np.arange(rows) + 0.5) * res
        return np.meshgrid(xs, ys)

    def pixel_centres_lonlat(self, res: int) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of every pixel centre: where the geographic truth is evaluated."""
        return _centres_lonlat(self, res)

    def lonlat_to_pixel(self, lon: float, lat: float, res: int) -> tuple[int, int]:
        """(row, col) of the pixel containing a lon/lat point (may be outside the tile)."""
        x, y = to_utm(self.epsg, np.array([lon]), np.array([lat]))
        return int(np.floor((self.y_max - y[0]) / res)), int(np.floor((x[0] - self.x_min) / res))

    def footprint_lonlat(self, per_edge: int = 8) -> list[list[float]]:
        """Closed ring of the tile outline in lon/lat, densified (edges are not straight)."""
        size = TILE_SIZE_10M * 10
        t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
        x0, y0 = self.x_min, self.y_max
        xs = np.concatenate([x0 + t * size, np.full_like(t, x0 + size), x0 + size - t * size, np.full_like(t, x0)])
        ys = np.concatenate([np.full_like(t, y0), y0 - t * size, np.full_like(t, y0 - size), y0 - size + t * size])
        # Counter-clockwise for GeoJSON (RFC 7946): reverse the clockwise walk above.
        xs, ys = xs[::-1], ys[::-1]
        lon, lat = to_lonlat(self.epsg, xs, ys)
        ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat)]
        ring.append(ring[0])
        return ring

    def bbox_lonlat(self) -> list[float]:
        ring = np.array(self.footprint_lonlat())
        return [round(float(v), 7) for v in (*ring.min(axis=0), *ring.max(axis=0))]


TILE_A = TileGrid(34, "T", "GR", 732320.0, 5044160.0)
TILE_B = TileGrid(35, "T", "KL", 265120.0, 5044160.0)
TILES: tuple[TileGrid, ...] = (TILE_A, TILE_B)


_local = threading.local()


def _transformer(src: int, dst: int) -> osr.CoordinateTransformation:
    """One transformer per thread and pair: OSR transformations are not thread-safe."""
    cache = _local.__dict__.setdefault("transformers", {})
    if (src, dst) not in cache:
        cache[src, dst] = _make_transformer(src, dst)
    return cache[src, dst]


def _make_transformer(src: int, dst: int) -> osr.CoordinateTransformation:
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromEPSG(src)
    b.ImportFromEPSG(dst)
    for s in (a, b):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(a, b)


def _transform(src: int, dst: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = np.shape(x)
    pts = np.column_stack([np.ravel(x), np.ravel(y)]).astype(np.float64)
    out = np.array(_transformer(src, dst).TransformPoints(pts.tolist()), dtype=np.float64)
    return out[:, 0].reshape(shape), out[:, 1].reshape(shape)


def to_lonlat(epsg: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected metres to lon/lat (WGS 84)."""
    return _transform(epsg, 4326, x, y)


def to_utm(epsg: int, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat (WGS 84) to projected metres."""
    return _transform(4326, epsg, lon, lat)


@lru_cache(maxsize=8)
def _centres_lonlat(tile: TileGrid, res: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = tile.pixel_centres(res)
    lon, lat = to_lonlat(tile.epsg, x, y)
    lon.setflags(write=False)
    lat.setflags(write=False)
    return lon, lat


def crs_wkt(epsg: int) -> str:
    """WKT (GDAL's default WKT1 flavour) of an EPSG code."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()
