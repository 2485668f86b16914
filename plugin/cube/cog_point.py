"""One COG at one point: open it in this thread (saying why it cannot be), and read one pixel's physical
value. `CogStackReader` runs these in its worker threads, many files at once."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from osgeo import gdal, osr

from ..stac.bands import BandInfo
from ..stac.gdal_env import gdal_config, open_saying_why, share_with_gdal_threads
from ..stac.hrefs import GdalSource
from ..stac.unreadable import UnreadableInputError, cause_of, check_format
from .handle_cache import HandleCache
from .reader import NAN

#: What `read_pixel` returns when the point falls outside the file's raster.
OUTSIDE = object()
_local = threading.local()


class CogReadError(UnreadableInputError):
    """A file could not be opened or read: "Cannot open <url>: HTTP 404 (not found)"."""

    def __init__(self, url: str, cause: str, action: str = "open") -> None:
        super().__init__(url, cause)
        self.action = action

    def __str__(self) -> str:
        return f"Cannot {self.action} {self.url}: {self.cause}"


@dataclass
class OpenedCog:
    """A dataset opened by one thread, with what a point read needs from it."""

    dataset: Any
    band: Any
    inverse: tuple[float, ...]
    wkt: str
    width: int
    height: int
    nodata: float | None
    scale: float | None
    offset: float | None


def _cause(source: GdalSource, message: str) -> str:
    """GDAL's message in a user's words, without the file name it repeats (the message names it)."""
    for name in {source.path, source.description} - {""}:
        message = message.replace(f"`{name}'", "").replace(name, "")
    return cause_of(message.strip(" ,:"))


def transform_to(wkt: str) -> osr.CoordinateTransformation | None:
    """lon/lat -> the dataset CRS, one object per thread (OGR transformations are not thread-safe)."""
    cache: dict[str, Any] = getattr(_local, "transforms", None) or {}
    _local.transforms = cache
    if wkt not in cache:
        target = osr.SpatialReference()
        if not wkt or target.ImportFromWkt(wkt) != 0:
            cache[wkt] = None
        else:
            source = osr.SpatialReference()
            source.ImportFromEPSG(4326)
            for srs in (source, target):
                srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            cache[wkt] = None if source.IsSame(target) else osr.CoordinateTransformation(source, target)
    return cache[wkt]


def _wkt(srs: str) -> str:
    """WKT of a CRS the item declares ("EPSG:32634"), for a file that declares none; '' when unknown."""
    target = osr.SpatialReference()
    return target.ExportToWkt() if srs and target.SetFromUserInput(srs) == 0 else ""


def open_cog(source: GdalSource, media_type: str = "") -> OpenedCog:
    """Open in this thread; OF_VERBOSE_ERROR makes GDAL say why (an HTTP 404 rather than nothing).

    Raises CogReadError with the cause: the HTTP status, "not found", "not a GeoTIFF: GDAL reads it as
    PNG" (a file that is not what its media type or name promises), a geotransform that cannot be used.
    """
    url = source.description or source.path
    dataset, message = open_saying_why(source.path)
    if dataset is None:
        raise CogReadError(url, _cause(source, message or "not found or not a raster"))
    driver = dataset.GetDriver()
    try:
        check_format(url, driver.ShortName if driver is not None else "", media_type)
    except UnreadableInputError as error:
        raise CogReadError(error.url, error.cause) from None
    band = dataset.GetRasterBand(1)
    inverse = gdal.InvGeoTransform(dataset.GetGeoTransform(can_return_null=True) or (0, 1, 0, 0, 0, 1))
    if inverse is None:
        raise CogReadError(url, "its geotransform cannot be inverted")
    if isinstance(inverse, (list, tuple)) and len(inverse) == 2 and isinstance(inverse[1], (list, tuple)):
        inverse = inverse[1]  # old bindings return (success, transform)
    return OpenedCog(dataset, band, tuple(inverse), dataset.GetProjection() or _wkt(source.srs), dataset.RasterXSize,
                     dataset.RasterYSize, band.GetNoDataValue(), band.GetScale(), band.GetOffset())


def _physical(raw: float, band: BandInfo, opened: OpenedCog) -> float:
    nodata = band.nodata if band.nodata is not None else opened.nodata
    if math.isnan(raw) or (nodata is not None and (raw == nodata or (math.isnan(nodata) and math.isnan(raw)))):
        return NAN
    if band.scaling != "none":
        return raw * band.scale + band.offset
    scale = opened.scale if opened.scale is not None else 1.0
    offset = opened.offset if opened.offset is not None else 0.0
    return raw * scale + offset


def read_pixel(source: GdalSource, band: BandInfo, media_type: str, lon: float, lat: float,
               handles: HandleCache[OpenedCog]) -> Any:
    """The physical value of one file at (lon, lat), `OUTSIDE`, or raises CogReadError (an
    UnreadableInputError: its url and cause). Runs in a worker thread; the file stays open in it."""
    with gdal_config(source.config):
        share_with_gdal_threads(source.path)  # GDAL 3.13 reads a Zarr array's chunks in its own threads
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            opened, _ = handles.get(source.path, lambda: open_cog(source, media_type))
            transform = transform_to(opened.wkt)
            x, y = (lon, lat) if transform is None else transform.TransformPoint(lon, lat)[:2]
            inv = opened.inverse
            col = math.floor(inv[0] + inv[1] * x + inv[2] * y)
            row = math.floor(inv[3] + inv[4] * x + inv[5] * y)
            if not (0 <= col < opened.width and 0 <= row < opened.height):
                return OUTSIDE
            gdal.ErrorReset()
            try:
                data = opened.band.ReadAsArray(col, row, 1, 1)
            except RuntimeError as error:  # someone enabled gdal.UseExceptions()
                data, reason = None, str(error)
            else:
                reason = gdal.GetLastErrorMsg() or "read failed"
            if data is None:
                handles.evict(source.path)
                raise CogReadError(source.description or source.path, _cause(source, reason), "read")
            return _physical(float(data[0][0]), band, opened)
        finally:
            gdal.PopErrorHandler()
