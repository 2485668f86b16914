"""Tiles and bands: a search result grouped into time stacks, and band names resolved across catalogs.

The demo's ground truth (`truth/truth.json`) says which items belong to which tile; the real Earth
Search and Planetary Computer metadata in ../shared show two catalogs naming the same bands and tiles
differently.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from stac_expected import disk_items

from cubescope.plugin.stac.bands import AmbiguousBand, BandNotFound, list_bands, quality_band, resolve_band
from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.http import local_fetcher, requests_fetcher
from cubescope.plugin.stac.sources import Source, SourceKind
from cubescope.plugin.stac.static_catalog import read_collections
from cubescope.plugin.stac.tiles import group_by_tile, tile_id

S2 = "demo-s2-l2a"
OVERLAP = (23.998, 45.498, 24.002, 45.502)
TILE_KEYS = ("grid:code", "s2:mgrs_tile", "mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")


@pytest.fixture(scope="module")
def s2_items(demo_cube) -> list[dict]:
    return disk_items(demo_cube.collections[S2])


def read_es(shared_data: Path) -> tuple[list[dict], dict]:
    folder = shared_data / "stac" / "earth-search-sentinel-2-c1-l2a"
    return (json.loads((folder / "item-collection.json").read_text())["features"],
            json.loads((folder / "collection.json").read_text()))


def read_pc(shared_data: Path) -> tuple[list[dict], dict]:
    folder = shared_data / "stac"
    items = [json.loads(line) for line in (folder / "pc-sentinel-2-l2a-100-items.ndjson").read_text().splitlines()]
    return items, json.loads((folder / "pc-sentinel-2-l2a-collection.json").read_text())


# ---- tiles ----------------------------------------------------------------------------------------


def check_demo_tiles(groups, truth) -> None:
    assert [g.tile for g in groups] == ["34TGR", "35TKL"]
    for group in groups:
        tile = group.tile
        expected = [entry["id"] for entry in sorted(truth["s2"]["items"][tile], key=lambda e: e["datetime"])]
        assert len(expected) == len(truth["s2"]["datetimes"]) == 37
        assert [i["id"] for i in group.items] == expected
        assert group.epsg == truth["tiles"][tile]["epsg"]
        assert group.bbox == pytest.approx(tuple(truth["tiles"][tile]["bbox"]), abs=1e-6)


@pytest.mark.parametrize("backend", ("static", "light"))
def test_demo_search_groups_into_two_tiles_of_37_dates(request, backend, demo_cube, truth) -> None:
    if backend == "static":
        source = Source("demo", SourceKind.STATIC, str(demo_cube.catalog))
    else:
        source = Source("rustac", SourceKind.STAC_API, request.getfixturevalue("stac_api_light").url)
    with requests_fetcher() as http:
        client = CatalogClient(source, local_fetcher() if backend == "static" else http)
        items = [i for page in client.search(SearchQuery((S2,), OVERLAP, None, None, None, page_size=20))
                 for i in page.items]
    check_demo_tiles(group_by_tile(items), truth)


def test_items_without_tile_ids_cluster_by_footprint(s2_items, truth) -> None:
    stripped = copy.deepcopy(s2_items)
    original = {}
    for n, item in enumerate(stripped):
        for key in TILE_KEYS:
            item["properties"].pop(key, None)
        item["properties"].pop("proj:epsg")  # the two tiles' footprints overlap a little (IoU ~0.26): still two
        # the demo ids are ESA product names ending in the tile (..._T34TGR): a neutral id hides it too
        original[f"scene-{n:03d}"] = item["id"]
        item["id"] = f"scene-{n:03d}"
        assert tile_id(item) is None
    groups = group_by_tile(stripped)
    assert len(groups) == 2 and all(g.tile.startswith("near ") for g in groups)
    by_first = {original[g.items[0]["id"]][-5:]: g for g in groups}
    for tile in ("34TGR", "35TKL"):
        assert {original[i["id"]] for i in by_first[tile].items} == {e["id"] for e in truth["s2"]["items"][tile]}
        assert by_first[tile].epsg is None
        west, south, east, north = truth["tiles"][tile]["bbox"]
        assert by_first[tile].tile == f"near {(south + north) / 2:.2f}N {(west + east) / 2:.2f}E"


def _footprint(item_id: str, west: float, epsg: int | None, south: float = 0, day: int = 1, size: float = 1) -> dict:
    east, north = west + size, south + size
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    props = {"datetime": f"2024-01-{day:02d}T00:00:00Z"}
    if epsg:
        props["proj:epsg"] = epsg
    return {"id": item_id, "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props}


def test_cluster_needs_the_same_projection() -> None:
    groups = group_by_tile([_footprint("a", 0, 32631), _footprint("b", 0.1, 32631), _footprint("c", 0.1, 32632),
                            _footprint("d", 0.6, 32631)])
    assert [[i["id"] for i in g.items] for g in groups] == [["a", "b"], ["c"], ["d"]]
    assert [g.tile for g in groups] == ["near 0.50N 0.55E", "near 0.50N 0.60E", "near 0.50N 1.10E"]
    assert groups[0].bbox == (0, 0, 1.1, 1)


def test_cluster_names_do_not_depend_on_the_order_items_arrive() -> None:
    """A search returns pages in any order; the same items searched again are the same named clusters,
    after the tiled groups, and clusters with one centre are told apart by projection, then by date."""
    items = [_footprint("sw", -58.6, 32721, south=-34.9, day=3), _footprint("sw2", -58.6, 32721, south=-34.9, day=9),
             _footprint("same-centre-utm", 10, 32632, day=2), _footprint("same-centre-other", 10, 32633, day=5),
             _footprint("no-proj-1", 10, None, day=1), _footprint("no-proj-2", 9, None, south=-1, day=4, size=3),
             {"id": "tiled", "properties": {"datetime": "2024-01-01T00:00:00Z", "s2:mgrs_tile": "32TNS"}}]
    names = [g.tile for g in group_by_tile(items)]
    assert names == ["32TNS", "near 0.50N 10.50E (1)", "near 0.50N 10.50E (2)", "near 0.50N 10.50E EPSG:32632",
                     "near 0.50N 10.50E EPSG:32633", "near 34.40S 58.10W"]
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        again = group_by_tile(shuffled)
        assert [g.tile for g in again] == names
        assert [[i["id"] for i in g.items] for g in again] == [[i["id"] for i in g.items] for g in group_by_tile(items)]


@pytest.mark.parametrize(("properties", "expected"), [
    ({"grid:code": "MGRS-4QFJ"}, "04QFJ"),
    ({"s2:mgrs_tile": "13TDE"}, "13TDE"),
    ({"mgrs:utm_zone": 13, "mgrs:latitude_band": "T", "mgrs:grid_square": "DE"}, "13TDE"),
    ({"sentinel:utm_zone": 35, "sentinel:latitude_band": "T", "sentinel:grid_square": "KL"}, "35TKL"),
    ({"bdc:tiles": ["012010"]}, "012010"),
    ({"bdc:tile": "007004"}, "007004"),
    ({"landsat:wrs_path": "221", "landsat:wrs_row": "71"}, "221/071"),
    ({"landsat:wrs_path": 28, "landsat:wrs_row": 30}, "028/030"),
    ({"landsat:wrs_type": "1", "landsat:wrs_path": "001", "landsat:wrs_row": "010"}, "001/010"),
    ({"grid:code": "WRS2-221071"}, "221/071"),  # the grid extension's spelling, read like path/row
    ({"grid:code": "MGRS-35MNM"}, "35MNM"),  # CDSE
    ({"grid:code": "MODIS-h12v11"}, "h12v11"),
    ({"grid:code": "CUSTOM-abc"}, "CUSTOM-abc"),
    ({"odc:region_code": "x174y056"}, "x174y056"),
    ({"odc:region_code": "55HFA"}, "55HFA"),  # DEA Sentinel-2 ARD
    ({"odc:region_code": "092084"}, "092/084"),  # DEA Landsat ARD
    ({"sentinel:mgrs": "12SYJ"}, "12SYJ"),
    ({"modis:horizontal-tile": 12, "modis:vertical-tile": 11}, "h12v11"),
    ({"modis:tile-id": "51012011"}, "h12v11"),
    ({"modis:tile-id": "h18v03"}, "h18v03"),
    # Earth Search v0 without sentinel:utm_zone: the zone from the projection, if its hemisphere agrees
    ({"sentinel:latitude_band": "M", "sentinel:grid_square": "NM", "proj:epsg": 32735}, "35MNM"),
    ({"sentinel:latitude_band": "T", "sentinel:grid_square": "KL", "proj:code": "EPSG:32635"}, "35TKL"),
    ({"sentinel:latitude_band": "M", "sentinel:grid_square": "NM", "proj:epsg": 32635}, None),
    ({"platform": "x"}, None),
])
def test_tile_ids_from_every_convention(properties, expected) -> None:
    assert tile_id({"id": "x", "properties": properties}) == expected


@pytest.mark.parametrize(("item_id", "expected"), [
    ("HLS.S30.T06WVS.2021181T211519.v2.0", "06WVS"),
    ("HLS.L30.T10TES.2023215T185020.v2.0", "10TES"),
    ("S2B_35MNM_20200105_0_L2A", "35MNM"),  # Earth Search v0
    ("S2A_T35MNM_20240101T080000_L2A", "35MNM"),
    ("S2B_MSIL2A_20200606T080609_N0212_R078_T35MNM_20200826T094900.SAFE", "35MNM"),
    ("S2B_OPER_MSI_L2A_TL_ESRI_20200826T094902_A016978_T35MNM_N02.12", "35MNM"),
    ("S1B_20161121_12SYJ_ASC", "12SYJ"),
    ("LC08_L2SP_021030_20200911_20200919_02_T1", "021/030"),
    ("LC08_L2SP_028030_20201204_20210313_02_T1_SR", "028/030"),
    ("LM01_L1GS_001010_19720908_20200909_02_T2", "001/010"),
    ("LM05_L1GS_001001_19850524_20210918_02_T2", "001/001"),
    ("LE70210302010009EDC00", "021/030"),
    ("MOD13Q1.A2020273.h09v09.006.2020291073948", "h09v09"),
    # ids of no known layout say nothing, even with a tile-like token in them
    ("S1A_IW_GRDH_1SDV_20230305T160000_T34TGR_RTC", None), ("ga_ls5t_gm_cyear_3-x11y22-1990", None),
    ("a3f2c1d0-5e4b-4c3d-9a8b-7f6e5d4c3b2a", None), ("S2B_MSIL2A_20200606T080609_N0212_R078", None),
])
def test_tile_ids_from_ids_of_known_layouts(item_id, expected) -> None:
    assert tile_id({"id": item_id, "properties": {"datetime": "2024-01-01T00:00:00Z"}}) == expected


PROVIDER_ITEMS = Path(__file__).parent / "data" / "provider_items"


def provider_item(name: str) -> dict:
    return json.loads((PROVIDER_ITEMS / name).read_text())


@pytest.mark.parametrize(("name", "expected"), [
    ("modis-MOD09A1.A2022033.h19v10.json", "h19v10"),
    ("s1-rtc-S1A_20200103_17RMJ_ASC.json", "17RMJ"),
    ("earth-search-v0-S2B_33SVB_20210221_0_L2A.json", "33SVB"),
    ("earth-search-v0-S2A_29TNG_20170128_0_L2A.json", "29TNG"),
    ("dea-ls5-ard-113081.json", "113/081"),
    ("deafrica-s2-l2a-38LMK.json", "38LMK"),
])
def test_real_items_of_each_provider_get_their_official_tile(name, expected) -> None:
    assert tile_id(provider_item(name)) == expected


@pytest.mark.parametrize("name", ["earth-search-v0-S2B_33SVB_20210221_0_L2A.json",
                                  "earth-search-v0-S2A_29TNG_20170128_0_L2A.json"])
def test_earth_search_v0_tile_without_its_utm_zone(name) -> None:
    """Earth Search v0 items answered with a field selection may lack sentinel:utm_zone: the zone is then
    in the projection, else in the id."""
    item = provider_item(name)
    expected = tile_id(item)
    del item["properties"]["sentinel:utm_zone"]
    assert tile_id(item) == expected
    for key in ("proj:epsg", "proj:code", "sentinel:product_id"):
        item["properties"].pop(key, None)
    assert tile_id(item) == expected, "from the id S2x_ZZBSS_..."


def test_real_modis_item_tile_from_each_of_its_fields() -> None:
    item = provider_item("modis-MOD09A1.A2022033.h19v10.json")
    assert item["properties"]["datetime"] is None
    del item["properties"]["modis:horizontal-tile"]
    assert tile_id(item) == "h19v10", "from modis:tile-id 51019010"
    del item["properties"]["modis:tile-id"]
    assert tile_id(item) == "h19v10", "from the id"


def test_real_unpadded_landsat_and_region_code_agree() -> None:
    item = provider_item("dea-ls5-ard-113081.json")
    props = item["properties"]
    assert (props["landsat:wrs_path"], props["landsat:wrs_row"]) == (113, 81)
    by_region = {"properties": {"odc:region_code": props["odc:region_code"]}}
    by_name = {"id": props["landsat:landsat_product_id"], "properties": {}}
    assert tile_id(item) == tile_id(by_region) == tile_id(by_name) == "113/081"


def test_real_items_whose_tile_is_only_in_their_id() -> None:
    features = provider_item("ids-only-hls-s2-cmr.json")["features"]
    assert [tile_id(f) for f in features] == [f["_tile"] for f in features]
    dated = [f for f in features if f["properties"]]
    groups = group_by_tile(dated)
    assert {g.tile: len(g.items) for g in groups} == {"11SLT": 3, "11SLU": 3}, "HLS and S2 share tiles"


def test_real_shared_provider_items_get_their_official_tile(shared_data) -> None:
    folder = shared_data / "stac" / "providers"
    expected = {"modis-MOD11A2.A2022017.h10v05.006.json": {"h10v05"},
                "s1-rtc-S1B_20161121_12SYJ_ASC.json": {"12SYJ"},
                "landsat-c2-l2-LE07_L2SP_021030_20100109_02_T1.json": {"021/030"},
                "landsat-c2-l1-LM01_L1GS_001010_19720908_02_T2.json": {"001/010"}}
    for name, tiles in expected.items():
        assert {tile_id(json.loads((folder / name).read_text()))} == tiles, name
    features = json.loads((folder / "earth-search-v0-s2-l2a-35MNM-9-items.geojson").read_text())["features"]
    assert len(features) == 9
    for feature in features:
        tile = tile_id(feature)
        assert tile == f"{feature['properties']['s2:mgrs_tile']}"
        by_id = {"id": feature["id"], "properties": {}}
        assert tile_id(by_id) == tile, "the product name in the id names the same tile"


def test_real_earth_search_and_planetary_computer_items_share_a_tile(shared_data) -> None:
    es_items, _ = read_es(shared_data)
    pc_items, _ = read_pc(shared_data)
    assert {tile_id(i) for i in es_items} == {tile_id(i) for i in pc_items} == {"13TDE"}
    (group,) = group_by_tile(es_items + pc_items)
    assert len(group.items) == 110 and group.epsg == 32613
    dates = [i["properties"]["datetime"] for i in group.items]
    assert [d[:10] for d in dates] == sorted(d[:10] for d in dates)


# ---- bands ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "asset"), [
    ("red", "red"), ("RED", "red"), ("B04", "red"), ("nir", "nir"), ("b08", "nir"), ("swir1", "swir16"),
    ("scl", "scl"), ("scene classification", "scl"),
])
def test_demo_bands_resolve_by_any_name(s2_items, demo_cube, asked, asset) -> None:
    collection = json.loads(demo_cube.collections[S2].read_text())
    for document in (s2_items[0], collection):
        band = resolve_band(document, asked)
        expected = document["assets" if document is s2_items[0] else "item_assets"][asset]
        raster = expected["raster:bands"][0]
        assert (band.name, band.asset_key) == (asked, asset)
        assert (band.scale, band.offset) == (raster.get("scale", 1.0), raster.get("offset", 0.0))
        assert (band.nodata, band.resolution, band.data_type) == (raster["nodata"], raster["spatial_resolution"],
                                                                  raster["data_type"])
    assert resolve_band(s2_items[0], "red").href == "./red.tif"
    assert resolve_band(collection, "red").href is None


def test_demo_band_listing_quality_band_and_missing_band(s2_items, demo_cube) -> None:
    item = s2_items[0]
    assert {b.asset_key for b in list_bands(item)} == {"blue", "green", "red", "nir", "swir16", "scl"}
    assert quality_band(item).asset_key == "scl"
    with pytest.raises(BandNotFound) as caught:
        resolve_band(item, "B12")
    message = str(caught.value)
    assert message.startswith(f"No band 'B12' in item {item['id']}; available bands: ")
    assert all(name in message for name in ("blue", "B02", "nir", "B08", "scl", "swir16"))
    assert "thumbnail" not in message
    summaries = read_collections(demo_cube.catalog)
    s2 = next(c for c in summaries if c.id == S2)
    assert [b.asset_key for b in s2.bands] == ["blue", "green", "nir", "red", "scl", "swir16"]
    assert next(b for b in s2.bands if b.asset_key == "red").common_name == "red"


@pytest.mark.parametrize(("asked", "es_key", "pc_key"), [
    ("red", "red", "B04"), ("nir", "nir", "B08"), ("scl", "scl", "SCL"), ("scene classification", "scl", "SCL"),
    ("B04", "red", "B04"), ("swir22", "swir22", "B12"),
])
def test_real_catalogs_that_name_assets_differently_resolve_the_same_band(shared_data, asked, es_key, pc_key) -> None:
    es_items, es_collection = read_es(shared_data)
    pc_items, pc_collection = read_pc(shared_data)
    for document, key in ((es_items[0], es_key), (es_collection, es_key), (pc_items[0], pc_key),
                          (pc_collection, pc_key)):
        assert resolve_band(document, asked).asset_key == key
    assert resolve_band(es_items[0], asked).href == es_items[0]["assets"][es_key]["href"]
    assert resolve_band(pc_items[0], asked).href == pc_items[0]["assets"][pc_key]["href"]


def test_real_catalogs_give_the_same_reflectance_scaling(shared_data) -> None:
    """Earth Search says scale/offset in raster:bands; Planetary Computer says nothing, and its DNs carry
    ESA's +1000 offset since processing baseline 04.00: both must read as DN * 0.0001 - 0.1."""
    es_items, _ = read_es(shared_data)
    pc_items, pc_collection = read_pc(shared_data)
    for name in ("red", "nir"):
        es = resolve_band(es_items[0], name)
        assert (es.scale, es.offset, es.nodata, es.scaling) == (0.0001, -0.1, 0.0, "raster:bands")
        for item in pc_items:
            baseline = item["properties"]["s2:processing_baseline"]
            assert float(baseline) >= 4.0
            pc = resolve_band(item, name)
            assert (pc.scale, pc.offset) == (0.0001, -0.1)
            assert pc.scaling == f"sentinel-2 processing baseline {baseline}"
        # a collection has no baseline: raw DNs, and it says so
        assert (resolve_band(pc_collection, name).scale, resolve_band(pc_collection, name).scaling) == (1.0, "none")
    for items in (es_items, pc_items):
        scl = quality_band(items[0])
        assert scl is not None and scl.asset_key.lower() == "scl"
        assert (scl.scale, scl.offset) == (1.0, 0.0), "class codes are never scaled"
    old = copy.deepcopy(pc_items[0])
    old["properties"]["s2:processing_baseline"] = "03.01"
    assert (resolve_band(old, "red").scale, resolve_band(old, "red").offset) == (0.0001, 0.0)


