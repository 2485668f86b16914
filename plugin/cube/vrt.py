"""Composites from separate band assets as VRTs, and a display stretch measured on the data.

STAC items keep each band in its own COG, often at different resolutions (10 m and 20 m for
Sentinel-2); QGIS renders an RGB composite from one multi-band raster, so a small VRT stacks them
without copying pixels. The VRT stays openable later: remote sources are written as absolute
``/vsicurl/`` (or ``/vsis3/``) paths, local ones as absolute paths. Sources read with auth headers
keep their ``/vsicurl?header_file=...&url=...`` paths: QGIS rendering the VRT has no other way to
send the headers, and the VRT names only the private header file, never a header value.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import numpy as np
from osgeo import gdal

from ..stac.gdal_env import GdalOpenError, gdal_config, opened, read_array
from ..stac.hrefs import GdalSource

#: The overview used for statistics: the smallest one at least this many pixels wide and high.
STRETCH_MIN_SIZE = 256
#: A GDAL driver prefix or URL scheme (two letters or more: ``C:`` is a Windows drive).
_PREFIXED = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")


def merged_config(sources: Sequence[GdalSource]) -> dict[str, str]:
    """The options of all sources together; sources that need contradicting options cannot share a VRT."""
    config: dict[str, str] = {}
    for source in sources:
        for key, value in source.config.items():
            if config.setdefault(key, value) != value:
                raise ValueError(f"{source.description} needs GDAL option {key} with a value other sources "
                                 "of the same composite do not accept; load the bands as separate layers")
    return config


def _gdal_path(path: str) -> str:
    """Local paths made absolute, so the VRT does not depend on the current directory."""
    if path.startswith("/vsi") or _PREFIXED.match(path):  # /vsicurl/..., ZARR:"...", http://... stay as they are
        return path
    return os.path.abspath(path)


def stack_vrt(sources: Sequence[GdalSource], out_path: str, band_names: Sequence[str], *,
              decibels: bool = False, srs: str = "") -> str:
    """One VRT band per single-band source, on the finest grid among them (nearest resampling).

    ``band_names`` become the band descriptions. With ``decibels`` each band is ``10·log10`` of its
    source (radar backscatter in linear power), computed by GDAL's ``dB`` pixel function when read.
    ``srs`` ("EPSG:32634") is the VRT's CRS when its sources declare none GDAL reads (EOPF Zarr arrays).
    Returns ``out_path``.
    """
    if not sources:
        raise ValueError("A composite needs at least one band")
    if len(band_names) != len(sources):
        raise ValueError(f"{len(sources)} bands but {len(band_names)} band names: {list(band_names)}")
    options = gdal.BuildVRTOptions(separate=True, resolution="highest", resampleAlg="nearest",
                                   **({"outputSRS": srs} if srs else {}))
    description = ", ".join(s.description or s.path for s in sources)
    with gdal_config(merged_config(sources)):
        gdal.ErrorReset()
        try:
            dataset = gdal.BuildVRT(out_path, [_gdal_path(s.path) for s in sources], options=options)
        except RuntimeError as error:  # gdal.UseExceptions() was called by someone in this process
            raise GdalOpenError(f"Cannot build a composite of {description}: {error}") from error
        if dataset is None or dataset.RasterCount != len(sources):
            reason = gdal.GetLastErrorMsg() or "a source could not be opened or has more than one band"
            raise GdalOpenError(f"Cannot build a composite of {description}: {reason}")
        for index, name in enumerate(band_names, start=1):
            dataset.GetRasterBand(index).SetDescription(str(name))
        dataset.FlushCache()
        dataset = None
    if decibels:
        _to_decibels(out_path)
    return out_path


def rename_sources(vrt_path: str, rename: Callable[[str], str]) -> list[str]:
    """Rewrite the VRT's source file names with ``rename`` (no source is opened); returns the new names.

    A reopened project's VRT gets its sources' new header files this way, on the main thread,
    before anything renders it.
    """
    tree = ET.parse(vrt_path)
    names = []
    for element in tree.getroot().iter("SourceFilename"):
        element.text = rename(element.text or "")
        names.append(element.text)
    tree.write(vrt_path, encoding="utf-8")
    return names


def _to_decibels(vrt_path: str) -> None:
    """Turn every band of a VRT into a derived band computing 10·log10 of its source, as Float32."""
    tree = ET.parse(vrt_path)
    for band in tree.getroot().iter("VRTRasterBand"):
        band.set("subClass", "VRTDerivedRasterBand")
        band.set("dataType", "Float32")
        function = ET.Element("PixelFunctionType")
        function.text = "dB"
        arguments = ET.Element("PixelFunctionArguments", {"fact": "10"})
        band.insert(0, arguments)
        band.insert(0, function)
        nodata = band.find("NoDataValue")
        if nodata is None:
            nodata = ET.SubElement(band, "NoDataValue")
        nodata.text = "nan"
    tree.write(vrt_path, encoding="utf-8")


def _stats_band(band: gdal.Band) -> gdal.Band:
    """The smallest overview still at least STRETCH_MIN_SIZE in both directions, else the band itself."""
    best = band
    for index in range(band.GetOverviewCount()):
        overview = band.GetOverview(index)
        if overview is None:
            continue
        if min(overview.XSize, overview.YSize) >= STRETCH_MIN_SIZE and \
                overview.XSize * overview.YSize < best.XSize * best.YSize:
            best = overview
    return best


def colour_stretch(stretches: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """One (low, high) for every band of a colour composite: from the lowest band's low to the
    brightest band's high.

    Stretching red, green and blue each to its own range changes the colours: a dark forest, lowest
    in every band, turns black, and a scene dominated by one cover takes its complement's tint. One
    range keeps the bands' proportions, as true- and false-colour renderings do.
    """
    if not stretches:
        return ()
    common = (min(low for low, _ in stretches), max(high for _, high in stretches))
    return tuple(common for _ in stretches)


def percentile_stretch(source: GdalSource, band: int = 1,
                       percentiles: tuple[float, float] = (2, 98)) -> tuple[float, float]:
    """(low, high) values of a band for a contrast stretch, as stored (before scale and offset).

    Read from an overview (one small read, even over HTTP) and ignoring no-data, masked and
    non-finite pixels, so a swath edge full of zeros or -inf dB does not flatten the picture.
    """
    with opened(source) as dataset:
        if not 1 <= band <= dataset.RasterCount:
            raise ValueError(f"{source.description} has {dataset.RasterCount} band(s), not a band {band}")
        chosen = _stats_band(dataset.GetRasterBand(band))
        values = read_array(chosen, source.description).astype("float64", copy=False)
        mask = read_array(chosen.GetMaskBand(), source.description) > 0
    valid = values[mask & np.isfinite(values)]
    if valid.size == 0:
        raise ValueError(f"{source.description} band {band} has no valid pixels (all no-data)")
    low, high = np.percentile(valid, percentiles)
    return float(low), float(high)
