"""The Analysis tab: estimate, run a composite and a difference, results added with a fitting style."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from chip_requests import TILE_A
from cut_catalog import catalog_with_cut_red, open_files_under
from demo_dock import WAIT_MS
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsLayerTreeRegistryBridge,
    QgsProject,
    QgsRectangle,
    QgsStyle,
)
from qgis.PyQt.QtCore import QDateTime, Qt
from qgis.PyQt.QtGui import QFontMetrics

from cubescope.plugin.gui.search_form import WGS84
from cubescope.plugin.stac.sources import Source, SourceKind


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
    assert _time_range(layer) == ("2023-06-01T00:00:00Z", "2023-08-31T23:59:59Z"), "plays in its period"
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
    assert _time_range(layer) == ("2023-06-01T00:00:00Z", "2024-07-31T23:59:59Z"), "from A's start to B's end"
    QgsProject.instance().removeAllMapLayers()


def _time_range(layer) -> tuple[str, str] | None:
    """The layer's time for the temporal controller, as ISO strings (None when it has none)."""
    temporal = layer.temporalProperties()
    if not temporal.isActive():
        return None
    span = temporal.fixedTemporalRange()
    return span.begin().toUTC().toString(Qt.DateFormat.ISODate), span.end().toUTC().toString(Qt.DateFormat.ISODate)


