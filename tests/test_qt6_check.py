"""The Qt6/QGIS 4 check (`make lint`) passes on the plugin and fails on a Qt5-only idiom, run against
this test run's own QGIS: 3.40 on Debian 12 and 13, 3.44 on sid, each with Debian's PyQt6."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECKER = Path(__file__).resolve().parent / "tools" / "qt6_check.py"
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


def check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECKER), *map(str, paths)], capture_output=True, text=True,
                          timeout=300, env=ENV)


def test_the_plugin_has_no_qt5_only_idiom():
    completed = check()
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_a_planted_unscoped_enum_fails_and_names_its_line(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from qgis.PyQt.QtCore import Qt\nfrom qgis.core import Qgis\n\n"
                       "ROLE = Qt.UserRole\nLEVEL = Qgis.MessageLevel.Warning\nOLD = Qgis.Warning\n")
    completed = check(planted)
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert any(":4:" in line and "Qt.ItemDataRole.UserRole" in line for line in lines), lines
    assert any(":6:" in line and "Qgis.MessageLevel.Warning" in line for line in lines), lines
    assert not any(":5:" in line for line in lines), lines


def test_exec_underscore_and_direct_pyqt_imports_fail(tmp_path):
    planted = tmp_path / "dialog.py"
    planted.write_text("from PyQt5.QtWidgets import QDialog\n\nQDialog().exec_()\n")
    completed = check(planted)
    assert completed.returncode == 1
    assert ":1:" in completed.stdout and ":3:" in completed.stdout, completed.stdout
