"""Writing rasters with GDAL: COGs for the catalog, PNG thumbnails, GeoTIFFs for the truth.

Everything goes through an in-memory dataset and ``CreateCopy``, the way real pipelines
produce COGs (the COG driver needs a complete source to lay out overviews before data).
Only GDAL is used so the generator runs in any QGIS Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

_GDAL_TYPES = {
    np.dtype("uint8"): gdal.GDT_Byte,
    np.dtype("uint16"): gdal.GDT_UInt16,
    np.dtype("float32"): gdal.GDT_Float32,
}

#: COG creation options shared by every asset: deflate, 128 px internal tiles (the minimum the
#: COG driver accepts), horizontal predictor. Kept here so tests and docs can cite them.
COG_OPTIONS = ("COMPRESS=DEFLATE", "BLOCKSIZE=128", "PREDICTOR=YES", "BIGTIFF=NO")


@dataclass(frozen=True)
class Georef:
    """Where a raster sits: GDAL geotransform and EPSG code."""

    geotransform: tuple[float, float, float, float, float, float]
    epsg: int


def _mem_dataset(
    bands: np.ndarray,
    georef: Georef | None,
    nodata: float | None,
    descriptions: list[str] | None = None,
    color_table: dict[int, tuple[int, int, int]] | None = None,
) -> gdal.Dataset:
    if bands.ndim == 2:
        bands = bands[np.newaxis]
    count, rows, cols = bands.shape
    ds = gdal.GetDriverByName("MEM").Create("", cols, rows, count, _GDAL_TYPES[bands.dtype])
    if georef is not None:
        ds.SetGeoTransform(georef.geotransform)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(georef.epsg)
        ds.SetProjection(srs.ExportToWkt())
    for i in range(count):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(bands[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[i])
        if color_table and i == 0:
            ct = gdal.ColorTable()
            for value, rgb in color_table.items():
                ct.SetColorEntry(value, (*rgb, 255))
            band.SetRasterColorTable(ct)
            band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    return ds


def write_cog(
    path: Path,
    data: np.ndarray,
    georef: Georef,
    nodata: float | None,
    resampling: str = "AVERAGE",
    overview_count: int = 1,
    color_table: dict[int, tuple[int, int, int]] | None = None,
) -> None:
    """One-band Cloud-Optimized GeoTIFF with `overview_count` internal overview levels."""
    src = _mem_dataset(data, georef, nodata, color_table=color_table)
    options = [*COG_OPTIONS, f"OVERVIEW_RESAMPLING={resampling}", f"OVERVIEW_COUNT={overview_count}"]
    gdal.GetDriverByName("COG").CreateCopy(str(path), src, options=options)


def write_gtiff(path: Path, bands: np.ndarray, georef: Georef, nodata: float | None,
                descriptions: list[str] | None = None) -> None:
    """Tiled, deflated GeoTIFF for truth rasters (one band per date for the sky masks)."""
    src = _mem_dataset(bands, georef, nodata, descriptions)
    options = ["TILED=YES", "COMPRESS=DEFLATE", "BLOCKXSIZE=128", "BLOCKYSIZE=128", "INTERLEAVE=BAND"]
    gdal.GetDriverByName("GTiff").CreateCopy(str(path), src, options=options)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An 8-bit RGB PNG (no georeferencing, so GDAL writes no side-car file)."""
    src = _mem_dataset(np.ascontiguousarray(np.moveaxis(rgb, -1, 0)), None, None)
    gdal.GetDriverByName("PNG").CreateCopy(str(path), src, options=["ZLEVEL=9"])