def _run_over(dock, qtbot, start: str, end: str):
    dock.form.startAEdit.setDateTime(QDateTime.fromString(start, "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString(end, "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.finished, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    return blocker.args[0]


def _first_colour(renderer) -> str:
    return renderer.shader().rasterShaderFunction().colorRampItemList()[0].color.name()


def test_a_composite_asked_blue_first_shows_in_true_colour(dock, qtbot, tmp_path):
    """Bands asked in the sensor's order (blue, green, red, nir): red is drawn from band 3, not band 1,
    the three on one stretch over the reflectances (each on its own, the dark forest turns black)."""
    setup(dock, "composite", "median", "blue,green,red,nir", tmp_path / "natural.tif")
    # The desktop inserts new layers into the selected group: here a loaded scene's date group.
    root = QgsProject.instance().layerTreeRoot()
    scene_group = root.insertGroup(0, "34TGR").addGroup("2023-07-13")
    bridge = QgsProject.instance().layerTreeRegistryBridge()
    bridge.setLayerInsertionPoint(QgsLayerTreeRegistryBridge.InsertionPoint(scene_group, 0))
    try:
        layer = _run_over(dock, qtbot, "2023-06-01", "2023-08-31")
    finally:
        bridge.setLayerInsertionPoint(QgsLayerTreeRegistryBridge.InsertionPoint(root, 0))
    assert root.children()[0].layerId() == layer.id() and scene_group.children() == [], "on top, not in the scene"
    renderer = layer.renderer()
    assert (renderer.type(), renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == \
        ("multibandcolor", 3, 2, 1)
    stretches = {(e.minimumValue(), e.maximumValue()) for e in (
        renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(), renderer.blueContrastEnhancement())}
    [(low, high)] = stretches
    assert 0 < low < high < 1
    QgsProject.instance().removeAllMapLayers()


@pytest.mark.parametrize(("statistic", "ramp", "centred"), [("slope", "RdBu", True), ("mean", "RdYlGn", False),
                                                             ("std", "Viridis", False)])
def test_ndvi_statistics_are_styled_by_what_they_measure(dock, qtbot, tmp_path, statistic, ramp, centred):
    """A trend on a diverging ramp centred on zero (the clear-cut's loss against the growth elsewhere),
    the mean NDVI red to green like a composite of it, a spread on viridis."""
    setup(dock, "statistics", statistic, "ndvi", tmp_path / f"{statistic}.tif")
    renderer = _run_over(dock, qtbot, "2023-01-01", "2024-12-31").renderer()
    assert renderer.type() == "singlebandpseudocolor"
    assert _first_colour(renderer) == QgsStyle.defaultStyle().colorRamp(ramp).color(0).name()
    low, high = renderer.classificationMin(), renderer.classificationMax()
    assert (low == pytest.approx(-high)) == centred and low < high
    QgsProject.instance().removeAllMapLayers()


@pytest.mark.parametrize(("crs", "resolution", "suffix"), [("EPSG:3035", 20.0, " m"), ("EPSG:4326", 0.0002, " °")])
def test_a_chosen_crs_and_resolution_make_the_output_grid(dock, qtbot, tmp_path, crs, resolution, suffix):
    """The CRS row (not set: native) and a resolution in its units: degrees need the decimals that
    metres do not, or 0.0002 would round to 0 (native)."""
    setup(dock, "composite", "median", "ndvi", tmp_path / "grid.tif")
    widget = dock.form.analysisCrsWidget
    assert not widget.crs().isValid() and dock.analysis.request().crs == "", "native unless chosen"
    widget.setCrs(QgsCoordinateReferenceSystem(crs))
    dock.form.resolutionSpin.setValue(resolution)
    assert dock.form.resolutionSpin.suffix() == suffix
    _run_over(dock, qtbot, "2023-06-01", "2023-08-31")
    dataset = gdal.Open(str(tmp_path / "grid.tif"))
    assert dataset.GetSpatialRef().GetAuthorityCode(None) == crs.split(":")[1]
    transform = dataset.GetGeoTransform()
    assert (transform[1], -transform[5]) == pytest.approx((resolution, resolution))
    QgsProject.instance().removeAllMapLayers()


def test_a_result_without_a_chosen_file_is_named_by_what_it_holds(dock, qtbot, tmp_path):
    """Written to the temporary folder, named for the layer tree by its bands, method and period (two
    runs over different periods read apart); a file the user named keeps its name, and a second run
    into it replaces its layer."""
    setup(dock, "composite", "median", "ndvi", "")
    layer = _run_over(dock, qtbot, "2023-06-01", "2023-08-31")
    name, written = layer.name(), Path(layer.source())
    QgsProject.instance().removeAllMapLayers()
    written.unlink()
    assert name == "ndvi median 2023-06-01/2023-08-31"
    # The dock's one-line bar names the layer (a path wrapped into it was cut in half); the status
    # line below keeps the whole path.
    assert dock.analysis.bar.currentItem().text() == "Added “ndvi median 2023-06-01/2023-08-31”"
    assert dock.form.analysisStatus.text() == f"Wrote {written}"
    assert written.parent == Path(tempfile.gettempdir()) and written.name.startswith("cubescope-composite-")
    setup(dock, "statistics", "slope", "ndvi", tmp_path / "my-trend.tif")
    assert _run_over(dock, qtbot, "2023-01-01", "2024-12-31").name() == "my-trend"
    # Run again into the same file: its layer is replaced, not doubled by one showing the old pixels.
    dock.form.methodCombo.setCurrentIndex(dock.form.methodCombo.findData("count"))
    again = _run_over(dock, qtbot, "2023-01-01", "2024-12-31")
    assert [lay.id() for lay in QgsProject.instance().mapLayers().values()] == [again.id()]
    assert gdal.Open(str(tmp_path / "my-trend.tif")).GetMetadataItem("CUBESCOPE_STATISTIC") == "count"
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


def test_cogs_failing_midway_are_left_out_and_the_tab_says_how_many(dock, qtbot, demo_cube, tmp_path):
    """Every red COG of a copy of the catalog is cut at its second row of tiles: the composite over the
    whole of tile A is still written, the tab and the bar say how many inputs were left out, the log
    names each file with its cause (the same list as the result's metadata), and no file of the
    catalog stays open."""
    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="cut COGs", kind=SourceKind.STATIC, url=str(catalog)))
    (tmp_path / "out").mkdir()
    setup(dock, "composite", "median", "red", tmp_path / "out" / "median.tif")
    utm = QgsCoordinateReferenceSystem("EPSG:32634")
    dock.form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(*TILE_A), utm)
    dock.form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    messages: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, *_: messages.append(text))
    with qtbot.waitSignal(dock.analysis.finished, timeout=WAIT_MS):
        dock.form.runAnalysisButton.click()
    metadata = gdal.Open(str(tmp_path / "out" / "median.tif")).GetMetadata()
    left_out = metadata["CUBESCOPE_SKIPPED"].splitlines()
    assert int(metadata["CUBESCOPE_SKIPPED_INPUTS"]) == len(left_out) > 0
    status = dock.form.analysisStatus.text()
    assert f"; {len(left_out)} input(s) could not be read and were left out" in status, status
    for line in left_out:
        assert re.fullmatch(rf"{tmp_path}/stac/demo-s2-l2a/S2\w+/red\.tif: truncated or corrupt \(.+\)", line)
        assert any(line in message for message in messages), line
    assert dock.form.runAnalysisButton.isEnabled()
    assert open_files_under(tmp_path / "stac") == []
    QgsProject.instance().removeAllMapLayers()


def _bands_by_name(path: Path) -> dict:
    dataset = gdal.Open(str(path))
    return {dataset.GetRasterBand(n).GetDescription(): dataset.GetRasterBand(n).ReadAsArray()
            for n in range(1, dataset.RasterCount + 1)}


