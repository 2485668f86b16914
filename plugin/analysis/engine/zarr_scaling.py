"""Scale, offset and no-data of a band whose item does not give them but whose Zarr array does.

EOPF items give them on their per-band assets (``raster:scale``, ``raster:offset``, ``nodata``, which the
EOPF Sentinel Zarr Samples Service copies from the arrays); a band found only through a group asset's
``bands`` (``SR_10m:b08``) has none in the item, while its array carries ``scale_factor``,
``add_offset`` and a fill value, which GDAL reads. The reference item's array is opened once, when the
job is planned, with the source's access options; the products of a collection share their encoding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...stac.bands import BandInfo
from ...stac.gdal_env import GdalOpenError, opened
from ...stac.hrefs import gdal_source
from ...stac.zarr_hrefs import split_zarr_href

if TYPE_CHECKING:
    from .analysis_request import AnalysisRequest

#: BandInfo.scaling of a band scaled as its Zarr array says.
ZARR_ATTRIBUTES = "zarr attributes"


def with_array_scaling(info: BandInfo, request: AnalysisRequest) -> BandInfo:
    """``info`` with its Zarr array's scale, offset and no-data when the item gives none; else unchanged."""
    if info.scaling != "none" or not info.href or split_zarr_href(info.href) is None:
        return info
    connection = request.connection
    source = gdal_source(info.href, s3=connection.s3, credentials=dict(request.credentials) or None,
                         options=dict(request.gdal_options) or None, auth_headers=dict(request.auth_headers) or None,
                         auth_scope=connection.url)
    try:
        with opened(source) as dataset:
            band = dataset.GetRasterBand(1)
            scale, offset, nodata = band.GetScale(), band.GetOffset(), band.GetNoDataValue()
    except (GdalOpenError, OSError, RuntimeError):
        return info  # the read itself reports the file
    if scale in (None, 1.0) and offset in (None, 0.0) and (nodata is None or info.nodata is not None):
        return info
    return replace(info, scale=1.0 if scale is None else float(scale), offset=float(offset or 0.0),
                   nodata=info.nodata if info.nodata is not None else nodata, scaling=ZARR_ATTRIBUTES)
