"""The Browse tab driven as a user would (pytest-qt): connect, list, search, pick a tile, load, play."""

from __future__ import annotations

import json

import pytest
from conftest import settle_tasks
from demo_dock import S2, WAIT_MS, search
from osgeo import osr
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsDateTimeRange,
    QgsInterval,
    QgsProject,
    QgsTemporalNavigationObject,
)
from qgis.PyQt.QtCore import Qt, QThreadPool

from cubescope.plugin.stac.sources import Source, SourceKind


def demo_items(demo_cube, collection=S2) -> list[dict]:
    folder = demo_cube.collections[collection].parent
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]


def test_dock_lists_the_demo_collections_with_safe_details(dock):
    assert dock.collection_ids() == ["demo-dem", "demo-landcover", "demo-s1-rtc", "demo-s2-l2a"]
    dock.browse.select_collection(S2)
    html = dock.form.collectionDetails.toHtml()
    assert "Sentinel-2" in html and "CC-BY-4.0" in html
    assert dock.form.assetCombo.findData("red") >= 0 and dock.form.assetCombo.findData("scl") >= 0


def test_search_groups_items_by_tile_and_fills_the_footprints_layer(dock, qtbot, demo_cube):
    outcome = search(dock, qtbot)
    expected = {item["id"] for item in demo_items(demo_cube)}
    assert {item["id"] for item in outcome.items} == expected and outcome.error == ""
    model = dock.browse.results
    tiles = {model.item(row, 0).data(Qt.ItemDataRole.UserRole + 2).tile: model.item(row, 0).rowCount()
             for row in range(model.rowCount())}
    assert tiles == {"34TGR": 37, "35TKL": 37}
    layer = dock.browse.footprints_layer
    assert layer.featureCount() == len(expected)
    assert [f.name() for f in layer.fields()] == ["id", "collection", "datetime", "cloud_cover", "tile", "end_datetime"]
    assert layer.temporalProperties().isActive()


def test_cloud_filter_applies_to_a_static_catalog(dock, qtbot, demo_cube):
    outcome = search(dock, qtbot, cloud=10)
    expected = {i["id"] for i in demo_items(demo_cube) if i["properties"]["eo:cloud_cover"] <= 10}
    assert {item["id"] for item in outcome.items} == expected
    assert 0 < len(expected) < 74


def test_selection_is_linked_both_ways(dock, qtbot):
    search(dock, qtbot)
    panel = dock.browse
    panel.select_tile("35TKL")
    selected = panel.footprints_layer.selectedFeatures()
    assert len(selected) == 37 and {f["tile"] for f in selected} == {"35TKL"}
    first = next(panel.footprints_layer.getFeatures())
    panel.footprints_layer.selectByIds([first.id()])
    assert [item["id"] for item in panel.selected_items()] == [first["id"]]


def test_time_stack_loads_and_plays_on_the_temporal_controller(dock, qtbot):
    search(dock, qtbot)
    dock.browse.select_tile("34TGR")
    dock.form.assetCombo.setCurrentIndex(dock.form.assetCombo.findData("nir"))
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.stackButton, Qt.MouseButton.LeftButton)
    layers = blocker.args[0]
    assert len(layers) == 37 and all(layer.isValid() for layer in layers)
    assert {layer.customProperty("cubescope/tile") for layer in layers} == {"34TGR"}
    ranges = [layer.temporalProperties().fixedTemporalRange() for layer in layers]
    assert all(a.end() == b.begin() for a, b in zip(ranges, ranges[1:])), "a stack's ranges follow each other"

    navigation = QgsTemporalNavigationObject()
    navigation.setTemporalExtents(QgsDateTimeRange(ranges[0].begin(), ranges[-1].end()))
    navigation.setFrameDuration(QgsInterval(1, Qgis.TemporalUnit.Days))
    shown = []
    for frame in (0, 120, navigation.totalFrameCount() - 1):
        navigation.setCurrentFrameNumber(frame)
        frame_range = navigation.dateTimeRangeForFrameNumber(frame)
        visible = [layer.name() for layer in layers if layer.temporalProperties().isVisibleInTemporalRange(frame_range)]
        assert len(visible) == 1, (frame, visible)
        shown.append(visible[0])
    assert shown[0].startswith("2023-03-05") and shown[-1].startswith("2024-07-22") and len(set(shown)) == 3


