"""The output grid of an analysis: CRS, pixel size and extent, snapped to the data's own pixel grid.

By default the grid is the data's native CRS (the most common among the items) at the finest
resolution of the bands used, and its pixel edges fall on the items' pixel edges, so a composite
of native data involves no resampling at all. The extent is the requested one clipped to the
items' footprints. A grid that would be absurdly large is refused with the size it would have.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ...stac.bands import BandNotFound, resolve_band
from ...stac.items import item_bbox, item_epsg

#: Refuse grids with more pixels than this (per band): 1.6 x 10^9 is 40,000 x 40,000.
MAX_PIXELS = 1_600_000_000

Bounds = tuple[float, float, float, float]


class GridError(ValueError):
    """The grid cannot be made (no overlap, unknown CRS, bad resolution); the message says why."""


class GridTooLarge(GridError):  # noqa: N818 (public API name)
    """The grid would be absurdly large; the message gives its size."""

    def __init__(self, width: int, height: int, bands: int, resolution: float, crs: str, limit: int) -> None:
        self.width, self.height, self.bands = width, height, bands
        size = width * height * bands * 4
        super().__init__(
            f"The output would be {width:,} x {height:,} pixels x {bands} band(s) "
            f"({_human(size)} as float32) at a resolution of {resolution:g} in {crs_label(crs)}; the limit "
            f"is {limit:,} pixels per band. Use a coarser resolution or a smaller extent.")


def crs_label(crs: str) -> str:
    """A CRS as a message names it: a code ("EPSG:32634") as it is; a WKT by its name and code,
    "World_Mollweide (ESRI:54009)", never the whole of it."""
    if len(crs) <= 40:
        return crs
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        parsed = CRS.from_user_input(crs)
    except CRSError:
        return f"{crs[:40]}…"
    code = parsed.to_authority()
    return f"{parsed.name} ({code[0]}:{code[1]})" if code else parsed.name


def _human(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:.1f}"


human_size = _human


@dataclass(frozen=True)
class OutputGrid:
    """A north-up pixel grid: ``crs``, square ``resolution`` and pixel-aligned ``bounds``."""

    crs: str
    """"EPSG:32634", or WKT for CRSs without a code."""
    resolution: float
    """Pixel size in the CRS's units."""
    bounds: Bounds
    """(xmin, ymin, xmax, ymax); the width and height are whole multiples of ``resolution``."""

    def __post_init__(self) -> None:
        if not (isinstance(self.resolution, (int, float)) and math.isfinite(self.resolution)
                and self.resolution > 0):
            raise GridError(f"The resolution must be a positive number, got {self.resolution!r}")
        x0, y0, x1, y1 = self.bounds
        if not (x1 > x0 and y1 > y0):
            raise GridError(f"The extent {self.bounds} is empty")

    @property
    def width(self) -> int:
        return round((self.bounds[2] - self.bounds[0]) / self.resolution)

    @property
    def height(self) -> int:
        return round((self.bounds[3] - self.bounds[1]) / self.resolution)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL's geotransform of the grid (top-left origin, north up)."""
        return (self.bounds[0], self.resolution, 0.0, self.bounds[3], 0.0, -self.resolution)

    def geobox(self):  # -> odc.geo.geobox.GeoBox
        """The grid as odc-geo's GeoBox, which odc-stac loads onto."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        x0, _, _, y1 = self.bounds
        transform = Affine(self.resolution, 0.0, x0, 0.0, -self.resolution, y1)
        return GeoBox((self.height, self.width), transform, self.crs)

    def blocks(self, size: int) -> Iterator[tuple[int, int, int, int]]:
        """(row, col, height, width) windows of at most ``size`` pixels, row by row."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield row, col, min(size, self.height - row), min(size, self.width - col)


def item_crs(item: dict) -> str | None:
    """"EPSG:n" from proj:epsg / proj:code, else the proj:wkt2 text; None without projection metadata."""
    code = item_epsg(item)
    if code is not None:
        return f"EPSG:{code}"
    wkt = (item.get("properties") or {}).get("proj:wkt2")
    return wkt if isinstance(wkt, str) and wkt.strip() else None


def native_crs(items: Sequence[dict]) -> str:
    """The CRS most items are in (ties: the first item's): "EPSG:n", or WKT for CRSs without a code."""
    codes = [code for code in (item_crs(i) for i in items) if code is not None]
    if not codes:
        raise GridError("The items have no projection metadata (proj:epsg / proj:code / proj:wkt2): "
                        "choose a target CRS")
    counts = Counter(codes)
    best = max(counts.values())
    return next(c for c in codes if counts[c] == best)


def _asset_transform(item: dict, asset_key: str) -> list[float] | None:
    asset = (item.get("assets") or {}).get(asset_key) or {}
    transform = asset.get("proj:transform") or (item.get("properties") or {}).get("proj:transform")
    return list(transform) if isinstance(transform, list) and len(transform) >= 6 else None


def native_resolution(items: Sequence[dict], bands: Sequence[str]) -> tuple[float, tuple[float, float]]:
    """(finest pixel size of ``bands``, a pixel corner (x, y) of that band's grid) from the items."""
    best: tuple[float, tuple[float, float]] | None = None
    for item in items[:50]:
        for band in bands:
            try:
                info = resolve_band(item, band)
            except BandNotFound:
                continue
            transform = _asset_transform(item, info.asset_key)
            resolution = abs(float(transform[0])) if transform else info.resolution
            if not resolution:
                continue
            corner = (float(transform[2]), float(transform[5])) if transform else (0.0, 0.0)
            if best is None or resolution < best[0]:
                best = (resolution, corner)
        if best is not None:
            break
    if best is None:
        raise GridError(f"No resolution is known for the bands {', '.join(bands)}: give a resolution")
    return best


