"""WTSS and WLTS connections in the dock (pytest-qt, the real map tool, real local servers).

A WLTS connection's collections become the Time series tab's land use: a click shows the classes at
the point as a coloured band under the plot, the class names in the legend. A WTSS connection lists
its coverages with their attributes; a click plots them (masked by the coverage's scl) and, with the
land use still chosen, the band of the same point.
"""

from __future__ import annotations

import csv
import math

from demo_dock import WAIT_MS
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QPoint, Qt

from cubescope.plugin.analysis.ops.quality import rule_for_bands
from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.wtss_reader import WtssReader
from cubescope.plugin.gui.pixel_tool import PixelPickTool
from cubescope.plugin.stac.sources import Source, SourceKind

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def click_at(qtbot, canvas, lon: float, lat: float) -> None:
    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(lon, lat))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(round(pixel.x()), round(pixel.y())))


def open_service(dock, qtbot, source: Source) -> list:
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS) as blocker:
        dock.open_source(source)
    return blocker.args[0]


def test_a_wtss_click_and_a_wlts_trajectory_show_in_the_time_series_tab(dock, qtbot, qgis_canvas, truth,
                                                                         wtss_server, wlts_server, fetch, tmp_path):
    forest = truth["points"]["forest_a"]
    listed = open_service(dock, qtbot, Source("BDC land use", SourceKind.WLTS, wlts_server.url))
    assert [c.id for c in listed] == ["demo-landcover"]
    assert "ESA WorldCover" in dock.form.collectionDetails.toPlainText()

    with qtbot.waitSignal(dock.timeseries.trajectory_done, timeout=WAIT_MS) as blocker:
        dock.show_picked_point(QgsPointXY(forest["lon"], forest["lat"]), WGS84)
    trajectory = blocker.args[0]
    assert [(s.date.year, s.class_name) for s in trajectory.steps] == [(2023, "Tree cover")]
    band = dock.timeseries.plot.band
    assert band.isVisible() and band.row_count() == 1
    (start, end, name, colour), = band.spans_of(0)
    assert name == "Tree cover" and colour == "#006400" and end - start > 360 * 86400
    assert "Tree cover" in dock.timeseries.plot.legend_names()
    assert "Tree cover" in dock.form.seriesStatus.text()

    listed = open_service(dock, qtbot, Source("BDC time series", SourceKind.WTSS, wtss_server.url))
    assert [c.id for c in listed] == ["demo-s2-l2a"]
    assert "Attributes: blue, green, red, nir, swir16, scl" in dock.form.collectionDetails.toPlainText()
    combo = dock.form.seriesBandsCombo
    offered = [combo.itemText(i) for i in range(combo.count())]
    assert offered[:6] == ["blue", "green", "red", "nir", "swir16", "scl"] and "ndvi" in offered
    combo.setCheckedItems(["ndvi", "red"])

    qgis_canvas.setDestinationCrs(WGS84)
    qgis_canvas.resize(800, 600)
    qgis_canvas.setExtent(QgsRectangle(23.96, 45.49, 24.0, 45.52))
    qgis_canvas.refresh()
    tool = PixelPickTool(qgis_canvas)
    tool.picked.connect(dock.show_picked_point)
    qgis_canvas.setMapTool(tool)
    with qtbot.waitSignals([dock.timeseries.series_done, dock.timeseries.trajectory_done], timeout=WAIT_MS) as both:
        click_at(qtbot, qgis_canvas, forest["lon"], forest["lat"])
    series = next(s.args[0] for s in both.all_signals_and_args if s.signal_name.startswith("series_done"))
    assert abs(series.lon - forest["lon"]) < 1e-3 and abs(series.lat - forest["lat"]) < 1e-3
    with WtssReader(wtss_server.url, "demo-s2-l2a", fetch) as reader:
        direct = read_series(reader, series.lon, series.lat, ["ndvi", "red"], rule_for_bands(reader.band_attrs()))
    assert len(series.observations) == len(direct.observations) == 37
    for shown, expected in zip(series.observations, direct.observations):
        assert shown.datetime == expected.datetime and shown.valid == expected.valid
        assert shown.values["ndvi"] == expected.values["ndvi"] or math.isnan(expected.values["ndvi"])
    assert any(not o.valid for o in series.observations), "the coverage's scl masks cloudy dates"
    plot = dock.timeseries.plot
    assert plot.curve_count() == 2
    marked = sorted(round(y, 6) for _, y in plot.points_of((1, "ndvi")))
    assert marked == sorted(round(o.values["ndvi"], 6) for o in series.observations
                            if math.isfinite(o.values["ndvi"]))
    assert band.row_count() == 2 and band.spans_of(1)[0][2] == "Tree cover"
    assert plot.legend_names().count("Tree cover") == 1

    exported = dock.timeseries.write_csv(tmp_path / "series.csv")
    with open(exported, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    p2 = [r for r in rows if r["point_id"] == "P2"]
    assert len(p2) == 37 and {r["land_use"] for r in p2 if r["datetime"] < "2024"} == {"Tree cover"}
    assert all(r["land_use_collection"] == "demo-landcover" for r in p2 if r["datetime"] < "2024")
    p1 = [r for r in rows if r["point_id"] == "P1"]
    assert [(r["datetime"], r["land_use"], r["ndvi"]) for r in p1] == [("2023-01-01T00:00:00Z", "Tree cover", "")]

    dock.timeseries.clear()
    assert band.row_count() == 0 and not band.isVisible() and "Tree cover" not in plot.legend_names()
    QgsProject.instance().removeAllMapLayers()


def test_a_wtss_service_that_fails_says_which_url(dock, qtbot, unused_port):
    url = f"http://127.0.0.1:{unused_port}/wtss"
    with qtbot.waitSignal(dock.browse.source_failed, timeout=WAIT_MS) as blocker:
        dock.open_source(Source("down", SourceKind.WTSS, url))
    assert url in blocker.args[0] and "refused" in blocker.args[0].lower()
