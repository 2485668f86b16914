"""The Analysis tab's cube products: a regular cube, a minicube and training chips, run as tasks.

Each product is run from the widgets and compared with the same product built by the pure functions
from a request written out here, so a widget read into the wrong field shows up as a difference.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import xarray
from demo_dock import WAIT_MS
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsRectangle, QgsVectorLayer
from qgis.PyQt.QtCore import QDateTime

from cubescope.plugin import settings
from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import search_items
from cubescope.plugin.gui.search_form import WGS84
from cubescope.plugin.products.chips import build as chips
from cubescope.plugin.products.cubes.builder import build_cube, build_from_items
from cubescope.plugin.products.cubes.model import CubeRequest
from cubescope.plugin.products.minicubes import build as minicube
from cubescope.plugin.stac.sources import Source, SourceKind

EXTENT = (23.985, 45.503, 23.998, 45.512)  # inside tile A: the clear-cut and the forest around it
SUMMER = (datetime(2023, 6, 1, tzinfo=timezone.utc), datetime(2023, 8, 31, 23, 59, 59, 999999, tzinfo=timezone.utc))


def choose(dock, product: str, method: str, bands: str, output, fmt: str) -> None:
    form = dock.form
    dock.browse.select_collection("demo-s2-l2a")
    form.operationCombo.setCurrentIndex(form.operationCombo.findData(product))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData(method))
    form.formatCombo.setCurrentIndex(form.formatCombo.findData(fmt))
    form.analysisBandsEdit.setText(bands)
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(*EXTENT), WGS84)
    form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    form.outputFile.setFilePath(str(output))


def run(dock, qtbot):
    with qtbot.waitSignal(dock.analysis.product_finished, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    return blocker.args[1]


def test_only_the_chosen_products_widgets_show(dock):
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("composite"))
    assert form.productBox.isHidden() and not form.extraBandsCheck.isHidden()
    form.extraBandsCheck.setChecked(True)
    for operation in ("statistics", "difference", "chips"):  # no extra bands there: not shown ticked
        form.operationCombo.setCurrentIndex(form.operationCombo.findData(operation))
        assert form.extraBandsCheck.isHidden(), operation
        assert not form.analysisMaskEdit.isHidden(), operation
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("minicube"))
    assert form.analysisMaskEdit.isHidden(), "a minicube keeps every date with its quality band"
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("composite"))
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("chips"))
    assert not form.productBox.isHidden() and not form.chipSizeSpin.isHidden()
    assert form.periodLengthEdit.isHidden() and form.extraSourcesEdit.isHidden()
    assert [form.methodCombo.itemData(i) for i in range(form.methodCombo.count())] == ["composite", "dates"]
    assert not form.estimateButton.isEnabled()
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("buildcube"))
    assert not form.cyclicCheck.isHidden() and form.chipSizeSpin.isHidden() and form.estimateButton.isEnabled()
    assert [form.formatCombo.itemData(i) for i in range(form.formatCombo.count())] == ["zarr", "cog-stac"]


def test_a_regular_cube_from_the_tab_equals_the_builders_and_joins_the_connections(
        dock, qtbot, tmp_path, demo_cube):
    choose(dock, "buildcube", "median", "red,ndvi", tmp_path / "tab.zarr", "zarr")
    dock.form.periodLengthEdit.setText("P1M")
    dock.form.resolutionSpin.setValue(20.0)
    path = run(dock, qtbot)
    reference = CubeRequest(AnalysisRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite", bands=("red", "ndvi"),
        periods=(Period(*SUMMER),), output=str(tmp_path / "reference.zarr"), method="median", extent=EXTENT,
        resolution=20.0), step="P1M")
    expected = xarray.open_zarr(build_cube(reference))
    built = xarray.open_zarr(path)
    assert built.sizes["time"] == 3 and list(built["time"].dt.month.values) == [6, 7, 8]
    for name in expected.data_vars:
        np.testing.assert_array_equal(built[name].values, expected[name].values)
    assert set(built.data_vars) == set(expected.data_vars) and {"red", "NDVI"} <= set(built.data_vars)
    added = [s for s in settings.user_sources() if s.name == "Cube: tab.zarr"]
    assert added and added[0].kind == SourceKind.ZARR and added[0].url == str(tmp_path / "tab.zarr")
    assert dock.form.sourceCombo.findText("Cube: tab.zarr") >= 0
    assert "Cube: tab.zarr" in dock.form.analysisStatus.text()
    settings.remove_source("Cube: tab.zarr")


def test_a_minicube_from_the_tab_equals_the_builders(dock, qtbot, tmp_path, demo_cube):
    choose(dock, "minicube", "max", "red,nir", tmp_path / "tab-minicube.zarr", "zarr")
    dock.form.periodLengthEdit.setText("P1M")
    dock.form.resolutionSpin.setValue(20.0)
    path = run(dock, qtbot)
    reference = minicube.MinicubeRequest(
        sources=(minicube.SourceSpec(str(demo_cube.catalog), "demo-s2-l2a", ("red", "nir"), "max"),),
        start=SUMMER[0], end=SUMMER[1], output=str(tmp_path / "reference.zarr"), extent=EXTENT, resolution=20.0,
        cadence="P1M", format=minicube.ZARR)
    expected = xarray.open_zarr(minicube.run(reference))
    built = xarray.open_zarr(path)
    assert set(built.data_vars) >= {"red", "nir"} and built.sizes["time"] == 3
    for name in ("red", "nir"):
        np.testing.assert_array_equal(built[name].values, expected[name].values)
        assert built[name].attrs["aggregation"] == "max"
    assert str(path) in dock.form.analysisStatus.text()


def _points_layer() -> QgsVectorLayer:
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=name:string", "centres", "memory")
    features = []
    for name, lon, lat in (("clear-cut", 23.9905, 45.5075), ("forest", 23.9935, 45.5095)):
        feature = QgsFeature(layer.fields())
        feature.setAttributes([name])
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def _labels_layer() -> QgsVectorLayer:
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:integer", "labels", "memory")
    feature = QgsFeature(layer.fields())
    feature.setAttributes([7])
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(23.985, 45.503, 23.998, 45.512)))
    layer.dataProvider().addFeatures([feature])
    return layer


def test_chips_at_a_layers_points_with_labels(dock, qtbot, tmp_path, demo_cube):
    points, labels = _points_layer(), _labels_layer()
    QgsProject.instance().addMapLayers([points, labels])
    choose(dock, "chips", "composite", "blue,green,red,nir", tmp_path / "tab-chips.zarr", "zarr")
    form = dock.form
    form.pointsLayerCombo.setLayer(points)
    form.labelLayerCombo.setLayer(labels)
    form.labelFieldCombo.setField("class")
    form.chipSizeSpin.setValue(32)
    form.maxMaskedSpin.setValue(100)
    result = run(dock, qtbot)
    ids = [f.id() for f in points.getFeatures()]
    reference = chips.run(chips.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=("blue", "green", "red", "nir"),
        start=SUMMER[0], end=SUMMER[1], output=str(tmp_path / "reference.zarr"),
        points=tuple((str(fid), lon, lat) for fid, (lon, lat) in zip(ids, ((23.9905, 45.5075), (23.9935, 45.5095)))),
        chip_size=32, max_masked=1.0,
        label_polygons=(({"type": "Polygon", "coordinates": [[[23.985, 45.503], [23.998, 45.503], [23.998, 45.512],
                                                             [23.985, 45.512], [23.985, 45.503]]]}, 7.0),)))
    assert result.samples == reference.samples == 2
    built, expected = xarray.open_zarr(result.output), xarray.open_zarr(reference.output)
    assert built["image"].shape == (2, 4, 32, 32)
    np.testing.assert_array_equal(built["image"].values, expected["image"].values)
    np.testing.assert_array_equal(built["label"].values, expected["label"].values)
    assert set(np.unique(built["label"].values)) == {7}, "both chips lie inside the label polygon"
    rows = chips.read_manifest(result.manifest)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in chips.read_manifest(reference.manifest))
    assert "Wrote 2 samples" in form.analysisStatus.text()


def _open_zarr_cube(dock, qtbot, demo_cube) -> None:
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="zarr", kind=SourceKind.ZARR, url=str(demo_cube.zarr)))
    dock.browse.select_collection(demo_cube.zarr.name)


def test_a_regular_cube_of_a_zarr_cube_equals_the_one_of_its_tiles_cogs(dock, qtbot, tmp_path, demo_cube):
    """The demo's Zarr cube holds the pixels of tile 34TGR's COGs: built from the tab on the Zarr cube,
    the regular cube equals the one the builder makes from that tile's STAC items."""
    _open_zarr_cube(dock, qtbot, demo_cube)
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("buildcube"))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData("median"))
    form.formatCombo.setCurrentIndex(form.formatCombo.findData("zarr"))
    form.analysisBandsEdit.setText("red,ndvi")
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(*EXTENT), WGS84)
    form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    form.periodLengthEdit.setText("P1M")
    form.outputFile.setFilePath(str(tmp_path / "of-zarr.zarr"))
    built = xarray.open_zarr(run(dock, qtbot))

    cogs = CubeRequest(AnalysisRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", operation="composite", bands=("red", "ndvi"),
        periods=(Period(*SUMMER),), output=str(tmp_path / "of-cogs.zarr"), method="median", extent=EXTENT),
        step="P1M")
    tile = [item for item in search_items(cogs.request, cogs.request.periods[0]) if "_T34TGR" in item["id"]]
    expected = xarray.open_zarr(build_from_items(cogs, tile))
    assert built.sizes == expected.sizes and built.sizes["time"] == 3
    assert set(built.data_vars) == set(expected.data_vars) >= {"red", "NDVI"}
    for name in ("red", "NDVI"):
        values = built[name].values
        assert np.isfinite(values).mean() > 0.9, name
        np.testing.assert_array_equal(values, expected[name].values)
    settings.remove_source("Cube: of-zarr.zarr")