def test_stac_1_1_bands_are_read_too() -> None:
    item = {"type": "Feature", "id": "v11", "properties": {"datetime": "2024-01-01T00:00:00Z"},
            "assets": {"B4": {"href": "b4.tif", "type": "image/tiff; application=geotiff",
                              "bands": [{"name": "B4", "eo:common_name": "red", "nodata": 0, "data_type": "uint16",
                                         "raster:scale": 2.75e-05, "raster:offset": -0.2,
                                         "raster:spatial_resolution": 30}]},
                       "meta": {"href": "m.xml", "type": "application/xml"}}}
    band = resolve_band(item, "red")
    assert (band.asset_key, band.scale, band.offset, band.nodata, band.resolution, band.data_type, band.scaling) == (
        "B4", 2.75e-05, -0.2, 0.0, 30.0, "uint16", "bands")
    assert [b.asset_key for b in list_bands(item)] == ["B4"]


def _band_asset(href: str, band_id: str, common: str | None) -> dict:
    band = {"name": band_id, "common_name": common} if common else {"name": band_id}
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized", "eo:bands": [band]}


def test_a_common_name_shared_by_several_bands_is_refused_with_the_candidates() -> None:
    """STAC names B05, B06 and B07 all "rededge": which one a composite reads must not be a guess."""
    item = {"type": "Feature", "id": "s2-like", "geometry": None, "properties": {"datetime": "2024-01-01T00:00:00Z"},
            "assets": {"B05": _band_asset("b05.tif", "B05", "rededge"), "B06": _band_asset("b06.tif", "B06", "rededge"),
                       "rededge3": _band_asset("b07.tif", "B07", "rededge"),
                       "B04": _band_asset("b04.tif", "B04", "red"), "B04-jp2": _band_asset("b04.jp2", "B04", "red")}}
    with pytest.raises(AmbiguousBand) as caught:
        resolve_band(item, "RedEdge")
    assert str(caught.value) == ("'RedEdge' is the common name of 3 bands in item s2-like: B05, B06, "
                                 "rededge3 (B07); name one of them")
    assert caught.value.available == ["B05", "B06", "rededge3"]
    assert isinstance(caught.value, BandNotFound), "callers that report a missing band report this too"
    # a band id or an asset key picks one of them; two copies of one band are not ambiguous
    assert [resolve_band(item, name).asset_key for name in ("b06", "rededge3", "B07", "red")] == [
        "B06", "rededge3", "rededge3", "B04"]


