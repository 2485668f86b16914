"""STAC metadata that Cubescope writes itself: the items of a built cube, and the items a Zarr cube is
presented as to the engine. One place for the extension URLs, common names and projection fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

EXTENSIONS = ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
              "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
              "https://stac-extensions.github.io/eo/v1.1.0/schema.json"]
ITEM_ASSETS = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
_COMMON_NAMES = {"coastal", "blue", "green", "red", "yellow", "pan", "rededge", "rededge071", "rededge075",
                 "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"}


def common_name(name: str) -> str | None:
    """The eo:bands common name a band named ``name`` stands for, if its name is one."""
    return name.casefold() if name.casefold() in _COMMON_NAMES else None


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epsg(crs: str) -> int | None:
    """The EPSG code of "EPSG:n", or of a WKT whose root carries (or is identified as) one."""
    text = crs.strip()
    match = re.match(r"^EPSG:(\d+)$", text.upper())
    if match:
        return int(match.group(1))
    if not text.upper().startswith(("PROJCS", "GEOGCS", "PROJCRS", "GEOGCRS", "GEODCRS", "COMPOUNDCRS", "BOUNDCRS")):
        return None
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.ImportFromWkt(text) != 0:
        return None
    if srs.GetAuthorityName(None) != "EPSG":
        srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None) if srs.GetAuthorityName(None) == "EPSG" else None
    return int(code) if code and code.isdigit() else None


def projection(crs: str, geotransform: Sequence[float], shape: tuple[int, int]) -> dict[str, Any]:
    """proj:epsg (or proj:wkt2), proj:shape (rows, columns) and proj:transform of a north-up grid.

    ``geotransform`` is GDAL's (x0, dx, 0, y0, 0, dy); proj:transform is the affine's first two rows.
    """
    code = epsg(crs)
    found: dict[str, Any] = {"proj:epsg": code} if code else {"proj:wkt2": crs}
    x0, dx, rx, y0, ry, dy = (float(v) for v in geotransform)
    found.update({"proj:shape": [int(shape[0]), int(shape[1])], "proj:transform": [dx, rx, x0, ry, dy, y0]})
    return found


def polygon(bbox: Sequence[float]) -> dict[str, Any]:
    west, south, east, north = (float(v) for v in bbox)
    return {"type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}
