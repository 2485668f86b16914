"""The plugin in the real QGIS desktop: loads, lists the demo catalog, reloads (mid-composite) and unloads
cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis_desktop import create_profile, run_probe

EXPECTED_ACTIONS = ["CubescopePixelTool", "CubescopeShowDock"]
DEMO_COLLECTIONS = ["demo-dem", "demo-landcover", "demo-s1-rtc", "demo-s2-l2a"]


@pytest.fixture(scope="module")
def probe_report(tmp_path_factory, demo_cube) -> dict:
    workdir = tmp_path_factory.mktemp("qgis")
    create_profile(workdir / "profiles")
    return run_probe(workdir / "profiles", demo_cube.root, workdir)


def test_probe_ran_without_exception(probe_report):
    assert "exception" not in probe_report, probe_report.get("exception")


def test_everything_is_there_after_start(probe_report):
    state = probe_report["after_start"]
    assert state["active"]
    assert state["docks"] == 1
    assert state["toolbars"] == 1
    assert state["actions"] == EXPECTED_ACTIONS
    assert state["menu_actions"] == ["Cubescope panel", "Pixel time series"]
    assert state["map_tool"]
    assert state["provider"]
    assert "cubescope:democube" in state["algorithms"]


def test_dock_lists_the_demo_catalog(probe_report, demo_cube):
    assert probe_report["demo_collections"] == DEMO_COLLECTIONS
    assert probe_report["demo_status"] == "Demo cube: 4 collections, offline."
    assert probe_report["demo_root"] == str(demo_cube.root)


def test_reload_leaves_no_duplicates(probe_report):
    assert probe_report["after_reload"] == probe_report["after_start"]
    assert probe_report["after_reload_collections"] == DEMO_COLLECTIONS


def test_results_run_from_the_toolbox_are_named_and_styled_as_from_the_dock(probe_report):
    """processing.runAndLoadResults, the toolbox's own runner, in the desktop: each loaded layer is named
    by what it holds, not "Output (Cloud-Optimized GeoTIFF)"; the difference on a ramp centred on zero
    that takes in the clear-cut's drop, the composite asked blue first in true colour; each with its
    period as its time for the temporal controller."""
    difference, composite = probe_report["toolbox"]["difference"], probe_report["toolbox"]["composite"]
    assert difference.get("name") == "NDVI median difference 2024-05-01/2024-07-31 − 2023-05-01/2023-09-30", \
        difference
    assert difference["renderer"] == "singlebandpseudocolor"
    assert difference["low"] == pytest.approx(-difference["high"]) and difference["low"] < -0.3
    assert composite.get("name") == "blue,green,red median 2023-06-01/2023-08-31", composite
    assert composite["renderer"] == "multibandcolor" and composite["rgb"] == [3, 2, 1]
    assert composite["time"] == ["2023-06-01 00:00:00", "2023-08-31 23:59:59"], "plays in its period"
    assert difference["time"] == ["2023-05-01 00:00:00", "2024-07-31 23:59:59"]


def test_a_reload_mid_composite_cancels_it_and_leaves_no_file(probe_report):
    """The reload came while the composite ran; its cancelled task reported to no deleted widget (the
    log test below sees no Python error) and left no file."""
    assert probe_report["running_at_reload"] == ["Cubescope: Temporal composite"]
    assert probe_report["tasks_left"] == 0
    assert probe_report["composite_written"] is False


def test_unload_removes_everything(probe_report):
    state = probe_report["after_unload"]
    assert not state["active"]
    assert (state["docks"], state["toolbars"], state["actions"], state["menu_actions"]) == (0, 0, [], [])
    assert not state["provider"]


def test_no_warnings_or_errors_in_the_log(probe_report):
    ours = [m for m in probe_report["log"] if m["tag"] in {"Cubescope", "Python error", "Python warning"}]
    assert ours == []


def test_plugin_was_loaded_from_the_profile(probe_report):
    assert probe_report["plugin_path"] is not None
    assert Path(probe_report["plugin_path"]).name == "cubescope"