def test_a_minicube_of_a_zarr_cube_is_refused_with_where_to_add_it(dock, qtbot, demo_cube, tmp_path):
    _open_zarr_cube(dock, qtbot, demo_cube)
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("minicube"))
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(*EXTENT), WGS84)
    form.outputFile.setFilePath(str(tmp_path / "refused.zarr"))
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        form.runAnalysisButton.click()
    assert "this source is a Zarr cube" in blocker.args[0] and "More sources" in blocker.args[0]
    assert not (tmp_path / "refused.zarr").exists() and form.runAnalysisButton.isEnabled()


def test_a_minicube_without_an_extent_is_refused_before_any_task(dock, qtbot, tmp_path):
    choose(dock, "minicube", "mean", "red", tmp_path / "none.zarr", "zarr")
    dock.form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(), WGS84)
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
    assert "Choose an extent for the minicube" in blocker.args[0]
    assert not (tmp_path / "none.zarr").exists() and dock.form.runAnalysisButton.isEnabled()


def test_cancelling_a_cube_build_reports_it_and_frees_the_tab(dock, qtbot, tmp_path):
    choose(dock, "buildcube", "median", "red", tmp_path / "cancelled.zarr", "zarr")
    with qtbot.waitSignal(dock.analysis.failed, timeout=WAIT_MS) as blocker:
        dock.form.runAnalysisButton.click()
        assert dock.form.cancelAnalysisButton.isEnabled() and not dock.form.runAnalysisButton.isEnabled()
        dock.form.cancelAnalysisButton.click()
    assert blocker.args[0].startswith("Cancelled")
    assert dock.form.runAnalysisButton.isEnabled() and not dock.form.cancelAnalysisButton.isEnabled()
    assert not [s for s in settings.user_sources() if s.name == "Cube: cancelled.zarr"]