def _osr(definition: str) -> osr.SpatialReference:
    reference = osr.SpatialReference()
    reference.SetFromUserInput(definition)
    reference.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return reference


def test_loaded_layers_outlive_the_task_threads(dock, qtbot):
    """QGIS 3.22: a layer made in a task's thread loses its CRS's PROJ object when the pool retires
    that thread; a transform of it then fails and leaves the GUI thread's PROJ logger dangling, and
    the next PROJ error there crashed QGIS (seen late in the full test run). Layers are made on the
    GUI thread now: after the pool's threads are gone, they still transform and QGIS survives."""
    search(dock, qtbot)
    dock.browse.select_tile("34TGR")
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.stackButton, Qt.MouseButton.LeftButton)
    layers = blocker.args[0]
    settle_tasks(qtbot)
    assert QThreadPool.globalInstance().waitForDone(WAIT_MS), "the pool's threads did not retire"
    # To a CRS no transform used yet (QGIS caches transforms): this one needs the layer CRS's PROJ object.
    laea = QgsCoordinateReferenceSystem("EPSG:3035")
    expected = osr.CoordinateTransformation(_osr("EPSG:32634"), _osr("EPSG:3035"))
    for layer in (layers[0], layers[-1]):
        centre = layer.extent().center()
        moved = QgsCoordinateTransform(layer.crs(), laea, QgsProject.instance()).transform(centre)
        x, y, _ = expected.TransformPoint(centre.x(), centre.y())
        assert abs(moved.x() - x) < 1 and abs(moved.y() - y) < 1, (layer.crs().authid(), moved, (x, y))
    # A PROJ error logged on the GUI thread: with a dangling logger this was the segfault.
    assert not QgsCoordinateReferenceSystem.fromProj("+proj=no_such_projection").isValid()


def test_true_colour_composite_of_one_date(dock, qtbot):
    search(dock, qtbot)
    panel = dock.browse
    tile_row = panel.results.index(0, 0)
    date_index = panel.results.index(10, 0, tile_row)
    dock.form.resultsTree.selectionModel().select(date_index, dock.form.resultsTree.selectionModel().Rows |
                                                  dock.form.resultsTree.selectionModel().ClearAndSelect)
    with qtbot.waitSignal(panel.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.trueColourButton, Qt.MouseButton.LeftButton)
    (layer,) = blocker.args[0]
    assert layer.bandCount() == 3 and layer.renderer().type() == "multibandcolor"
    red = layer.renderer().redContrastEnhancement()
    assert 1000 <= red.minimumValue() < red.maximumValue() <= 11000
    assert layer.customProperty("cubescope/assets") == "red,green,blue"
    group = QgsProject.instance().layerTreeRoot().findGroup(layer.customProperty("cubescope/tile"))
    assert group is not None and group.findLayer(layer.id()) is not None


def test_stac_api_source_lists_and_searches(dock, qtbot, stac_api_full, demo_cube):
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="pgstac", kind=SourceKind.STAC_API, url=stac_api_full.url))
    assert dock.collection_ids() == ["demo-dem", "demo-landcover", "demo-s1-rtc", "demo-s2-l2a"]
    outcome = search(dock, qtbot, cloud=10)
    expected = {i["id"] for i in demo_items(demo_cube) if i["properties"]["eo:cloud_cover"] <= 10}
    assert {item["id"] for item in outcome.items} == expected


def test_zarr_cube_time_steps_load_as_a_stack(dock, qtbot, demo_cube):
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source(name="zarr", kind=SourceKind.ZARR, url=str(demo_cube.zarr)))
    assert dock.browse.zarr_description is not None
    assert len(dock.browse.zarr_description.times) == 37
    dock.form.assetCombo.clear()
    dock.form.assetCombo.addItem("red", "red")
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.stackButton, Qt.MouseButton.LeftButton)
    layers = blocker.args[0]
    assert len(layers) == 37 and layers[0].crs().authid() == "EPSG:32634"