def transform_bounds(bounds: Bounds, source_crs: str, target_crs: str) -> Bounds:
    """``bounds`` in ``target_crs`` (edges densified). pyproj directly: shapely geometries can meet a
    different GEOS inside QGIS than the one they were built for."""
    if source_crs == target_crs:
        return tuple(bounds)  # type: ignore[return-value]
    from pyproj import Transformer

    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    return tuple(transformer.transform_bounds(*bounds, densify_pts=21))  # type: ignore[return-value]


def transform_point(x: float, y: float, source_crs: str, target_crs: str) -> tuple[float, float]:
    from pyproj import Transformer

    return Transformer.from_crs(source_crs, target_crs, always_xy=True).transform(x, y)


def _native_bounds(item: dict) -> Bounds | None:
    """The item's exact extent in its own CRS from proj:transform and proj:shape, if it has them."""
    props = item.get("properties") or {}
    transform, shape = props.get("proj:transform"), props.get("proj:shape")
    if not (isinstance(transform, list) and len(transform) >= 6 and isinstance(shape, list) and len(shape) == 2):
        return None
    a, _, c, _, e, f = (float(v) for v in transform[:6])
    if transform[1] or transform[3]:
        return None  # rotated grids: use the footprint
    xs, ys = (c, c + a * shape[1]), (f, f + e * shape[0])
    return min(xs), min(ys), max(xs), max(ys)


def items_bounds(items: Sequence[dict], crs: str) -> Bounds | None:
    """The union of the items' extents in ``crs``: exact for items in ``crs``, else from their bboxes."""
    boxes: list[Bounds] = []
    lonlat: list[Bounds] = []
    for item in items:
        exact = _native_bounds(item) if item_crs(item) == crs else None
        if exact is not None:
            boxes.append(exact)
        elif (bbox := item_bbox(item)) is not None:
            lonlat.append(bbox)
    if lonlat:
        union = (min(b[0] for b in lonlat), min(b[1] for b in lonlat), max(b[2] for b in lonlat),
                 max(b[3] for b in lonlat))
        boxes.append(transform_bounds(union, "EPSG:4326", crs))
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _equivalent_resolution(size: float, native: str, target: str, native_bounds: Bounds | None) -> float:
    """The pixel size in ``target`` units of a ``size`` pixel of ``native`` at the data's centre."""
    if native_bounds is None:
        raise GridError(f"Give a resolution in the units of {crs_label(target)}")
    cx, cy = (native_bounds[0] + native_bounds[2]) / 2, (native_bounds[1] + native_bounds[3]) / 2
    a = transform_point(cx, cy, native, target)
    b = transform_point(cx + size, cy, native, target)
    c = transform_point(cx, cy + size, native, target)
    return (math.dist(a, b) + math.dist(a, c)) / 2


def snap(bounds: Bounds, resolution: float, corner: tuple[float, float] = (0.0, 0.0)) -> Bounds:
    """``bounds`` grown outwards to pixel edges of the grid through ``corner`` (to 1e-6 pixel)."""
    ax, ay = corner

    def down(v: float, a: float) -> float:
        return a + math.floor((v - a) / resolution + 1e-6) * resolution

    def up(v: float, a: float) -> float:
        return a + math.ceil((v - a) / resolution - 1e-6) * resolution

    return down(bounds[0], ax), down(bounds[1], ay), up(bounds[2], ax), up(bounds[3], ay)


def output_grid(
    items: Sequence[dict],
    bands: Sequence[str],
    extent: Bounds | None,
    extent_crs: str = "EPSG:4326",
    crs: str | None = None,
    resolution: float | None = None,
    max_pixels: int = MAX_PIXELS,
    n_bands: int = 1,
) -> OutputGrid:
    """The grid for ``items``: the requested extent (or the items' union) clipped to the items'
    footprints, in ``crs`` (default native) at ``resolution`` (default the finest of ``bands``)."""
    if not items:
        raise GridError("There are no items to make a grid from")
    native = native_crs(items)
    target = crs or native
    data = items_bounds(items, target)
    if resolution is not None and not (math.isfinite(resolution) and resolution >= 0):
        raise GridError(f"The resolution must be a positive number (0 for native), got {resolution!r}")
    corner = (0.0, 0.0)
    if resolution:
        size = float(resolution)
        if target == native:
            corner = native_resolution(items, bands)[1]
    else:
        size, corner = native_resolution(items, bands)
        if target != native:
            size, corner = _equivalent_resolution(size, native, target, items_bounds(items, native)), (0.0, 0.0)
    wanted = transform_bounds(tuple(extent), extent_crs, target) if extent is not None else data  # type: ignore[arg-type]
    if wanted is None:
        raise GridError("The items have no footprints (bbox/geometry) and no extent was given")
    if data is not None:
        clipped = (max(wanted[0], data[0]), max(wanted[1], data[1]), min(wanted[2], data[2]), min(wanted[3], data[3]))
        if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
            raise GridError(f"The extent {tuple(round(v, 6) for v in wanted)} in {crs_label(target)} does not "
                            f"touch the items' footprints {tuple(round(v, 6) for v in data)}")
        wanted = clipped
    snapped = snap(wanted, size, corner)
    width = round((snapped[2] - snapped[0]) / size)
    height = round((snapped[3] - snapped[1]) / size)
    if width * height > max_pixels:
        raise GridTooLarge(width, height, n_bands, size, target, max_pixels)
    return OutputGrid(crs=target, resolution=size, bounds=snapped)
