"""The Processing provider from the command line: `qgis_process` runs Cubescope's algorithms."""

from __future__ import annotations

import json

from qgis_desktop import qgis_process

from cubescope.plugin.demo import DEFAULT_SEED


def test_qgis_process_lists_and_runs_democube(tmp_path):
    home = tmp_path / "home"
    enabled = qgis_process(home, "plugins", "enable", "cubescope")
    assert enabled.returncode == 0, enabled.stderr[-2000:]

    listed = qgis_process(home, "list")
    assert "cubescope:democube" in listed.stdout

    out = tmp_path / "cube"
    run = qgis_process(home, "--json", "run", "cubescope:democube", "--", f"SEED={DEFAULT_SEED}", f"OUTPUT={out}")
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout)["results"]
    assert results["CATALOG"] == str(out / "stac" / "catalog.json")
    catalog = json.loads((out / "stac" / "catalog.json").read_text())
    assert catalog["type"] == "Catalog"
    assert json.loads((out / "manifest.json").read_text())["seed"] == DEFAULT_SEED


def _footprints(path) -> list[dict]:
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(path), "out", "ogr")
    assert layer.isValid()
    return [{f.name(): feature[f.name()] for f in layer.fields()} for feature in layer.getFeatures()]


def test_qgis_process_searchitems_on_the_static_catalog_and_an_api(tmp_path, demo_cube, stac_api_light):
    """The README's command line, against the demo's static catalog and the light STAC API."""
    home = tmp_path / "home"
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    files = demo_cube.collections["demo-s2-l2a"].parent.glob("*/*.json")
    expected = sorted(
        item["id"] for item in (json.loads(p.read_text()) for p in files)
        if item["properties"]["eo:cloud_cover"] <= 20 and item["properties"]["datetime"] < "2024-01-01"
    )
    for source in (str(demo_cube.catalog), stac_api_light.url):
        out = tmp_path / f"footprints-{len(list(tmp_path.iterdir()))}.gpkg"
        run = qgis_process(
            home, "run", "cubescope:searchitems", "--", f"SOURCE={source}", "COLLECTION=demo-s2-l2a",
            "EXTENT=23.90,24.10,45.40,45.60 [EPSG:4326]", "START=2023-01-01", "END=2023-12-31",
            "MAX_CLOUD=20", "LIMIT=0", f"OUTPUT={out}",
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        rows = _footprints(out)
        assert sorted(r["id"] for r in rows) == expected, source
        assert {r["tile"] for r in rows} == {"34TGR", "35TKL"}
        assert all(r["collection"] == "demo-s2-l2a" and r["cloud_cover"] <= 20 for r in rows)


def test_qgis_process_searchitems_names_untiled_items_by_their_cluster(tmp_path, demo_cube):
    """Items that name no tile (a copy of the demo's Sentinel-1 items without grid:code and mgrs:*):
    their rows carry their footprint cluster's name, as the dock's groups do, never an empty tile."""
    import shutil

    from cubescope.plugin.stac.tiles import group_by_tile

    stac = tmp_path / "stac"
    shutil.copytree(demo_cube.catalog.parent, stac, ignore=shutil.ignore_patterns("*.tif"))
    items = []
    for path in (stac / "demo-s1-rtc").glob("*/*.json"):
        item = json.loads(path.read_text())
        item["properties"] = {k: v for k, v in item["properties"].items()
                              if k != "grid:code" and not k.startswith("mgrs:")}
        path.write_text(json.dumps(item))
        items.append(item)
    home = tmp_path / "home"
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    out = tmp_path / "s1.gpkg"
    run = qgis_process(home, "run", "cubescope:searchitems", "--", f"SOURCE={stac / demo_cube.catalog.name}",
                       "COLLECTION=demo-s1-rtc", "START=2023-01-01", "END=2024-12-31", "LIMIT=0", f"OUTPUT={out}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = _footprints(out)
    expected = {item["id"]: group.tile for group in group_by_tile(items) for item in group.items}
    assert len(rows) == len(items) > 0 and {r["id"]: r["tile"] for r in rows} == expected
    assert len(set(expected.values())) >= 2 and all(tile.startswith("near ") for tile in expected.values())