def test_copies_of_a_band_at_several_resolutions_resolve_to_the_finest() -> None:
    """Copernicus Data Space keys each Sentinel-2 band once per resolution (B04_10m, B04_20m, B04_60m),
    all named B04: "red" is that one band, read at 10 m; "rededge" still names three bands."""
    def asset(key: str, band: str, common: str | None, wavelength: float, gsd: int) -> dict:
        described = {"name": band, "eo:center_wavelength": wavelength}
        if common:
            described["eo:common_name"] = common
        return {"href": f"{key}.jp2", "type": "image/jp2", "roles": ["data", "reflectance"], "gsd": gsd,
                "bands": [described]}

    assets = {}
    for band, common, wavelength, resolutions in (("B04", "red", 0.665, (60, 20, 10)), ("B08", "nir", 0.842, (10,)),
                                                  ("B05", "rededge", 0.704, (20, 60)),
                                                  ("B06", "rededge", 0.740, (20, 60)),
                                                  ("B07", "rededge", 0.783, (20, 60)), ("SCL", None, 0.0, (60, 20))):
        for gsd in resolutions:
            assets[f"{band}_{gsd}m"] = asset(f"{band}_{gsd}m", band, common, wavelength, gsd)
    item = {"type": "Feature", "id": "S2C_MSIL2A_cdse", "geometry": None,
            "properties": {"datetime": "2026-09-06T10:46:21Z"}, "assets": assets}
    found = {name: resolve_band(item, name) for name in ("red", "B04", "nir", "SCL")}
    assert {name: (band.asset_key, band.resolution) for name, band in found.items()} == {
        "red": ("B04_10m", 10.0), "B04": ("B04_10m", 10.0), "nir": ("B08_10m", 10.0), "SCL": ("SCL_20m", 20.0)}
    with pytest.raises(AmbiguousBand) as caught:
        resolve_band(item, "rededge")
    assert caught.value.available == ["B05_20m", "B05_60m", "B06_20m", "B06_60m", "B07_20m", "B07_60m"]
    assert "B05_20m (B05), B05_60m (B05), B06_20m (B06)" in str(caught.value)
    del item["assets"]["B05_60m"], item["assets"]["B06_20m"], item["assets"]["B06_60m"]
    del item["assets"]["B07_20m"], item["assets"]["B07_60m"]
    assert resolve_band(item, "rededge").asset_key == "B05_20m", "one rededge band left: no ambiguity"
    item["assets"] = {"overview-red": asset("o", "B04", "red", 0.665, 320),
                      "red-native": asset("n", "B04", "red", 0.665, 10)}
    assert resolve_band(item, "red").asset_key == "red-native", "the finest copy, whatever the keys' order"


