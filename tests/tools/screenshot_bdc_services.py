"""Run inside QGIS under Xvfb (``make screenshots`` runs it after screenshots.py): the Time series tab
with a WTSS series and the WLTS land-use band, from the local WTSS and WLTS servers on the demo cube.

Saves resources/screenshots/qgis-dock-wtss-wlts.png (the window; the README shows it) and
dock-wtss-wlts.png (the dock alone); QGIS quits afterwards.
"""

import json

import qgis.utils
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle
from qgis_session import OUT, laid_out, run_and_quit, settle, wait_signal, wait_until
from servers.bdc_services import start_wlts, start_wtss

from cubescope.plugin.stac.sources import Source, SourceKind

iface = qgis.utils.iface


def main() -> None:
    window, plugin = laid_out(560)
    dock = plugin.dock
    stac = dock.demo_cube.root / "stac"
    truth = json.loads((dock.demo_cube.truth / "truth.json").read_text())
    wtss, wlts = start_wtss(stac), start_wlts(stac)
    try:
        # The land-cover map on the map canvas, so the clicked points have their context.
        dock.browse.select_collection("demo-landcover")
        dock.form.searchButton.click()
        (outcome,) = wait_signal(dock.browse.search_finished, 120)
        dock.browse.load_items(outcome.items, ["data"])
        wait_signal(dock.browse.layers_loaded, 120)
        dock.open_source(Source("BDC land use (WLTS, local)", SourceKind.WLTS, wlts.url))
        wait_signal(dock.browse.collections_listed, 60)
        dock.open_source(Source("BDC time series (WTSS, local)", SourceKind.WTSS, wtss.url))
        wait_signal(dock.browse.collections_listed, 60)
        dock.form.seriesBandsCombo.setCheckedItems(["ndvi"])
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        canvas = iface.mapCanvas()
        canvas.setDestinationCrs(wgs84)
        canvas.setExtent(QgsRectangle(23.968, 45.487, 24.03, 45.514))
        for name in ("forest_a", "grassland_b"):
            point = truth["points"][name]
            dock.show_picked_point(QgsPointXY(point["lon"], point["lat"]), wgs84)
            wait_signal(dock.timeseries.series_done, 120)
            wait_until(lambda n=name: len(dock.timeseries.trajectories) >= (1 if n == "forest_a" else 2), 60)
        canvas.refresh()
        settle(2500)
        window.grab().save(str(OUT / "qgis-dock-wtss-wlts.png"))
        dock.grab().save(str(OUT / "dock-wtss-wlts.png"))
    finally:
        wtss.stop()
        wlts.stop()


run_and_quit(main, "screenshots-bdc-error.txt")