def test_unreachable_server_is_reported_with_its_url(dock, qtbot, unused_port):
    url = f"http://127.0.0.1:{unused_port}/stac"
    with qtbot.waitSignal(dock.browse.source_failed, timeout=WAIT_MS) as blocker:
        dock.open_source(Source(name="dead", kind=SourceKind.STAC_API, url=url))
    assert url in blocker.args[0]
    assert url in dock.form.sourceStatus.text()


def test_dates_get_their_thumbnails(dock, qtbot):
    search(dock, qtbot)
    panel = dock.browse
    first_id = panel.results.item_ids()[0]
    qtbot.waitUntil(lambda: not panel.results.row_for(first_id).icon().isNull(), timeout=WAIT_MS)
    assert panel.results.row_for(first_id).icon().availableSizes()


def select_first_date(dock) -> None:
    panel = dock.browse
    date_index = panel.results.index(0, 0, panel.results.index(0, 0))
    selection = dock.form.resultsTree.selectionModel()
    selection.select(date_index, selection.Rows | selection.ClearAndSelect)


def test_sentinel1_backscatter_loads_in_decibels(dock, qtbot, demo_cube):
    search(dock, qtbot, collection="demo-s1-rtc")
    select_first_date(dock)
    dock.form.assetCombo.setCurrentIndex(dock.form.assetCombo.findData("vv"))
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.loadAssetButton, Qt.MouseButton.LeftButton)
    (layer,) = blocker.args[0]
    centre = layer.extent().center()
    value, ok = layer.dataProvider().sample(centre, 1)
    item = next(i for i in demo_items(demo_cube, "demo-s1-rtc") if i["id"] == layer.customProperty("cubescope/item"))
    from osgeo import gdal

    linear = gdal.Open(str(demo_cube.collections["demo-s1-rtc"].parent / item["id"] / "vv.tif"))
    gt = linear.GetGeoTransform()
    col, row = int((centre.x() - gt[0]) / gt[1]), int((centre.y() - gt[3]) / gt[5])
    expected = 10 * __import__("math").log10(float(linear.ReadAsArray(col, row, 1, 1)[0, 0]))
    assert ok and value == pytest.approx(expected, abs=1e-4) and value < 0


def test_a_saved_project_reopens_with_layers_and_provenance(dock, qtbot, tmp_path):
    search(dock, qtbot)
    select_first_date(dock)
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dock.form.falseColourButton, Qt.MouseButton.LeftButton)
    (layer,) = blocker.args[0]
    provenance = {k: layer.customProperty(f"cubescope/{k}") for k in ("source", "collection", "item", "assets")}
    project = QgsProject.instance()
    path = tmp_path / "project.qgz"
    assert project.write(str(path))
    project.clear()
    assert project.read(str(path))
    (reopened,) = [lyr for lyr in project.mapLayers().values() if lyr.customProperty("cubescope/item")]
    assert reopened.isValid() and reopened.bandCount() == 3
    assert {k: reopened.customProperty(f"cubescope/{k}") for k in provenance} == provenance
    assert provenance["assets"] == "nir,red,green" and provenance["collection"] == "demo-s2-l2a"


def test_a_land_cover_map_is_drawn_with_its_own_colours(dock, qtbot):
    """A class map with a colour table (the demo's land cover) keeps its palette: classes in their colours,
    not a grey stretch of class numbers."""
    search(dock, qtbot, collection="demo-landcover")
    panel = dock.browse
    tile_row = panel.results.index(0, 0)
    dock.form.resultsTree.selectionModel().select(panel.results.index(0, 0, tile_row),
                                                  dock.form.resultsTree.selectionModel().Rows |
                                                  dock.form.resultsTree.selectionModel().ClearAndSelect)
    with qtbot.waitSignal(panel.layers_loaded, timeout=WAIT_MS) as blocker:
        panel.load_selected(["data"])
    (layer,) = blocker.args[0]
    assert layer.renderer().type() == "paletted"
    classes = layer.renderer().classes()
    assert len(classes) >= 5 and len({c.color.name() for c in classes}) == len(classes)
