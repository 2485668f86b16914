"""Pixel quality rules: which values of a collection's quality band mean "clear sky, valid pixel".

Each family of products says it differently: Sentinel-2 L2A by scene classes (`scl`), Landsat
Collection 2 by bits of `QA_PIXEL`, the Brazil Data Cube by `CMASK`/`Fmask4` class values. A rule
is found from the item's or collection's assets, or made from what the user typed ("4,5,6").
No data and fill values never count as clear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...stac.bands import quality_band
from ...stac.written_metadata import sentinel2_scl

CLASSES = "classes"
BITS = "bits"


@dataclass(frozen=True)
class QualityRule:
    """How to turn a quality band's values into clear / not clear."""

    band: str
    """Asset key or common name of the quality band ("scl", "QA_PIXEL")."""
    kind: str = CLASSES
    """"classes": clear iff the value is one of `clear_values`; "bits": clear iff none of `mask_bits` is set."""
    clear_values: tuple[int, ...] = ()
    """Class values meaning clear ("classes" rules)."""
    mask_bits: tuple[int, ...] = ()
    """Bit positions (0 = least significant) that mark a pixel as not clear ("bits" rules)."""
    nodata: int | None = None
    """A value that is never clear whatever the bits say (fill)."""
    name: str = ""
    """What the rule is, for messages and the GUI ("Sentinel-2 SCL")."""
    masked_meaning: dict[int, str] = field(default_factory=dict, compare=False, hash=False)
    """Labels of the not-clear classes or bits, for tooltips."""

    def __post_init__(self) -> None:
        if self.kind not in (CLASSES, BITS):
            raise ValueError(f"Quality rule kind must be '{CLASSES}' or '{BITS}', not '{self.kind}'")
        if self.kind == CLASSES and not self.clear_values:
            raise ValueError(f"Quality rule on '{self.band}' lists no clear values")
        if self.kind == BITS and not self.mask_bits:
            raise ValueError(f"Quality rule on '{self.band}' lists no mask bits")
        bad = [b for b in self.mask_bits if not 0 <= b < 64]
        if bad:
            raise ValueError(f"Bit positions must be 0..63, not {bad}")

    def is_clear(self, values: Any) -> Any:
        """Boolean array (or bool for a scalar): True where the quality value means clear.

        NaN (no data read) is never clear.
        """
        array = np.asarray(values)
        scalar = array.ndim == 0
        if array.dtype.kind == "f":
            finite = np.isfinite(array)
            ints = np.where(finite, array, 0).astype(np.int64)
        else:
            finite = np.ones(array.shape, dtype=bool)
            ints = array.astype(np.int64)
        if self.kind == CLASSES:
            clear = np.isin(ints, np.asarray(self.clear_values, dtype=np.int64))
        else:
            mask = 0
            for bit in self.mask_bits:
                mask |= 1 << bit
            clear = (ints & mask) == 0
        clear &= finite
        if self.nodata is not None:
            clear &= ints != self.nodata
        return bool(clear) if scalar else clear

    def describe(self) -> str:
        """One line for a tooltip or log: the rule in words."""
        what = self.name or self.band
        if self.kind == CLASSES:
            return f"{what}: clear where {self.band} is one of {', '.join(map(str, self.clear_values))}"
        return f"{what}: masked where {self.band} has bit {', '.join(map(str, self.mask_bits))} set"


#: Sentinel-2 L2A scene classification: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 11 snow
#: are clear; 0 no data, 1 saturated/defective, 2 dark area/topographic shadow, 3 cloud shadow,
#: 8/9 cloud medium/high probability, 10 thin cirrus are masked.
SENTINEL2_SCL = QualityRule(
    band="scl", kind=CLASSES, clear_values=(4, 5, 6, 7, 11), nodata=0, name="Sentinel-2 SCL",
    masked_meaning={0: "no data", 1: "saturated or defective", 2: "dark area", 3: "cloud shadow",
                    8: "cloud (medium probability)", 9: "cloud (high probability)", 10: "thin cirrus"})

#: Landsat Collection 2 QA_PIXEL: bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow.
LANDSAT_C2_QA_PIXEL = QualityRule(
    band="qa_pixel", kind=BITS, mask_bits=(0, 1, 2, 3, 4, 5), nodata=1, name="Landsat Collection 2 QA_PIXEL",
    masked_meaning={0: "fill", 1: "dilated cloud", 2: "cirrus", 3: "cloud", 4: "cloud shadow", 5: "snow"})

