"""Assets that point inside a Zarr hierarchy, as ESA's EOPF products are published.

An EOPF Sentinel-2 L2A product is one ``.zarr`` store; the EOPF Sentinel Zarr Samples Service
(stac.core.eopf.eodc.eu) describes it with assets whose hrefs go into that store (names as the service's
item generator, EOPF-Sample-Service/eopf-stac ``sentinel2/constants.py``, writes them):

- a group of arrays at one resolution, ``SR_10m`` -> ``<product>.zarr/measurements/reflectance/r10m``
  (also ``SR_20m``, ``SR_60m``), media type ``application/vnd+zarr``, roles data/reflectance/dataset,
  with a ``bands`` list (``name`` "B02", ``eo:common_name`` "blue", ...);
- one array per band at its finest resolution, ``B08_10m`` -> ``.../r10m/b08`` (the array is the band
  id in lower case: ``b8a`` for B8A), and ``SCL_20m`` -> ``conditions/mask/l2a_classification/r20m/scl``;
- ``product`` (the store) and ``product_metadata`` (its ``.zmetadata``).

Here: where the store ends and the array path begins (GDAL opens ``ZARR:"<store>":/<array path>``), the
band arrays a group asset holds, and the CRS an item declares for arrays that carry none GDAL reads
(EOPF arrays give ``proj:epsg`` in their attributes, which GDAL's Zarr driver does not read; their
x/y coordinate arrays do give GDAL the geotransform). Pure: no QGIS, no GDAL.
"""

from __future__ import annotations

import re
from typing import Any

#: ``<group asset key>:<array>``: the key of a band found in a group asset's ``bands`` (``SR_10m:b08``).
GROUP_SEPARATOR = ":"
#: An href inside a store: the store is everything up to the first path segment ending in ``.zarr``.
_INSIDE = re.compile(r"^(?P<store>.*?[^/]\.zarr)/(?P<inner>[^?#]*?)/*$", re.IGNORECASE)


def split_zarr_href(href: str) -> tuple[str, str] | None:
    """(store, array path) of an href inside a Zarr store, or None for any other href.

    ``https://h/p/S2C_MSIL2A_x.zarr/measurements/reflectance/r10m/b08`` gives
    (``https://h/p/S2C_MSIL2A_x.zarr``, ``measurements/reflectance/r10m/b08``). Not split: a store itself,
    its metadata objects (``.zmetadata``, ``.zattrs``, JSON) and URLs with a query (GDAL appends chunk
    keys to the store's URL, after any query, so a signed URL cannot be a store).
    """
    if "?" in href or "#" in href:
        return None
    match = _INSIDE.match(href.strip())
    if not match or not match.group("inner"):
        return None
    inner = match.group("inner")
    last = inner.rsplit("/", 1)[-1]
    if last.startswith(".") or last.lower().endswith(".json"):
        return None
    return match.group("store"), inner


def _is_zarr(asset: dict) -> bool:
    return "zarr" in str(asset.get("type") or "").lower() or split_zarr_href(str(asset.get("href") or "")) is not None


def is_group_asset(asset: dict) -> bool:
    """A Zarr group of several band arrays (EOPF's ``SR_10m``): roles ``dataset`` or several ``bands``."""
    bands = asset.get("bands")
    return (isinstance(asset, dict) and _is_zarr(asset) and isinstance(bands, list)
            and ("dataset" in (asset.get("roles") or []) or len(bands) > 1))


def array_name(band: dict) -> str:
    """The array of a band in an EOPF resolution group: its id in lower case (B08 -> b08, B8A -> b8a)."""
    return str(band.get("name") or "").strip().lower()


def group_band_assets(key: str, asset: dict) -> dict[str, dict[str, Any]]:
    """One single-band asset per entry of a group asset's ``bands``, keyed ``<key>:<array>``, its href the
    array's (the group's href + ``/b08``); the group's other fields (gsd, proj:*) are kept."""
    if not is_group_asset(asset):
        return {}
    common = {k: v for k, v in asset.items() if k not in ("bands", "eo:bands", "raster:bands", "href")}
    href = str(asset.get("href") or "").rstrip("/")
    out: dict[str, dict[str, Any]] = {}
    for band in asset["bands"]:
        if isinstance(band, dict) and array_name(band):
            name = array_name(band)
            out[f"{key}{GROUP_SEPARATOR}{name}"] = {**common, "bands": [band],
                                                     **({"href": f"{href}/{name}"} if href else {})}
    return out


def asset_of(document: dict, key: str) -> dict[str, Any] | None:
    """The asset ``key`` of an item (or item_assets of a collection), including the band assets
    :func:`group_band_assets` makes of its group assets; None when there is none."""
    assets = document.get("assets") or document.get("item_assets") or {}
    found = assets.get(key)
    if isinstance(found, dict):
        return found
    group, sep, _ = key.partition(GROUP_SEPARATOR)
    if sep and isinstance(assets.get(group), dict):
        return group_band_assets(group, assets[group]).get(key)
    return None


def declared_crs(item: dict, asset: dict | None = None) -> str:
    """The CRS an item (or its asset) declares, as GDAL takes it ("EPSG:32634"), or ''."""
    for fields in (asset or {}, item.get("properties") or {}):
        code = fields.get("proj:code")
        if isinstance(code, str) and code.strip():
            return code.strip()
        epsg = fields.get("proj:epsg")
        if isinstance(epsg, int) and not isinstance(epsg, bool):
            return f"EPSG:{epsg}"
    return ""
