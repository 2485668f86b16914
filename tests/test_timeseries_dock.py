"""A click on the map plots the pixel's time series in the dock (pytest-qt, the real map tool)."""

from __future__ import annotations

import math

from broken_cogs import FOREST, catalog_with_broken_reds
from demo_dock import WAIT_MS, search
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt

from cubescope.plugin.gui.pixel_tool import PixelPickTool
from cubescope.plugin.stac.sources import Source, SourceKind

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def click_at(qtbot, canvas, lon: float, lat: float) -> None:
    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(lon, lat))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(round(pixel.x()), round(pixel.y())))


def test_a_click_plots_the_pixel_through_time(dock, qtbot, qgis_canvas, truth):
    search(dock, qtbot)
    qgis_canvas.setDestinationCrs(WGS84)
    qgis_canvas.resize(800, 600)
    qgis_canvas.setExtent(QgsRectangle(23.97, 45.48, 24.03, 45.52))
    qgis_canvas.refresh()
    tool = PixelPickTool(qgis_canvas)
    tool.picked.connect(dock.show_picked_point)
    qgis_canvas.setMapTool(tool)
    dock.form.seriesBandsCombo.setCheckedItems(["ndvi", "red"])

    forest = truth["points"]["forest_overlap"]
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        click_at(qtbot, qgis_canvas, forest["lon"], forest["lat"])
    series = blocker.args[0]
    assert abs(series.lon - forest["lon"]) < 1e-3 and abs(series.lat - forest["lat"]) < 1e-3
    assert len(series.observations) == 37, "one observation per date although two tiles cover the point"
    plot = dock.timeseries.plot
    assert plot.curve_count() == 2
    marked = plot.points_of((0, "ndvi"))
    expected = [o.values["ndvi"] for o in series.observations if math.isfinite(o.values["ndvi"])]
    assert sorted(round(y, 6) for _, y in marked) == sorted(round(v, 6) for v in expected)
    clear = [o.values["ndvi"] for o in series.observations if o.valid]
    assert clear and min(clear) > 0.6, "a forest pixel's clear NDVI"
    assert any(not o.valid for o in series.observations), "cloudy dates are flagged"
    assert len(dock.timeseries.markers) == 1

    dock.form.hideMaskedCheck.setChecked(True)
    assert len(plot.points_of((0, "ndvi"))) == len(clear)

    cut = truth["points"]["clear_cut_a"]
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        click_at(qtbot, qgis_canvas, cut["lon"], cut["lat"])
    second = blocker.args[0]
    assert plot.curve_count() == 4 and len(dock.timeseries.markers) == 2
    before = [o.values["ndvi"] for o in second.observations if o.valid and o.datetime.isoformat() < "2023-10-12"]
    after = [o.values["ndvi"] for o in second.observations if o.valid and o.datetime.isoformat() > "2023-10-12"]
    assert min(before) > 0.6 > max(after), "the clear-cut shows at its date"

    dock.timeseries.clear()
    assert plot.curve_count() == 0 and dock.timeseries.markers == []
    QgsProject.instance().removeAllMapLayers()


def test_a_click_outside_every_footprint_says_so(dock, qtbot, qgis_canvas):
    search(dock, qtbot)
    dock.form.seriesBandsCombo.setCheckedItems(["red"])
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(QgsPointXY(10.0, 50.0), WGS84)
    series = blocker.args[0]
    assert series.outside and series.observations == []
    assert "outside" in dock.form.seriesStatus.text().lower()


def test_a_user_quality_rule_replaces_the_metadata_one(dock, qtbot, truth):
    search(dock, qtbot)
    dock.form.seriesBandsCombo.setCheckedItems(["red"])
    forest = truth["points"]["forest_a"]
    point = QgsPointXY(forest["lon"], forest["lat"])
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(point, WGS84)
    by_metadata = blocker.args[0]
    assert any(not o.valid for o in by_metadata.observations)
    dock.form.qualityEdit.setText("scl: 0,1,2,3,4,5,6,7,8,9,10,11")  # every class counts as clear
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(point, WGS84)
    assert all(o.valid for o in blocker.args[0].observations if o.has_data)
    dock.form.qualityEdit.setText("none")  # the same, as in the Analysis tab
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(point, WGS84)
    unmasked = blocker.args[0].observations
    assert len(unmasked) == len(by_metadata.observations) and all(o.valid for o in unmasked if o.has_data)
    dock.form.qualityEdit.setText("scl: four")
    with qtbot.waitSignal(dock.timeseries.series_failed, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(point, WGS84)
    assert blocker.args[0].startswith("Mask:")
    dock.form.qualityEdit.setText("")


def test_clicking_an_observation_opens_that_date_in_true_colour(dock, qtbot, truth):
    search(dock, qtbot)
    dock.form.seriesBandsCombo.setCheckedItems(["ndvi"])
    point = truth["points"]["grassland_overlap"]
    with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(QgsPointXY(point["lon"], point["lat"]), WGS84)
    observation = next(o for o in blocker.args[0].observations if o.valid)
    spot = next(s for s in dock.timeseries.plot._curves[(0, "ndvi")].marks.points()
                if s.data()[0].item_id == observation.item_id)
    with qtbot.waitSignal(dock.browse.layers_loaded, timeout=WAIT_MS) as loaded:
        dock.timeseries.plot._clicked(None, [spot])
    (layer,) = loaded.args[0]
    assert layer.customProperty("cubescope/item") == observation.item_id
    assert layer.customProperty("cubescope/assets") == "red,green,blue"
    QgsProject.instance().removeAllMapLayers()


def test_a_click_with_unreadable_files_says_how_many_were_left_out(dock, qtbot, demo_cube, tmp_path):
    """A missing COG, a PNG named red.tif and a truncated COG: the bar says how many inputs were left
    out, the log lists each by URL and cause, the status line counts them."""
    catalog, causes = catalog_with_broken_reds(demo_cube, tmp_path / "broken")
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_source(Source("broken", SourceKind.STATIC, str(catalog)))
    search(dock, qtbot)
    dock.form.seriesBandsCombo.setCheckedItems(["red"])
    logged: list[str] = []
    def record(message, tag, level) -> None:
        logged.append(message)

    QgsApplication.messageLog().messageReceived.connect(record)
    try:
        with qtbot.waitSignal(dock.timeseries.series_done, timeout=WAIT_MS) as blocker:
            dock.show_picked_point(QgsPointXY(*FOREST), WGS84)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(record)
    series = blocker.args[0]
    assert len(series.skipped) == 3 and series.observations
    assert "3 inputs could not be read and were left out" in dock.form.seriesStatus.text()
    bar_texts = [item.text() for item in dock.message_bar.items()]
    assert any("3 inputs could not be read and were left out" in text for text in bar_texts), bar_texts
    listing = next(m for m in logged if "3 inputs could not be read" in m)
    for url, cause in causes.items():
        assert f"{url}: {cause}" in listing, (url, listing)