#: Brazil Data Cube CMASK (CBERS-4 cubes): 127 clear, 255 cloud, 0 no data.
BDC_CMASK = QualityRule(
    band="CMASK", kind=CLASSES, clear_values=(127,), nodata=0, name="Brazil Data Cube CMASK",
    masked_meaning={0: "no data", 255: "cloud"})

#: Fmask (4.x; Brazil Data Cube Landsat/Sentinel-2 cubes, HLS v1.4): 0 clear land, 1 clear water,
#: 2 cloud shadow, 3 snow, 4 cloud, 255 no observation.
FMASK = QualityRule(
    band="Fmask4", kind=CLASSES, clear_values=(0, 1), nodata=255, name="Fmask",
    masked_meaning={2: "cloud shadow", 3: "snow", 4: "cloud", 255: "no data"})

#: MODIS MOD13 pixel reliability: 0 good, 1 marginal are kept; 2 snow/ice, 3 cloudy, -1 fill are masked.
MODIS_PIXEL_RELIABILITY = QualityRule(
    band="pixel_reliability", kind=CLASSES, clear_values=(0, 1), nodata=-1, name="MODIS pixel reliability",
    masked_meaning={-1: "fill", 2: "snow or ice", 3: "cloudy"})

PRESETS: dict[str, QualityRule] = {
    "sentinel2-scl": SENTINEL2_SCL,
    "landsat-c2-qa-pixel": LANDSAT_C2_QA_PIXEL,
    "bdc-cmask": BDC_CMASK,
    "fmask": FMASK,
    "modis-pixel-reliability": MODIS_PIXEL_RELIABILITY,
}

_BY_KEY = {
    "scl": SENTINEL2_SCL,
    "qa_pixel": LANDSAT_C2_QA_PIXEL,
    "cmask": BDC_CMASK,
    "fmask": FMASK,
    "fmask4": FMASK,
    "pixel_reliability": MODIS_PIXEL_RELIABILITY,
}
_CLEAR_WORDS = re.compile(r"clear|vegetation|not[ _-]?vegetated|bare|water|snow|unclassified|land|good")
_MASKED_WORDS = re.compile(r"cloud|shadow|cirrus|no[ _-]?data|fill|saturat|defect|dark|missing|invalid")


def _classes_of(asset: dict) -> list[dict]:
    found = asset.get("classification:classes")
    for band in (asset.get("raster:bands") or []) + (asset.get("bands") or []):
        if isinstance(band, dict) and band.get("classification:classes"):
            found = band["classification:classes"]
    return [c for c in found or [] if isinstance(c, dict) and isinstance(c.get("value"), int)]


def _rule_from_classes(key: str, classes: list[dict]) -> QualityRule | None:
    """A rule from `classification:classes` names when the band is not a known product's."""
    clear, meaning = [], {}
    for c in classes:
        words = f"{c.get('name', '')} {c.get('description', '')}".casefold()
        if _CLEAR_WORDS.search(words) and not _MASKED_WORDS.search(words):
            clear.append(int(c["value"]))
        else:
            meaning[int(c["value"])] = str(c.get("description") or c.get("name") or c["value"])
    if not clear:
        return None
    return QualityRule(band=key, kind=CLASSES, clear_values=tuple(sorted(clear)),
                       name=f"{key} classes", masked_meaning=meaning)


def _asset(document: dict, key: str) -> dict:
    assets = document.get("assets") or document.get("item_assets") or {}
    return assets.get(key) or {}


def rule_for(item_or_collection: dict) -> QualityRule | None:
    """The quality rule of an item or collection, from its quality asset; None when it has none."""
    info = quality_band(item_or_collection)
    if info is None:
        return None
    key = info.asset_key or info.name
    asset = _asset(item_or_collection, key)
    # EOPF names the asset SCL_20m and its array .../conditions/mask/l2a_classification/r20m/scl
    array = str(asset.get("href") or "").rstrip("/").rsplit("/", 1)[-1]
    preset = _BY_KEY.get(key.casefold()) or _BY_KEY.get(re.sub(r"_\d+m$", "", key.casefold())) \
        or (_BY_KEY.get(array.casefold()) if array.casefold() == "scl" else None)
    if preset is None:
        title = str(asset.get("title") or "").casefold()
        if "scene classification" in title or "(scl)" in title:
            preset = SENTINEL2_SCL
        elif "fmask" in title:
            preset = FMASK
    if preset is not None:
        classes = _classes_of(asset)
        if preset is BDC_CMASK and classes and not any(c["value"] == 127 for c in classes):
            preset = FMASK  # a CMASK coded like Fmask (0 clear land, 1 clear water, ...)
        return replace(preset, band=key)
    classes = _classes_of(asset)
    return _rule_from_classes(key, classes) if classes else None


