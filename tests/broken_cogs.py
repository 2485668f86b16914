"""A copy of the demo catalog (JSON copied, rasters linked) where three Sentinel-2 red COGs of tile 34TGR
cannot be read, each for its own reason: for the tests of inputs that are skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path

from cut_catalog import linked_copy

#: The README's forest point: every broken file below covers it (tile 34TGR, spring 2023).
FOREST = (24.0025633, 45.5085915)


def catalog_with_broken_reds(demo_cube, folder: Path, gone_url: str = "") -> tuple[Path, dict[str, str]]:
    """(the catalog, {URL of each broken red COG: the cause a user must read}).

    The second 34TGR item's red points at ``gone_url`` (an HTTP 404; a local file that is not there
    when empty), the third's red.tif is a PNG (its thumbnail), the fourth's is cut in half."""

    linked_copy(demo_cube, folder)
    items = sorted((folder / "demo-s2-l2a").glob("*_T34TGR/*.json"))[:4]
    gone = gone_url or str(folder / "no-such-dir" / "red.tif")
    document = json.loads(items[1].read_text())
    document["assets"]["red"]["href"] = gone
    items[1].write_text(json.dumps(document))
    png, cut = items[2].parent / "red.tif", items[3].parent / "red.tif"
    png.unlink()
    png.write_bytes((items[2].parent / "thumbnail.png").read_bytes())
    source = cut.resolve()
    cut.unlink()
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    causes = {gone: "HTTP 404 (not found)" if gone_url else "not found",
              str(png): "not a GeoTIFF: GDAL reads it as PNG",
              str(cut): "truncated or corrupt"}
    return folder / demo_cube.catalog.name, causes