def test_the_mask_row_chooses_which_observations_count(dock, qtbot, tmp_path):
    """Empty: the collection's own rule (the demo's SCL), so clouds are left out; "none": every
    observation counts as clear; a mistyped mask is reported before any task starts."""
    setup(dock, "composite", "median", "red", tmp_path / "scl.tif")
    dock.form.extraBandsCheck.setChecked(True)
    dock.form.analysisMaskEdit.setText("")
    _run_over(dock, qtbot, "2023-06-01", "2023-08-31")
    by_scl = _bands_by_name(tmp_path / "scl.tif")
    assert (by_scl["CLEAROB"] < by_scl["TOTALOB"]).any(), "the SCL masks some observations here"
    dock.form.outputFile.setFilePath(str(tmp_path / "all.tif"))
    dock.form.analysisMaskEdit.setText("none")
    _run_over(dock, qtbot, "2023-06-01", "2023-08-31")
    unmasked = _bands_by_name(tmp_path / "all.tif")
    assert np.array_equal(unmasked["CLEAROB"], unmasked["TOTALOB"])
    assert np.array_equal(unmasked["TOTALOB"], by_scl["TOTALOB"])
    dock.form.outputFile.setFilePath(str(tmp_path / "typo.tif"))
    dock.form.analysisMaskEdit.setText("scl: 4,5,six")
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    assert blocker.args[0] == "Mask: Not an integer or range in quality values: 'six' (expected e.g. \"4,5,6\")"
    assert not (tmp_path / "typo.tif").exists() and dock.form.runAnalysisButton.isEnabled()
    dock.form.analysisMaskEdit.setText("")
    dock.form.extraBandsCheck.setChecked(False)
    QgsProject.instance().removeAllMapLayers()


def test_a_short_message_fits_a_narrow_bar_on_one_line(qgis_app, qtbot):
    """Elided in the middle, both ends kept: the bar wraps text, and a wrapped line is cut in half."""
    from qgis.gui import QgsMessageBar

    from cubescope.plugin.log import log

    bar = QgsMessageBar()
    qtbot.addWidget(bar)
    bar.resize(420, 40)
    bar.show()
    name = "blue,green,red,nir median 2023-06-01/2023-08-31"
    log(f"Wrote /tmp/{name}.tif", "success", bar=bar, title="", short=f"Added “{name}”")
    shown = bar.currentItem().text()
    assert shown != f"Added “{name}”" and "…" in shown
    assert shown.startswith("Added “bl") and shown.endswith("-08-31”")
    assert QFontMetrics(bar.font()).horizontalAdvance(shown) <= 420 - 200


def test_a_start_after_the_end_is_explained_and_starts_no_task(dock, qtbot, tmp_path):
    setup(dock, "composite", "median", "red", tmp_path / "reversed.tif")
    dock.form.startAEdit.setDateTime(QDateTime.fromString("2024-05-01", "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString("2024-03-01", "yyyy-MM-dd"))
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    assert blocker.args[0] == "The period starts (2024-05-01) after it ends (2024-03-01)"
    assert dock.form.analysisStatus.text() == blocker.args[0]
    assert dock.form.runAnalysisButton.isEnabled() and not dock.form.cancelAnalysisButton.isEnabled()
    assert list(tmp_path.iterdir()) == []


def test_the_tab_can_stop_at_the_first_unreadable_cog(dock, qtbot, demo_cube, tmp_path):
    """With "Stop at the first input that cannot be read" ticked, the same cut COGs end the run: the
    tab names the file and its cause, and nothing is written or left open."""
    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="cut COGs", kind=SourceKind.STATIC, url=str(catalog)))
    (tmp_path / "out").mkdir()
    setup(dock, "composite", "median", "red", tmp_path / "out" / "median.tif")
    dock.form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(*TILE_A),
                                                       QgsCoordinateReferenceSystem("EPSG:32634"))
    dock.form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    dock.form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    dock.form.failOnBadInputCheck.setChecked(True)
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    message = blocker.args[0]
    assert re.search(rf"Stopped at the first input that cannot be read \(as asked\): {tmp_path}/stac/demo-s2-l2a/"
                     r"S2\w+/red\.tif: truncated or corrupt", message), message
    assert dock.form.analysisStatus.text() == message and dock.form.runAnalysisButton.isEnabled()
    assert list((tmp_path / "out").iterdir()) == []
    assert open_files_under(tmp_path / "stac") == []