def parse_values(text: str) -> tuple[int, ...]:
    """ "4, 5,6" or "4 5 6" -> (4, 5, 6); ranges "4-7" allowed."""
    values: list[int] = []
    for part in re.split(r"[,;\s]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"Not an integer or range in quality values: '{part}' (expected e.g. \"4,5,6\")")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ValueError(f"Empty range in quality values: '{part}'")
        values.extend(range(lo, hi + 1))
    if not values:
        raise ValueError("No quality values given (expected e.g. \"4,5,6\")")
    return tuple(dict.fromkeys(values))


def rule_from_user(band: str, clear_values: str) -> QualityRule:
    """A rule from the user's band and values: "4,5,6" are clear classes; "bits:1,3,4" are bits to mask."""
    band = band.strip()
    if not band:
        raise ValueError("A quality rule needs a quality band name")
    text = clear_values.strip()
    if text.casefold().startswith("bits:"):
        bits = parse_values(text[5:])
        return QualityRule(band=band, kind=BITS, mask_bits=bits, name=f"{band} bits {text[5:].strip()}")
    return QualityRule(band=band, kind=CLASSES, clear_values=parse_values(text), name=f"{band} classes {text}")


def mask_fields(text: str) -> tuple[str, str]:
    """(quality band, clear values) of a mask as typed in the dock: "" (the collection's own rule),
    "none" (no mask), "scl" (a band whose rule is known), "scl: 4,5,6" (clear classes) or
    "QA_PIXEL: bits:1,3,4" (masked bits). The values are checked here, so a typo is reported before
    any request is sent; ValueError says what is wrong."""
    band, _, values = text.strip().partition(":")
    band, values = band.strip(), values.strip()
    if values:
        rule_from_user(band or "quality", values)  # no band: the collection's quality band, with these values
    elif text.strip().endswith(":"):
        raise ValueError(f"No values after '{band}:' (expected e.g. \"{band or 'scl'}: 4,5,6\")")
    return band, values


def user_rule(text: str, detected: QualityRule | None) -> QualityRule | None:
    """The rule a mask typed as in :func:`mask_fields` gives, ``detected`` being the collection's own
    (None when it has none): None for "none" (every observation counts)."""
    band, values = mask_fields(text)
    if band.casefold() == "none" and not values:
        return None
    if values:
        if not band and detected is None:
            raise ValueError("No quality band found: give its name, e.g. \"scl: 4,5,6\"")
        return rule_from_user(band or detected.band, values)
    if band and (detected is None or detected.band.casefold() != band.casefold()):
        raise ValueError(f"No rule is known for the quality band '{band}': give its clear values "
                         f"(\"{band}: 4,5,6\") or masked bits (\"{band}: bits:1,3\")")
    return detected


def rule_for_bands(bands: Mapping[str, Mapping[str, Any]]) -> QualityRule | None:
    """The rule of a cube whose bands (Zarr variables: name -> CF attributes) include a quality band.

    A known name (scl, QA_PIXEL, CMASK, Fmask4, pixel_reliability; s2_SCL) gives its preset; otherwise CF
    ``flag_values``/``flag_meanings`` of a band named like a mask give a rule from the meanings.
    """
    for name in bands:
        preset = _BY_KEY.get(name.casefold())
        if preset is not None:
            return replace(preset, band=name)
    scl = sentinel2_scl(bands)  # EarthNet's s2_SCL
    if scl is not None:
        return replace(SENTINEL2_SCL, band=scl)
    for name, attrs in bands.items():
        if not re.search(r"mask|quality|qa|cloud|scl|classification", name, re.IGNORECASE):
            continue
        classes = flag_classes(attrs)
        if classes:
            return _rule_from_classes(name, classes)
    return None


def flag_classes(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CF ``flag_values`` and ``flag_meanings`` as classification:classes ({value, name}); [] without them."""
    values, meanings = attrs.get("flag_values"), attrs.get("flag_meanings")
    if not isinstance(values, (list, tuple)) or not isinstance(meanings, str):
        return []
    words = meanings.split()
    if len(words) != len(values) or not all(isinstance(v, (int, float)) for v in values):
        return []
    return [{"value": int(v), "name": w} for v, w in zip(values, words)]
