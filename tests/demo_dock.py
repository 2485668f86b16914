"""The dock on the demo cube, as the dock test modules drive it: the ``dock`` fixture (``conftest.py``
registers this module as a pytest plugin, so modules take it by name) and a search from the Browse tab."""

from __future__ import annotations

import pytest
from conftest import settle_tasks
from qgis.core import QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QDateTime, Qt

from cubescope.plugin.gui.dock import CubescopeDock
from cubescope.plugin.gui.search_form import WGS84

WAIT_MS = 60_000
S2 = "demo-s2-l2a"


@pytest.fixture()
def dock(qgis_app, qgis_canvas, qtbot, tmp_path, demo_cube):
    widget = CubescopeDock(None, qgis_canvas)
    widget.browse.workdir = tmp_path / "vrt"
    qtbot.addWidget(widget)
    widget.resize(420, 900)
    widget.show()
    with qtbot.waitSignal(widget.browse.collections_listed, timeout=WAIT_MS):
        widget.open_demo_cube(demo_cube.root)
    yield widget
    widget.cancel_tasks()
    settle_tasks(qtbot)
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


def search(dock, qtbot, collection=S2, bbox=None, cloud=100, cql2=""):
    panel = dock.browse
    panel.select_collection(collection)
    if bbox is not None:
        dock.form.extentBox.setOutputExtentFromUser(QgsRectangle(*bbox), WGS84)
    dock.form.startEdit.setDateTime(QDateTime.fromString("2023-01-01", "yyyy-MM-dd"))
    dock.form.endEdit.setDateTime(QDateTime.fromString("2024-12-31", "yyyy-MM-dd"))
    dock.form.cloudSpin.setValue(cloud)
    dock.form.cqlEdit.setText(cql2)
    with qtbot.waitSignal(panel.search_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.searchButton, Qt.MouseButton.LeftButton)
    return blocker.args[0]