def test_of_two_copies_at_one_resolution_the_cog_is_read() -> None:
    """A JPEG 2000 original keyed before its COG copy (as "B04" sorts before "B04-cog"): the COG is
    read, by ranges; without a COG, the JPEG 2000 still is."""
    def asset(href: str, media: str) -> dict:
        return {"href": href, "type": media, "roles": ["data"], "gsd": 10,
                "eo:bands": [{"name": "B04", "common_name": "red"}]}

    item = {"type": "Feature", "id": "two-formats", "geometry": None,
            "properties": {"datetime": "2024-06-01T10:00:00Z"}, "assets": {"B04": asset("b04.jp2", "image/jp2"),
                       "B04-cog": asset("b04.tif", "image/tiff; application=geotiff; profile=cloud-optimized")}}
    assert [resolve_band(item, name).href for name in ("red", "B04-cog")] == ["b04.tif", "b04.tif"]
    assert resolve_band(item, "B04").href == "b04.jp2", "an asset key asked for is that asset"
    del item["assets"]["B04-cog"]
    assert resolve_band(item, "red").href == "b04.jp2"


def test_real_catalogs_refuse_rededge_and_resolve_its_band_ids(shared_data) -> None:
    es_items, es_collection = read_es(shared_data)
    pc_items, _ = read_pc(shared_data)
    es_keys = ["rededge1", "rededge2", "rededge3"]
    cases = [(es_items[0], "item", es_keys), (es_collection, "collection", es_keys),
             (pc_items[0], "item", ["B05", "B06", "B07", "B8A"])]  # PC calls B8A "rededge" too
    for document, kind, keys in cases:
        with pytest.raises(AmbiguousBand) as caught:
            resolve_band(document, "rededge")
        assert caught.value.available == keys
        assert f" bands in {kind} {document['id']}: " in str(caught.value)
    assert resolve_band(es_items[0], "B06").asset_key == "rededge2"
    assert resolve_band(pc_items[0], "B06").asset_key == "B06"
