"""Run inside QGIS under Xvfb (``make screenshots``): wait for the dock to list the demo catalog,
open two demo scenes so the map is not empty, and save PNGs of the window and the dock.

Screenshots go to resources/screenshots/ (kept out of the plugin ZIP); QGIS quits afterwards.
"""


import qgis.utils
from qgis.core import QgsProject
from qgis.PyQt.QtCore import QDateTime
from qgis_session import OUT, laid_out, run_and_quit, settle, wait_signal

iface = qgis.utils.iface


def browse_demo(dock) -> None:
    """What a user does first: pick the Sentinel-2 collection, search, open a clear date in true colour."""
    panel = dock.browse
    panel.select_collection("demo-s2-l2a")
    dock.form.startEdit.setDateTime(QDateTime.fromString("2023-03-01", "yyyy-MM-dd"))
    dock.form.endEdit.setDateTime(QDateTime.fromString("2024-07-31", "yyyy-MM-dd"))
    dock.form.cloudSpin.setValue(30)
    dock.form.searchButton.click()
    (outcome,) = wait_signal(panel.search_finished, 120)
    clear_summer = [i for i in outcome.items if i["properties"]["datetime"].startswith("2023-07")
                    and i["properties"]["eo:cloud_cover"] == 0]
    ids = {i["id"] for i in clear_summer}
    panel.footprints_layer.selectByIds(
        [f.id() for f in panel.footprints_layer.getFeatures() if f["id"] in ids])
    dock.form.trueColourButton.click()
    wait_signal(panel.layers_loaded, 120)
    settle(1500)  # thumbnails arrive in the background


def plot_two_points(dock) -> None:
    """The Time series tab with a forest pixel and a crop pixel, NDVI and red, as a user clicks them."""
    import json

    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY

    truth = json.loads((dock.demo_cube.truth / "truth.json").read_text())
    dock.browse.footprints_layer.removeSelection()
    dock.form.seriesBandsCombo.setCheckedItems(["ndvi"])
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    for name in ("clear_cut_a", "summer_crop_overlap"):
        point = truth["points"][name]
        dock.show_picked_point(QgsPointXY(point["lon"], point["lat"]), wgs84)
        wait_signal(dock.timeseries.series_done, 120)


def analysis_difference(dock) -> None:
    """The Analysis tab after an NDVI difference (summer 2024 minus summer 2023) over tile A's clear-cut."""
    from qgis.core import QgsRectangle

    from cubescope.plugin.gui.search_form import WGS84

    form = dock.form
    form.tabs.setCurrentWidget(form.analysisTab)
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("difference"))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData("median"))
    form.analysisBandsEdit.setText("ndvi")
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(23.975, 45.495, 24.005, 45.515), WGS84)
    for edit, day in ((form.startAEdit, "2023-06-01"), (form.endAEdit, "2023-09-30"),
                      (form.startBEdit, "2024-05-01"), (form.endBEdit, "2024-07-31")):
        edit.setDateTime(QDateTime.fromString(day, "yyyy-MM-dd"))
    form.runAnalysisButton.click()
    (layer,) = wait_signal(dock.analysis.finished, 180)
    iface.mapCanvas().setExtent(iface.mapCanvas().mapSettings().layerExtentToOutputExtent(layer, layer.extent()))


def analysis_true_colour(dock) -> None:
    """A median composite of summer 2023 asked in the sensor's band order (blue, green, red, nir),
    shown in true colour, over the same extent as the difference (which it replaces on the map)."""
    project = QgsProject.instance()
    project.removeMapLayers([lid for lid, lay in project.mapLayers().items() if "difference" in lay.name()])
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("composite"))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData("median"))
    form.analysisBandsEdit.setText("blue,green,red,nir")
    form.startAEdit.setDateTime(QDateTime.fromString("2023-06-01", "yyyy-MM-dd"))
    form.endAEdit.setDateTime(QDateTime.fromString("2023-08-31", "yyyy-MM-dd"))
    form.runAnalysisButton.click()
    (layer,) = wait_signal(dock.analysis.finished, 180)
    iface.mapCanvas().setExtent(iface.mapCanvas().mapSettings().layerExtentToOutputExtent(layer, layer.extent()))


def analysis_cube_form(dock) -> None:
    """The same tab set up for a regular 16-day cube (the options a cube adds)."""
    form = dock.form
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("buildcube"))
    form.analysisBandsEdit.setText("red,nir,ndvi")
    form.extraBandsCheck.setChecked(True)
    form.cyclicCheck.setChecked(True)


def analysis_zarr_std(dock) -> None:
    """The demo's Zarr cube opened as a source and its per-pixel NDVI standard deviation, one run."""
    from qgis.core import QgsRectangle

    from cubescope.plugin.demo.cache import default_demo_dir, describe
    from cubescope.plugin.gui.search_form import WGS84
    from cubescope.plugin.stac.sources import Source, SourceKind

    QgsProject.instance().removeAllMapLayers()
    zarr = describe(default_demo_dir()).zarr
    dock.open_source(Source(name="Demo Zarr cube (34TGR)", kind=SourceKind.ZARR, url=str(zarr)))
    wait_signal(dock.browse.collections_listed, 120)
    dock.browse.select_collection(zarr.name)
    form = dock.form
    form.tabs.setCurrentWidget(form.analysisTab)
    form.operationCombo.setCurrentIndex(form.operationCombo.findData("statistics"))
    form.methodCombo.setCurrentIndex(form.methodCombo.findData("std"))
    form.analysisBandsEdit.setText("ndvi")
    form.analysisExtentBox.setOutputExtentFromUser(QgsRectangle(), WGS84)
    form.startAEdit.setDateTime(QDateTime.fromString("2023-03-01", "yyyy-MM-dd"))
    form.endAEdit.setDateTime(QDateTime.fromString("2024-07-31", "yyyy-MM-dd"))
    form.estimateButton.click()
    wait_signal(dock.analysis.estimated, 120)
    form.runAnalysisButton.click()
    (layer,) = wait_signal(dock.analysis.finished, 180)
    iface.mapCanvas().setExtent(iface.mapCanvas().mapSettings().layerExtentToOutputExtent(layer, layer.extent()))


def main() -> None:
    _window, plugin = laid_out(520)
    browse_demo(plugin.dock)
    iface.mapCanvas().zoomToFullExtent()
    iface.mapCanvas().refresh()
    settle(3000)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-browse.png"))
    plugin.dock.grab().save(str(OUT / "dock-browse.png"))
    plot_two_points(plugin.dock)
    iface.mapCanvas().refresh()
    settle(1500)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-timeseries.png"))
    plugin.dock.grab().save(str(OUT / "dock-timeseries.png"))
    analysis_difference(plugin.dock)
    iface.mapCanvas().refresh()
    settle(2000)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-analysis.png"))
    plugin.dock.grab().save(str(OUT / "dock-analysis.png"))
    analysis_true_colour(plugin.dock)
    iface.mapCanvas().refresh()
    settle(2000)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-analysis-composite.png"))
    analysis_cube_form(plugin.dock)
    settle(500)
    plugin.dock.grab().save(str(OUT / "dock-analysis-cube.png"))
    analysis_zarr_std(plugin.dock)
    iface.mapCanvas().refresh()
    settle(2000)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-analysis-zarr.png"))


run_and_quit(main, "screenshots-error.txt")
