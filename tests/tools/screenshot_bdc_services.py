"""Run inside QGIS under Xvfb (``make screenshots`` runs it after screenshots.py): the Time series tab
with a WTSS series and the WLTS land-use band, from the local WTSS and WLTS servers on the demo cube.

Saves resources/screenshots/qgis-dock-wtss-wlts.png (the window; the README shows it) and
dock-wtss-wlts.png (the dock alone); QGIS quits afterwards.
"""

import json
import os
import sys
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QEventLoop, Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget

OUT = Path(os.environ.get("CUBESCOPE_SCREENSHOTS", "resources/screenshots")).resolve()
TESTS = Path("tests").resolve()  # run from the repository's root, as `make screenshots` does (no __file__ here)
iface = qgis.utils.iface


def settle(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition, timeout_s: float) -> bool:
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    poll.start(100)
    if not condition():
        loop.exec()
    poll.stop()
    return bool(condition())


def wait_signal(signal, timeout_s: float):
    received = []
    loop = QEventLoop()
    signal.connect(lambda *args: (received.append(args), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    if not received:
        raise RuntimeError(f"no signal within {timeout_s} s")
    return received[0]


def main() -> None:
    sys.path.insert(0, str(TESTS))
    from servers.bdc_services import start_wlts, start_wtss

    from cubescope.plugin.stac.sources import Source, SourceKind

    OUT.mkdir(parents=True, exist_ok=True)
    window = iface.mainWindow()
    window.resize(1600, 1000)
    window.showMaximized()
    settle(500)
    left = [dock for dock in window.findChildren(QDockWidget)
            if dock.isVisible() and window.dockWidgetArea(dock) == Qt.DockWidgetArea.LeftDockWidgetArea]
    window.resizeDocks(left, [260] * len(left), Qt.Orientation.Horizontal)
    plugin = qgis.utils.plugins["cubescope"]
    window.resizeDocks([plugin.dock], [560], Qt.Orientation.Horizontal)
    dock = plugin.dock
    if not wait_until(lambda: bool(dock.collection_ids()), 180):
        raise RuntimeError("the dock did not list the demo catalog within 180 s")
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


try:
    main()
except Exception:  # noqa: BLE001 (always quit QGIS, report what went wrong)
    (OUT / "screenshots-bdc-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
finally:
    QgsApplication.taskManager().cancelAll()
    QgsProject.instance().setDirty(False)
    os._exit(0)
