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
