"""The Analysis tab: estimate, run a composite and a difference, results added with a fitting style."""

from __future__ import annotations

import pytest
from demo_dock import WAIT_MS
from osgeo import gdal
from qgis.core import QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QDateTime

from cubescope.plugin.gui.browse_panel import WGS84


def setup(dock, operation: str, method: str, bands: str, output) -> None:
    form = dock.form
    dock.browse.select_collection("demo-s2-l2a")
    form.operationCombo.setCurrentIndex(form.operationCombo.findData(operation))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData(method))
    form.analysisBandsEdit.setText(bands)
    # A small extent inside tile A, covering the clear-cut and the forest around it.
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(23.985, 45.503, 23.998, 45.512), WGS84)
    form.outputFile.setFilePath(str(output))


def test_estimate_then_composite(dock, qtbot, tmp_path):
    setup(dock, "composite", "median", "red,green,blue", tmp_path / "median.tif")
    dock.form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.estimated, timeout=WAIT_MS) as blocker:
        dock.form.estimateButton.click()
    volume = blocker.args[0]
    assert volume.dates > 0 and volume.width > 0 and volume.bytes_read > 0
    assert dock.form.analysisStatus.text() == volume.describe()
    with qtbot.waitSignal(dock.analysis.finished, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    layer = blocker.args[0]
    assert layer.isValid() and layer.bandCount() == 3
    dataset = gdal.Open(str(tmp_path / "median.tif"))
    assert dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    assert [dataset.GetRasterBand(i + 1).GetDescription() for i in range(3)] == ["red median", "green median",
                                                                              "blue median"]
    QgsProject.instance().removeAllMapLayers()


def test_ndvi_difference_uses_a_diverging_ramp_centred_on_zero(dock, qtbot, tmp_path):
    setup(dock, "difference", "median", "ndvi", tmp_path / "diff.tif")
    for edit, day in ((dock.form.startAEdit, "2023-06-01"), (dock.form.endAEdit, "2023-09-30"),
                      (dock.form.startBEdit, "2024-05-01"), (dock.form.endBEdit, "2024-07-31")):
        edit.setDateTime(QDateTime.fromString(day, "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.finished, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    layer = blocker.args[0]
    renderer = layer.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    assert renderer.classificationMin() == pytest.approx(-renderer.classificationMax())
    assert renderer.classificationMin() < -0.3, "the clear-cut's NDVI drop is in the range"
    QgsProject.instance().removeAllMapLayers()


def test_an_empty_period_is_explained(dock, qtbot, tmp_path):
    setup(dock, "composite", "median", "red", tmp_path / "none.tif")
    dock.form.startAEdit.setDateTime(QDateTime.fromString("2020-01-01", "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString("2020-02-01", "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    assert "2020-01-01" in blocker.args[0]
    assert not (tmp_path / "none.tif").exists()
    assert dock.form.runAnalysisButton.isEnabled()


def test_a_zarr_cube_is_analysed_like_a_collection(dock, qtbot, demo_cube, tmp_path):
    """The NDVI difference of the demo's Zarr cube, from the dock: the clear-cut drops where the truth says."""
    import numpy as np

    from cubescope.plugin.stac.sources import Source, SourceKind

    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="zarr", kind=SourceKind.ZARR, url=str(demo_cube.zarr)))
    dock.browse.select_collection(demo_cube.zarr.name)
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("difference"))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData("median"))
    form.analysisBandsEdit.setText("ndvi")
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(), WGS84)  # empty: the whole cube
    form.outputFile.setFilePath(str(tmp_path / "zarr-diff.tif"))
    for edit, day in ((form.startAEdit, "2023-06-01"), (form.endAEdit, "2023-09-30"),
                      (form.startBEdit, "2024-05-01"), (form.endBEdit, "2024-07-31")):
        edit.setDateTime(QDateTime.fromString(day, "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.estimated, timeout=WAIT_MS) as blocker:
        form.estimateButton.click()
    assert "256 x 256 px" in blocker.args[0].describe() and blocker.args[0].dates == 8 + 6
    with qtbot.waitSignal(dock.analysis.finished, timeout=WAIT_MS) as blocker:
        form.runAnalysisButton.click()
    layer = blocker.args[0]
    assert layer.isValid() and layer.renderer().type() == "singlebandpseudocolor"
    change = gdal.Open(str(demo_cube.root / "truth" / "34TGR_change.tif")).ReadAsArray() == 1
    assert np.array_equal(gdal.Open(str(tmp_path / "zarr-diff.tif")).ReadAsArray() < -0.3, change)
    QgsProject.instance().removeAllMapLayers()
