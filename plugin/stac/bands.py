"""Find a band by the name a user knows, whatever the catalog keys its assets by.

Earth Search keys Sentinel-2 assets by common name (`red`, `nir`, `scl`), Planetary Computer by band
id (`B04`, `B08`, `SCL`), others by their own names; the band's scale, offset and no-data value live
in `raster:bands` (STAC 1.0) or `bands` (STAC 1.1). Here "red", "B04" and "scene classification"
find the right asset in all of them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .zarr_hrefs import group_band_assets, is_group_asset

_SKIP_ROLES = {"thumbnail", "overview", "metadata"}
_NOT_RASTER = ("application/json", "application/geo+json", "application/xml", "text/", "application/x-protobuf")
#: Other names people use for a band, mapped to the STAC common name or asset key.
_ALIASES = {
    "swir1": "swir16",
    "swir2": "swir22",
    "scene classification": "scl",
    "scene_classification": "scl",
    "scene classification map": "scl",
}
_QUALITY_KEYS = ("scl", "qa_pixel", "cmask", "fmask", "fmask4", "qa")
#: Common names that stand in for one a sensor lacks. Landsat's only NIR band (OLI B5, TM/ETM+ B4) is
#: "nir08" in USGS's, Planetary Computer's and Earth Search's Collection 2 items: no band is "nir",
#: so NDVI, false colour and every NIR index would be refused on Landsat without it.
SUBSTITUTES = {"nir": ("nir08",)}


def with_substitutes(common: str) -> tuple[str, ...]:
    """``common`` and the common names that stand in for it, in order of preference."""
    key = common.strip().casefold()
    return (key, *SUBSTITUTES.get(key, ()))


def first_present(common: str, available: dict[str, str] | set[str]) -> str | None:
    """The first of :func:`with_substitutes` that ``available`` holds (common names, lower case); for a
    dict, its value (the band name the reader knows)."""
    for name in with_substitutes(common):
        if name in available:
            return available[name] if isinstance(available, dict) else name
    return None


@dataclass(frozen=True)
class BandInfo:
    """One band as the readers need it: where it is and how to turn its numbers into physical values."""

    name: str
    """What the caller asked for (the asset key when listing)."""
    asset_key: str
    """Key of the asset holding the band ("" when only the collection's summaries know the band)."""
    common_name: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    """physical = raw * scale + offset."""
    nodata: float | None = None
    resolution: float | None = None
    """Pixel size in the asset's CRS units (metres for UTM)."""
    data_type: str | None = None
    href: str | None = None
    """The asset's href for an item; None for a collection's item_assets."""
    title: str | None = None
    center_wavelength: float | None = None
    """Micrometres (eo:bands)."""
    scaling: str = "none"
    """Where scale/offset came from: "raster:bands", "bands", a Sentinel-2 processing-baseline rule, or "none"."""


class BandNotFound(KeyError):  # noqa: N818 (public API name)
    """No asset matches the requested band; the message lists what there is."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.available = available

    def __str__(self) -> str:
        return self.message


class AmbiguousBand(BandNotFound):
    """The name is the common name of several bands, none of them keyed by it: STAC gives
    Sentinel-2's B05, B06 and B07 (Planetary Computer also B8A) the one common name "rededge", and picking
    one of them silently would compute the wrong band. ``available`` lists the candidates' asset keys."""


def _assets(document: dict) -> tuple[dict[str, dict], bool]:
    """(assets, is_item): an item's assets, else a collection's item_assets."""
    kind = document.get("type")
    if kind == "Feature" or (kind != "Collection" and "geometry" in document):
        return dict(document.get("assets") or {}), True
    return dict(document.get("item_assets") or {}), False


def _is_raster(asset: dict) -> bool:
    roles = set(asset.get("roles") or [])
    if roles & _SKIP_ROLES and "data" not in roles:
        return False
    media = str(asset.get("type") or "").lower()
    if media.startswith(_NOT_RASTER):
        return False
    if media.startswith(("image/png", "image/jpeg")) and "data" not in roles:
        return False
    return True


def _band_lists(asset: dict) -> tuple[list[dict], list[dict], list[dict]]:
    def dicts(value: Any) -> list[dict]:
        return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []

    return dicts(asset.get("eo:bands")), dicts(asset.get("raster:bands")), dicts(asset.get("bands"))


def _band_count(asset: dict) -> int:
    return max(1, *(len(lst) for lst in _band_lists(asset)))


def _names(asset: dict) -> tuple[str | None, str | None]:
    """(common name, band name) of a single-band asset."""
    eo, _, v11 = _band_lists(asset)
    first = (eo or v11 or [{}])[0]
    common = first.get("common_name") or first.get("eo:common_name") or asset.get("eo:common_name")
    name = first.get("name")
    return (str(common) if common else None), (str(name) if name else None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # "nan" and "inf" are valid no-data values
    except (TypeError, ValueError):
        return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _s2_baseline_scaling(item: dict, asset: dict) -> tuple[float, float, str] | None:
    """Sentinel-2 L2A reflectance without raster:bands (Planetary Computer): scale/offset from the baseline.

    ESA's processing baseline 04.00 (January 2022) added 1000 to every reflectance DN; catalogs that
    do not harmonize and do not say so leave readers to subtract it. Reflectance = DN / 10000 - 0.1.
    """
    props = item.get("properties") or {}
    baseline = props.get("s2:processing_baseline")
    family = f"{props.get('constellation', '')} {props.get('platform', '')}".lower().replace(" ", "-")
    common, _ = _names(asset)
    eo, _, _ = _band_lists(asset)
    if baseline is None or "sentinel-2" not in family or not common or "center_wavelength" not in (eo or [{}])[0]:
        return None
    try:
        version = float(str(baseline))
    except ValueError:
        return None
    offset = -0.1 if version >= 4.0 else 0.0
    return 1e-4, offset, f"sentinel-2 processing baseline {baseline}"


def _band_info(name: str, key: str, asset: dict, document: dict, is_item: bool) -> BandInfo:
    eo, raster, v11 = _band_lists(asset)
    rb = raster[0] if raster else {}
    b11 = v11[0] if v11 else {}
    common, _ = _names(asset)
    scale = _number(_first(rb.get("scale"), b11.get("raster:scale"), asset.get("raster:scale")))
    offset = _number(_first(rb.get("offset"), b11.get("raster:offset"), asset.get("raster:offset")))
    if scale is not None or offset is not None:
        scaling = "raster:bands" if rb else "bands"
    elif is_item and (rule := _s2_baseline_scaling(document, asset)) is not None:
        scale, offset, scaling = rule
    else:
        scaling = "none"
    transform = asset.get("proj:transform")
    pixel = abs(float(transform[0])) if isinstance(transform, list) and transform else None
    resolution = _number(_first(rb.get("spatial_resolution"), b11.get("raster:spatial_resolution"),
                                asset.get("raster:spatial_resolution"), asset.get("gsd"),
                                (eo[0] if eo else {}).get("gsd"), pixel))
    nodata = _number(_first(rb.get("nodata"), b11.get("nodata"), asset.get("nodata")))
    data_type = _first(rb.get("data_type"), b11.get("data_type"), asset.get("data_type"))
    wavelength = _number(_first((eo[0] if eo else {}).get("center_wavelength"), b11.get("eo:center_wavelength"),
                                asset.get("eo:center_wavelength")))
    return BandInfo(
        name=name,
        asset_key=key,
        common_name=common,
        scale=1.0 if scale is None else scale,
        offset=0.0 if offset is None else offset,
        nodata=nodata,
        resolution=resolution,
        data_type=str(data_type) if data_type else None,
        href=str(asset["href"]) if is_item and asset.get("href") else None,
        title=str(asset["title"]) if asset.get("title") else None,
        center_wavelength=wavelength,
        scaling=scaling,
    )


def _raster_assets(document: dict) -> tuple[list[tuple[str, dict]], bool]:
    """Raster assets, but not Zarr groups (EOPF's SR_10m): GDAL reads their arrays, see :func:`_grouped`."""
    assets, is_item = _assets(document)
    found = [(k, a) for k, a in assets.items() if isinstance(a, dict) and _is_raster(a) and not is_group_asset(a)]
    return sorted(found, key=lambda pair: pair[0].casefold()), is_item


def _grouped(document: dict) -> list[tuple[str, dict]]:
    """The band arrays of the Zarr group assets, as single-band assets keyed ``SR_10m:b08``."""
    assets, _ = _assets(document)
    return [pair for key, asset in sorted(assets.items()) if isinstance(asset, dict)
            for pair in group_band_assets(key, asset).items()]


def _matches(wanted: str, key: str, asset: dict) -> int | None:
    """How well an asset matches a wanted name: 0 best, None not at all."""
    common, band = _names(asset)
    single = _band_count(asset) == 1
    title = str(asset.get("title") or "").casefold()
    if key.casefold() == wanted:
        return 0
    if single and common and common.casefold() == wanted:
        return 1
    if single and band and band.casefold() == wanted:
        return 2
    if wanted == "scl" and ("(scl)" in title or "scene classification" in title):
        return 3
    return None


def _describe(document: dict, is_item: bool) -> str:
    if is_item and document.get("id"):
        return f"item {document['id']}"
    return f"collection {document['id']}" if document.get("id") else "this document"


def resolve_band(item_or_collection: dict, name: str) -> BandInfo:
    """The asset holding band `name` (asset key, common name or band id; case-insensitive)."""
    wanted = name.strip().casefold()
    wanted = _ALIASES.get(wanted, wanted)
    candidates, is_item = _raster_assets(item_or_collection)
    ranked: list[tuple[int, str, dict]] = []
    # Bands of Zarr group assets (EOPF's SR_10m: its `bands`, each an array of the group) come after the
    # assets themselves: a product's own per-band asset (B08_10m) is the band at its finest resolution.
    grouped = _grouped(item_or_collection)
    for looked_for in with_substitutes(wanted):  # a stand-in only when nothing matches the name itself
        for pool in (candidates, grouped):
            ranked = [(rank, key, asset) for key, asset in pool
                      if (rank := _matches(looked_for, key, asset)) is not None]
            if ranked:
                break
        if ranked:
            break
    if not ranked:
        available = available_band_names(item_or_collection)
        listed = ", ".join(available) if available else "none"
        raise BandNotFound(f"No band '{name}' in {_describe(item_or_collection, is_item)}; available bands: {listed}",
                           available)
    best = min(rank for rank, _, _ in ranked)
    tied = {k: a for rank, k, a in ranked if rank == best}
    bands = {k: _identity(k, a) for k, a in tied.items()}
    if best == 1 and len(set(bands.values())) > 1:
        keys = sorted(tied, key=str.casefold)
        ids = {k: _names(tied[k])[1] or k for k in keys}
        listed = ", ".join(k if ids[k].casefold() == k.casefold() else f"{k} ({ids[k]})" for k in keys)
        raise AmbiguousBand(f"'{name}' is the common name of {len(keys)} bands in "
                            f"{_describe(item_or_collection, is_item)}: {listed}; name one of them", keys)
    # Copies of one band (Copernicus Data Space's B04_10m, B04_20m and B04_60m; Earth Search's red COG
    # beside its red-jp2): the finest is the band itself, the others its resamplings; of two copies at
    # one resolution the COG, which GDAL reads by ranges, not a JPEG 2000 it must decode whole.
    infos = {k: _band_info(name, k, a, item_or_collection, is_item) for k, a in tied.items()}
    best_key = min(infos, key=lambda k: (infos[k].resolution or math.inf, _format_rank(tied[k]), k.casefold()))
    return infos[best_key]


def _format_rank(asset: dict) -> int:
    """0 for a Cloud-Optimized GeoTIFF, 1 for another GeoTIFF or an unknown type, 2 for other formats."""
    media = str(asset.get("type") or "").casefold()
    if "cloud-optimized" in media:
        return 0
    return 1 if not media or "tiff" in media else 2


def _identity(key: str, asset: dict) -> str:
    """What makes two assets the same band: its band id, else its centre wavelength, else its key
    without a resolution suffix ("B04_20m" is B04)."""
    _, band = _names(asset)
    if band:
        return band.casefold()
    eo, _, v11 = _band_lists(asset)
    first = (eo or v11 or [{}])[0]
    wavelength = _number(first.get("center_wavelength") or first.get("eo:center_wavelength"))
    if wavelength:
        return f"{wavelength:.3f} um"
    return re.sub(r"_\d+m$", "", key.casefold())


def available_band_names(item_or_collection: dict) -> list[str]:
    """Asset keys, common names and band ids that `resolve_band` accepts."""
    names: list[str] = []
    for key, asset in _raster_assets(item_or_collection)[0] + _grouped(item_or_collection):
        names.append(key)
        if _band_count(asset) == 1:
            names.extend(n for n in _names(asset) if n)
    seen: set[str] = set()
    return [n for n in names if not (n.casefold() in seen or seen.add(n.casefold()))]


def list_bands(item_or_collection: dict) -> list[BandInfo]:
    """Every single-band raster asset (by asset key); for a collection without item_assets, its summaries."""
    candidates, is_item = _raster_assets(item_or_collection)
    single = [(key, asset) for key, asset in candidates if _band_count(asset) == 1]
    known = {_identity(key, asset) for key, asset in single}  # a group's band that has an asset of its own
    single += [(key, asset) for key, asset in _grouped(item_or_collection) if _identity(key, asset) not in known]
    bands = [_band_info(key, key, asset, item_or_collection, is_item) for key, asset in single]
    if bands or is_item:
        return bands
    summaries = item_or_collection.get("summaries") or {}
    described = summaries.get("eo:bands") or summaries.get("bands") or []
    return [BandInfo(name=str(b.get("name") or b.get("common_name")), asset_key="",
                     common_name=b.get("common_name") or b.get("eo:common_name"),
                     resolution=_number(b.get("gsd")),
                     center_wavelength=_number(b.get("center_wavelength") or b.get("eo:center_wavelength")))
            for b in described if isinstance(b, dict) and (b.get("name") or b.get("common_name"))]


def quality_band(item_or_collection: dict) -> BandInfo | None:
    """The pixel-quality band (Sentinel-2 SCL, Landsat QA_PIXEL, BDC CMASK, HLS Fmask), if any."""
    candidates, is_item = _raster_assets(item_or_collection)
    by_key = {key.casefold(): (key, asset) for key, asset in candidates}
    for wanted in _QUALITY_KEYS:
        if wanted in by_key:
            key, asset = by_key[wanted]
            return _band_info(key, key, asset, item_or_collection, is_item)
    for key, asset in candidates:
        # EOPF's SCL_20m: .../conditions/mask/l2a_classification/r20m/scl
        in_zarr = str(asset.get("href") or "").rstrip("/").rsplit("/", 1)[-1].casefold() == "scl"
        titled = re.search(r"\bfmask\b|cloud mask", str(asset.get("title", "")), re.IGNORECASE)
        if in_zarr or titled or _matches("scl", key, asset) is not None:
            return _band_info(key, key, asset, item_or_collection, is_item)
    return None
