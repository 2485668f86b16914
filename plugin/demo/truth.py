"""The ground truth of the demo cube: what ``truth/truth.json`` holds and how to query it.

Tests and documentation check the catalog against this file rather than against constants
scattered in test code: the expected DN of a clear pixel, which dates are clear where, the
clear-cut. The query helpers only need the parsed JSON (plain dicts), no numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .landscape import (
    BACKGROUND,
    CHANGE_DATE,
    CHANGE_PATCH,
    CLASSES,
    CLEAR_CUT,
    FOREST,
    PATCHES,
    class_at,
    km_to_lonlat,
)

#: Named points (local km, expected class before / after the clear-cut) for tests and docs.
REFERENCE_POINTS: dict[str, tuple[tuple[float, float], int, int]] = {
    "forest_overlap": ((0.2, 0.95), 1, 1),
    "clear_cut_overlap": ((-0.3, 0.9), 1, 7),
    "clear_cut_a": ((-0.6, 0.9), 1, 7),
    "forest_a": ((-1.9, 1.1), 1, 1),
    "forest_b": ((0.8, 1.1), 1, 1),
    "grassland_overlap": ((0.0, 0.38), 2, 2),
    "grassland_b": ((1.0, 0.2), 2, 2),
    "winter_crop_overlap": ((-0.25, -0.62), 3, 3),
    "summer_crop_overlap": ((0.25, -0.62), 4, 4),
    "built_up_overlap": ((0.0, -1.15), 5, 5),
    "built_up_b": ((1.8, -0.75), 5, 5),
    "water_overlap": ((0.05, 0.02), 6, 6),
    "water_a": ((-1.3, -0.2), 6, 6),
}


def load_truth(root: Path) -> dict[str, Any]:
    """Parse ``<root>/truth/truth.json``."""
    return json.loads((Path(root) / "truth" / "truth.json").read_text(encoding="utf-8"))


def class_name(truth: dict[str, Any], code: int) -> str:
    for c in truth["classes"]:
        if c["code"] == code:
            return c["name"]
    raise KeyError(f"no class with code {code} in the truth legend")


def date_index(truth: dict[str, Any], when: str) -> int:
    """Index of an S2 acquisition given its date (``YYYY-MM-DD``) or full ISO datetime."""
    for i, iso in enumerate(truth["s2"]["datetimes"]):
        if iso.startswith(when[:10]):
            return i
    raise KeyError(f"no Sentinel-2 acquisition on {when}")


def expected_reflectance(truth: dict[str, Any], class_code: int, band: str, when: str) -> float:
    """Clear-sky surface reflectance of a class in a band on an acquisition date."""
    return truth["clear"]["reflectance"][class_name(truth, class_code)][band][date_index(truth, when)]


def expected_dn(truth: dict[str, Any], class_code: int, band: str, when: str, shadow: bool = False) -> int:
    """Digital number of a clear (or, with `shadow`, cloud-shadowed) pixel of a class."""
    table = truth["clear"]["shadow_dn" if shadow else "dn"]
    return table[class_name(truth, class_code)][band][date_index(truth, when)]


def class_on(truth: dict[str, Any], point: str, when: str) -> int:
    """Class of a named reference point on a date, taking the clear-cut into account."""
    p = truth["points"][point]
    return p["class_after_change"] if when[:10] >= truth["change"]["date"] else p["class"]


def item_info(truth: dict[str, Any], tile: str, when: str) -> dict[str, Any]:
    """The truth record (id, cloud cover, nodata) of the S2 item of a tile on a date."""
    return truth["s2"]["items"][tile][date_index(truth, when)]


def landscape_document() -> dict[str, Any]:
    """Legend, patches, change event and reference points: the static part of the truth."""
    from .grids import TILES

    points = {}
    for name, ((x, y), before, after) in REFERENCE_POINTS.items():
        lon, lat = km_to_lonlat(x, y)
        if class_at(lon, lat) != before or class_at(lon, lat, after_change=True) != after:
            raise ValueError(f"reference point {name} is not of class {before}/{after}: fix the layout")
        pixels = {}
        for t in TILES:
            p10, p20 = t.lonlat_to_pixel(lon, lat, 10), t.lonlat_to_pixel(lon, lat, 20)
            if 0 <= p10[0] < t.shape(10)[0] and 0 <= p10[1] < t.shape(10)[1]:
                pixels[t.code] = {"row_10m": p10[0], "col_10m": p10[1], "row_20m": p20[0], "col_20m": p20[1]}
        points[name] = {"lon": lon, "lat": lat, "class": before, "class_after_change": after, "pixels": pixels}
    return {
        "classes": [
            {"code": c.code, "name": c.name, "worldcover": c.worldcover, "scl": c.scl, "color": c.color}
            for c in CLASSES
        ],
        "background_class": BACKGROUND.code,
        "patches": [{"name": p.name, "class": p.code, "polygon": [list(v) for v in p.ring]} for p in PATCHES],
        "change": {
            "date": CHANGE_DATE,
            "class_before": FOREST.code,
            "class_after": CLEAR_CUT.code,
            "polygon": [list(v) for v in CHANGE_PATCH.ring],
            "rule": "pixels of class_before inside polygon become class_after from date on",
        },
        "points": points,
    }
