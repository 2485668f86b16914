"""`make package`'s ZIP: only plugin files, and it installs and loads in a fresh QGIS profile."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from qgis_desktop import REPO, create_profile, run_probe
from tools.validate_package import problems

DEMO_COLLECTIONS = ["demo-dem", "demo-landcover", "demo-s1-rtc", "demo-s2-l2a"]


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    completed = subprocess.run(
        [sys.executable, str(REPO / "tests" / "tools" / "package.py"), str(out)],
        capture_output=True, text=True, check=True,
    )
    return out / completed.stdout.strip().rsplit("/", 1)[-1]


def test_zip_holds_the_plugin_and_nothing_else(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {"cubescope/metadata.txt", "cubescope/__init__.py", "cubescope/ui/dock.ui",
            "cubescope/resources/icon.svg", "cubescope/plugin/cubescope_plugin.py"} <= set(names)
    assert all(name.startswith("cubescope/") for name in names)
    forbidden = ("/tests/", "/.ci/", "/build/", "/.venv", "__pycache__", ".pyc", "Makefile", "/screenshots/")
    assert [n for n in names if any(f in n for f in forbidden)] == []


def test_zip_carries_the_license_and_the_qgis_range(plugin_zip):
    archive = zipfile.ZipFile(plugin_zip)
    assert archive.read("cubescope/LICENSE").startswith(b"                    GNU GENERAL PUBLIC LICENSE\n")
    metadata = archive.read("cubescope/metadata.txt").decode()
    assert "\nqgisMinimumVersion=3.40\n" in metadata and "\nqgisMaximumVersion=4.99\n" in metadata
    assert "cubescope/plugin/locks/py311-numpy1.txt" in archive.namelist(), "the installer's pins ship"


def test_the_official_repository_checks_pass(plugin_zip):
    """The upload validator's checks (tests/tools/validate_package.py), on the ZIP `make package` built."""
    assert problems(plugin_zip) == []


def test_the_checks_refuse_what_the_repository_refuses(plugin_zip, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(plugin_zip) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            if info.filename != "cubescope/LICENSE":
                target.writestr(info, source.read(info))
        target.writestr("cubescope/plugin/__pycache__/x.cpython-311.pyc", b"")
        target.writestr("other/readme.txt", b"")
    found = problems(broken)
    assert any("LICENSE is missing" in p for p in found), found
    assert any("compiled Python" in p for p in found), found
    assert any("one top folder" in p for p in found), found


@pytest.fixture(scope="module")
def fresh_install_report(plugin_zip, tmp_path_factory, demo_cube):
    """Unzip as the Plugin Manager does, into a fresh profile; QGIS sees only Debian's packages."""
    workdir = tmp_path_factory.mktemp("fresh-qgis")
    unpacked = workdir / "unzipped"
    zipfile.ZipFile(plugin_zip).extractall(unpacked)
    create_profile(workdir / "profiles", plugin_source=unpacked / "cubescope", copy=True)
    return run_probe(workdir / "profiles", demo_cube.root, workdir, with_venv=False)


def test_zip_installs_and_loads_in_a_fresh_profile(fresh_install_report, tmp_path_factory):
    assert "exception" not in fresh_install_report, fresh_install_report.get("exception")
    assert "/profiles/cubescope/python/plugins/cubescope" in fresh_install_report["plugin_path"]
    state = fresh_install_report["after_start"]
    assert state["active"] and state["docks"] == 1 and state["provider"]


def test_missing_packages_are_named_and_the_demo_still_works(fresh_install_report):
    missing = fresh_install_report["after_start"]["missing_packages"]
    assert {"pystac-client", "odc-stac", "dask", "pyqtgraph"} <= set(missing)
    assert fresh_install_report["demo_collections"] == DEMO_COLLECTIONS
    warnings = [m["message"] for m in fresh_install_report["log"] if m["tag"] == "Cubescope"]
    assert all("Optional Python packages missing" in w for w in warnings)
    for run in fresh_install_report["toolbox"].values():
        assert "need odc-stac and dask, which are missing here" in run.get("error", ""), run
