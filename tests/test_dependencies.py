"""Detecting missing optional packages and pinning QGIS's own packages for pip (no QGIS needed)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from cubescope.plugin import dependencies
from cubescope.plugin.dependencies import Requirement, missing_requirements, read_requirements


def test_every_requirement_says_what_it_enables():
    requirements = read_requirements()
    names = {r.name for r in requirements}
    assert {"pystac-client", "odc-stac", "dask", "pyqtgraph"} <= names
    assert all(r.module and r.enables for r in requirements)


def test_absent_and_too_old_packages_are_missing_installed_ones_are_not():
    absent = Requirement("cubescope-no-such-package>=1", "cubescope_no_such_package", "nothing")
    too_old = Requirement("numpy>=99", "numpy", "the future")
    fine = Requirement("numpy>=1.20", "numpy", "arrays")
    assert missing_requirements([absent, too_old, fine]) == [absent, too_old]


def test_a_malformed_requirements_line_names_the_line(tmp_path):
    bad = tmp_path / "requirements.txt"
    bad.write_text("pystac-client>=0.7\n")
    with pytest.raises(ValueError, match=r"requirements.txt:1"):
        read_requirements(bad)


def test_constraints_pin_the_running_numpy_and_gdal():
    lines = dependencies.constraint_lines()
    assert f"numpy=={numpy.__version__}" in lines
    assert f"GDAL=={importlib.metadata.version('GDAL')}" in lines


def test_pip_command_installs_with_the_constraints(tmp_path):
    constraints = tmp_path / "c.txt"
    command = dependencies.pip_command(read_requirements()[:1], constraints)
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[command.index("--constraint") + 1] == str(constraints)
    assert Path(command[0]).exists()


def test_pip_resolves_against_the_constraints_without_replacing_numpy(tmp_path):
    """A real pip dry run: what the plugin would install keeps QGIS's numpy."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(dependencies.constraint_lines()) + "\n")
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
         "--constraint", str(constraints), "numpy>=1.20", "pyqtgraph>=0.13"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert '"name": "numpy"' not in report.read_text()
