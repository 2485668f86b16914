"""A Zarr cube as STAC items, one per time step, so the engine composites it like any collection.

Each item's assets are the cube's (time, y, x) variables at that step, with hrefs GDAL's Zarr
driver opens (``ZARR:"<store URL>":/<variable>:<index>``; ``hrefs.gdal_source`` maps the store URL
to /vsicurl/, /vsis3/... with the source's options and keys). The metadata the engine plans with
comes from the cube's CF attributes: the grid (proj:*), no-data, scale and offset (raster:bands),
common names (eo:bands, from variable names such as ``red`` or ``nir``) and flag classes
(classification:classes, from ``flag_values``/``flag_meanings``), so a ``scl`` variable gets the
Sentinel-2 quality rule as an ``scl`` asset does. odc-stac then loads and aligns these items as it
does COGs: nothing about reprojection is different for a Zarr source.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...stac.written_metadata import (
    CLASSIFICATION,
    EXTENSIONS,
    iso,
    polygon,
    projection,
    sentinel2_scl,
    variable_common_names,
)
from ..ops.quality import flag_classes
from .planning import AnalysisError

if TYPE_CHECKING:
    from ...cube.zarr_cube import ZarrDescription, ZarrVariable

#: No media type (none is registered for one slice of a Zarr array): odc-stac and the band lookup then
#: take an asset for raster data by its "data" role.
_ROLES = ["data"]


def cube_variables(description: ZarrDescription) -> list[ZarrVariable]:
    """The variables that vary in time on the cube's grid: (time, y, x) in that order."""
    dims = (description.time_dim, description.y_dim, description.x_dim)
    return [v for v in description.variables if None not in dims and tuple(v.dims) == dims]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _raster_band(variable: ZarrVariable) -> dict[str, Any]:
    attrs = variable.attrs
    band: dict[str, Any] = {"data_type": variable.dtype}
    fill = _number(attrs.get("_FillValue", attrs.get("missing_value")))
    if fill is not None:
        band["nodata"] = "nan" if math.isnan(fill) else fill
    scale, offset = _number(attrs.get("scale_factor")), _number(attrs.get("add_offset"))
    if scale is not None:
        band["scale"] = scale
    if offset is not None:
        band["offset"] = offset
    if attrs.get("units"):
        band["unit"] = str(attrs["units"])
    return band


def _asset(description: ZarrDescription, variable: ZarrVariable, index: int, common: str | None,
           scl: bool) -> dict[str, Any]:
    asset: dict[str, Any] = {
        "href": f'ZARR:"{description.url}":/{variable.name}:{index}',
        # A Sentinel-2 SCL under another name (EarthNet's s2_SCL) says so where the quality rule looks.
        "title": str(variable.attrs.get("long_name") or variable.name) + (" (SCL)" if scl else ""),
        "roles": list(_ROLES),
        "raster:bands": [_raster_band(variable)],
    }
    if common:
        asset["eo:bands"] = [{"name": variable.name, "common_name": common}]
    classes = flag_classes(variable.attrs)
    if classes:
        asset["classification:classes"] = classes
    return asset


def cube_items(description: ZarrDescription, collection: str = "") -> list[dict[str, Any]]:
    """One item per time step of the cube (all its (time, y, x) variables as assets), in time order.

    AnalysisError when the cube cannot be composited: no time axis, no CRS, an irregular grid, or no
    variable on (time, y, x).
    """
    url = description.url
    if not description.times:
        raise AnalysisError(f"The Zarr cube {url} has no time dimension: there is nothing to composite over time")
    if not description.crs_wkt:
        raise AnalysisError(f"The Zarr cube {url} declares no CRS (no grid_mapping, _CRS or crs_wkt): "
                            "Cubescope cannot place its pixels")
    if description.geotransform is None:
        raise AnalysisError(f"The x/y coordinates of the Zarr cube {url} are not regularly spaced: "
                            "only regular grids can be read through GDAL")
    variables = cube_variables(description)
    if not variables:
        found = ", ".join(f"{v.name} {tuple(v.dims)}" for v in description.variables) or "none"
        raise AnalysisError(f"No variable of the Zarr cube {url} has the dimensions "
                            f"({description.time_dim}, {description.y_dim}, {description.x_dim}); found: {found}")
    shape = (description.dims[str(description.y_dim)], description.dims[str(description.x_dim)])
    proj = projection(description.crs_wkt, description.geotransform, shape)
    bbox = list(description.bbox_lonlat) if description.bbox_lonlat else None
    name = collection or url.rstrip("/").rsplit("/", 1)[-1]
    commons = variable_common_names({v.name: v.attrs for v in variables})
    scl = sentinel2_scl(v.name for v in variables)
    renamed_scl = scl if scl and scl.casefold() != "scl" else None  # "scl" itself is found by its key
    items = []
    for index, when in enumerate(description.times):
        item: dict[str, Any] = {
            "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [*EXTENSIONS, CLASSIFICATION],
            "id": _item_id(name, index, when), "collection": name,
            "geometry": polygon(bbox) if bbox else None,
            "properties": {"datetime": iso(when), "cubescope:zarr_index": index, **proj},
            "assets": {v.name: _asset(description, v, index, commons.get(v.name), v.name == renamed_scl)
                       for v in variables},
            "links": [],
        }
        if bbox:
            item["bbox"] = bbox
        items.append(item)
    return items


def _item_id(name: str, index: int, when: datetime) -> str:
    return f"{name}-{index:05d}-{when:%Y%m%dT%H%M%S}"


def in_period(items: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The items dated within [start, end] (aware datetimes)."""
    from ...stac.items import item_datetime

    return [item for item in items if start <= item_datetime(item) <= end]
