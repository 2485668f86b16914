"""How each provider writes an item's grid tile, read into one name per tile so that catalogs agree.

A name is the code as the provider writes it: "35MNM" (MGRS), "028/030" (Landsat WRS path/row,
zero-padded as USGS writes it), "h10v05" (MODIS), "157/101" (CBERS path/row), "012010" (Brazil Data
Cube), "x174y088" (Digital Earth Australia/Africa). One collection's items are on one grid, so the
code alone tells its tiles apart.

Properties come first (they are the provider's statement); an id is read only when they say nothing,
and only in the id layouts listed here, so that an arbitrary id never passes for a tile.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .items import item_epsg

# MGRS: UTM zone 1-60, latitude band C-X without I/O, 100 km square (column A-Z and row A-V, without I/O)
_MGRS = r"(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z][A-HJ-NP-V])"
_MGRS_CODE = re.compile(rf"\s*(?:MGRS[- ]?|T)?{_MGRS}\s*", re.IGNORECASE)

#: Property keys that hold a whole MGRS code: Planetary Computer/Earth Search, the mgrs extension,
#: Sentinel-1 RTC (Indigo, on AWS and Earth Search), older Sentinel Hub style items.
MGRS_KEYS = ("s2:mgrs_tile", "mgrs:tile", "sentinel:mgrs", "tile_id")
#: Properties that carry a product name when the item id is something else (e.g. a DEA UUID).
PRODUCT_NAME_KEYS = ("s2:product_uri", "sentinel:product_id", "sentinel:product_name",
                     "landsat:landsat_product_id", "landsat:product_id", "landsat:scene_id")


def mgrs(code: object) -> str | None:
    """ "35MNM", "T35MNM", "MGRS-35MNM", "5QFJ" -> "35MNM" / "05QFJ"; None if not MGRS."""
    match = _MGRS_CODE.fullmatch(code) if isinstance(code, str) else None
    if not match or not 1 <= int(match.group(1)) <= 60:
        return None
    zone, band, square = match.groups()
    return f"{int(zone):02d}{band.upper()}{square.upper()}"


def path_row(path: object, row: object) -> str | None:
    """Path and row zero-padded as USGS writes them: 21, "21" or "021" -> "021"."""
    try:
        p, r = int(str(path).strip()), int(str(row).strip())
    except ValueError:
        return None
    return f"{p:03d}/{r:03d}" if p >= 0 and r >= 0 else None


def wrs(path: object, row: object) -> str | None:
    """Landsat path/row as USGS writes it ("028/030"), whether on WRS-1 (Landsat 1-3) or WRS-2: the two
    grids never meet in one collection."""
    return path_row(path, row)


def modis(horizontal: object, vertical: object) -> str | None:
    """The MODIS sinusoidal tile as NASA names it: h 0-35, v 0-17 -> "h10v05"."""
    try:
        h, v = int(str(horizontal)), int(str(vertical))
    except ValueError:
        return None
    return f"h{h:02d}v{v:02d}" if 0 <= h <= 35 and 0 <= v <= 17 else None


def modis_tile_id(value: object) -> str | None:
    """`modis:tile-id` is the HDF TileID, e.g. "51010005" (projection, size, hhh, vvv); some write "h10v05"."""
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    if match := re.fullmatch(r"h(\d{1,2})v(\d{1,2})", text, re.IGNORECASE):
        return modis(*match.groups())
    if re.fullmatch(r"\d{8}", text):
        return modis(text[2:5], text[5:8])
    return None


def from_grid_code(code: str) -> str:
    """`grid:code` is "GRID-CODE" (grid extension): known grids are normalised, others kept as written."""
    code = code.strip()
    grid, _, rest = code.partition("-")
    grid = grid.upper()
    named: str | None = None
    if grid == "MGRS":
        named = mgrs(rest)
    elif grid in ("WRS1", "WRS2") and (match := re.fullmatch(r"(\d{1,3})/?(\d{3})", rest)):
        named = wrs(match.group(1), match.group(2))
    elif grid == "MODIS":
        named = modis_tile_id(rest)
    return named or code


def _zone_from_epsg(props: dict, band: str) -> int | None:
    """Earth Search v0 gives the UTM zone only through the projection: EPSG 326ZZ (north) / 327ZZ (south);
    a band of the other hemisphere means the two disagree, and nothing is guessed."""
    epsg = item_epsg({"properties": props}) or 0
    north = band.upper() >= "N"
    if 32601 <= epsg <= 32660 and north:
        return epsg - 32600
    if 32701 <= epsg <= 32760 and not north:
        return epsg - 32700
    return None


def from_mgrs_parts(props: dict) -> str | None:
    """`mgrs:*` / `sentinel:*` utm_zone + latitude_band + grid_square, the zone from the EPSG if missing."""
    for prefix in ("mgrs", "sentinel"):
        band, square = props.get(f"{prefix}:latitude_band"), props.get(f"{prefix}:grid_square")
        if not (isinstance(band, str) and isinstance(square, str) and band and square):
            continue
        zone = props.get(f"{prefix}:utm_zone")
        if zone is None:
            zone = _zone_from_epsg(props, band)
        if zone is not None and (named := mgrs(f"{zone}{band}{square}")):
            return named
    return None


def from_region_code(code: str) -> str:
    """Open Data Cube `odc:region_code`: DEA/DE Africa write an MGRS tile for Sentinel-2 ("55HFA"), the
    path/row for Landsat ("092084") and "x..y.." for their own grid (kept as written)."""
    code = code.strip()
    if re.fullmatch(r"\d{2}[A-Z]{3}", code, re.IGNORECASE) and (named := mgrs(code)):
        return named
    if re.fullmatch(r"\d{6}", code):
        return wrs(code[:3], code[3:]) or code
    return code


# ---- ids ------------------------------------------------------------------------------------------
# Each layout: (pattern, how its groups name the tile). Anchored, so only these layouts are read.

def _landsat_from_id(_mission: str, path: str, row: str) -> str | None:
    return wrs(path, row)


_ID_LAYOUTS: tuple[tuple[re.Pattern[str], Callable[..., str | None]], ...] = (
    # HLS: HLS.S30.T06WVS.2021181T211519.v2.0, HLS.L30.T11SLT.2025006T182824.v2.0
    (re.compile(rf"HLS\.[LS]30\.T{_MGRS}\."), lambda *g: mgrs("".join(g))),
    # Earth Search / sentinel-cogs / DE Africa: S2B_35MNM_20200105_0_L2A (C1: S2A_T35MNM_...)
    (re.compile(rf"S2[A-D]_T?{_MGRS}_\d{{8}}"), lambda *g: mgrs("".join(g))),
    # ESA product and granule names: S2B_MSIL2A_20200606T080609_N0212_R078_T35MNM_20200826T094900(.SAFE)
    (re.compile(rf"S2[A-D]_.*?_T{_MGRS}(?:[_.]|$)"), lambda *g: mgrs("".join(g))),
    # Sentinel-1 RTC (Indigo): S1A_20200103_17RMJ_ASC
    (re.compile(rf"S1[A-D]_\d{{8}}_{_MGRS}_(?:ASC|DSC)"), lambda *g: mgrs("".join(g))),
    # Landsat Collection 1/2 product ids: LC08_L2SP_021030_20100109_20200911_02_T1(_SR)
    (re.compile(r"L[COTEM](\d\d)_[A-Z0-9]{4}_(\d{3})(\d{3})_\d{8}"), _landsat_from_id),
    # Landsat scene ids: LE70210302010009EDC00
    (re.compile(r"L[COTEM](\d)(\d{3})(\d{3})\d{7}[A-Z]{3}\d\d"), _landsat_from_id),
    # MODIS / VIIRS granules on the sinusoidal grid: MOD09A1.A2022033.h19v10.061.2022042043514
    (re.compile(r"[A-Z0-9]+\.A\d{7}\.h(\d\d)v(\d\d)\.", re.IGNORECASE), modis),
)


def from_name(name: object) -> str | None:
    """The tile in an id or product name of a known layout, else None."""
    if not isinstance(name, str):
        return None
    for pattern, named in _ID_LAYOUTS:
        if match := pattern.match(name.strip()):
            return named(*match.groups())
    return None
