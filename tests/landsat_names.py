"""The demo's Sentinel-2 items renamed the way Landsat Collection 2 items (USGS, Planetary Computer, Earth
Search) name their near-infrared band: asset ``nir08``, common name ``nir08``, and no band called
``nir`` at all. The pixels are the demo's, so every result must equal the demo's own."""

from __future__ import annotations

import copy


def as_landsat(items: list[dict]) -> list[dict]:
    renamed = copy.deepcopy(items)
    for item in renamed:
        asset = item["assets"].pop("nir")
        asset["eo:bands"][0].update(name="B5", common_name="nir08")
        asset["title"] = "Near Infrared Band 0.8 (B5)"
        item["assets"]["nir08"] = asset
    return renamed
