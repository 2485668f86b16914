"""STAC metadata that Cubescope writes itself: the items of a built cube, and the items a Zarr cube is
presented as to the engine. One place for the extension URLs, common names and projection fields."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

EXTENSIONS = ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
              "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
              "https://stac-extensions.github.io/eo/v1.1.0/schema.json"]
ITEM_ASSETS = "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
_COMMON_NAMES = {"coastal", "blue", "green", "red", "yellow", "pan", "rededge", "rededge071", "rededge075",
                 "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"}


#: Sentinel-2 band ids and their STAC common names: the three red-edge bands share one.
SENTINEL2_COMMON_NAMES = {"b01": "coastal", "b02": "blue", "b03": "green", "b04": "red", "b05": "rededge",
                          "b06": "rededge", "b07": "rededge", "b08": "nir", "b8a": "nir08", "b09": "nir09",
                          "b10": "cirrus", "b11": "swir16", "b12": "swir22"}
_SENTINEL2_PREFIX = re.compile(r"^(?:s2|sentinel[-_]?2)[-_]", re.IGNORECASE)


def common_name(name: str) -> str | None:
    """The eo:bands common name a band named ``name`` stands for, if its name is one."""
    return name.casefold() if name.casefold() in _COMMON_NAMES else None


def sentinel2_id(name: str, sentinel2: bool) -> str | None:
    """The Sentinel-2 band id ("b04", "scl") a variable named ``name`` holds: "s2_B04" always (EarthNet
    minicubes); a bare "B04" only in a cube known to be Sentinel-2's (``sentinel2``), because Landsat
    numbers its bands otherwise (OLI's B05 is the NIR, Sentinel-2's a red edge)."""
    stripped = _SENTINEL2_PREFIX.sub("", name)
    if stripped == name and not sentinel2:
        return None
    key = stripped.casefold()
    return key if key in SENTINEL2_COMMON_NAMES or key == "scl" else None


def sentinel2_numbering(names: Iterable[str]) -> bool:
    """Whether a cube's variables are numbered as Sentinel-2's bands: one has an s2_ prefix, or one is
    B8A or SCL, which only Sentinel-2 has."""
    names = list(names)
    bare = {_SENTINEL2_PREFIX.sub("", n).casefold() for n in names}
    return bool(bare & {"b8a", "scl"}) or any(_SENTINEL2_PREFIX.match(n) for n in names)


def sentinel2_scl(names: Iterable[str]) -> str | None:
    """The variable holding Sentinel-2's scene classification ("scl", EarthNet's "s2_SCL"), if any."""
    names = list(names)
    sentinel2 = sentinel2_numbering(names)
    return next((n for n in names if sentinel2_id(n, sentinel2) == "scl"), None)


def variable_common_names(variables: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Variable name -> STAC common name for a cube's variables (name -> attributes): a ``common_name``
    attribute, else a name that is a common name, else a Sentinel-2 band id (bare ids count when the
    cube has the Sentinel-2-only B8A or SCL, or names with an s2_ prefix)."""
    sentinel2 = sentinel2_numbering(variables)
    found = {}
    for name, attrs in variables.items():
        declared = attrs.get("common_name") or attrs.get("eo:common_name")
        band_id = sentinel2_id(name, sentinel2)
        common = (declared.casefold() if isinstance(declared, str) and declared else
                  common_name(name) or SENTINEL2_COMMON_NAMES.get(band_id or ""))
        if common:
            found[name] = common
    return found


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
