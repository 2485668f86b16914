"""Run inside QGIS under Xvfb (``make screenshots``): wait for the dock to list the demo catalog,
open two demo scenes so the map is not empty, and save PNGs of the window and the dock.

Screenshots go to resources/screenshots/ (kept out of the plugin ZIP); QGIS quits afterwards.
"""

import json
import os
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QEventLoop, QTimer

OUT = Path(os.environ.get("CUBESCOPE_SCREENSHOTS", "resources/screenshots")).resolve()
iface = qgis.utils.iface


def wait_until(condition, timeout_s: float) -> bool:
    """Spin the event loop until ``condition()`` or the deadline; bounded, never a bare sleep loop."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    poll.start(100)
    if not condition():
        loop.exec_()
    poll.stop()
    return bool(condition())


def settle(ms: int) -> None:
    """Let QGIS paint (rendering is asynchronous) before grabbing."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec_()


def add_demo_scenes(cube) -> None:
    """A clear summer date of both tiles in false colour (nir/red/green COGs stacked in a VRT)."""
    from osgeo import gdal

    for item_json in sorted((cube.root / "stac" / "demo-s2-l2a").glob("*/*.json")):
        item = json.loads(item_json.read_text(encoding="utf-8"))
        if not item["properties"]["datetime"].startswith("2023-07") or item["properties"]["eo:cloud_cover"] > 0:
            continue
        bands = [str(item_json.parent / f"{band}.tif") for band in ("nir", "red", "green")]
        vrt = str(OUT.parent / f".{item['id']}.vrt")
        gdal.BuildVRT(vrt, bands, separate=True)
        QgsProject.instance().addMapLayer(QgsRasterLayer(vrt, f"{item['id']} (nir/red/green)"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    iface.mainWindow().resize(1600, 1000)
    iface.mainWindow().showMaximized()
    plugin = qgis.utils.plugins["cubescope"]
    if not wait_until(lambda: bool(plugin.dock.collection_ids()), 180):
        raise RuntimeError("the dock did not list the demo catalog within 180 s")
    add_demo_scenes(plugin.dock.demo_cube)
    iface.mapCanvas().zoomToFullExtent()
    iface.mapCanvas().refresh()
    settle(3000)
    iface.mainWindow().grab().save(str(OUT / "qgis-dock-browse.png"))
    plugin.dock.grab().save(str(OUT / "dock-browse.png"))


try:
    main()
except Exception:  # noqa: BLE001 (always quit QGIS, report what went wrong)
    (OUT / "screenshots-error.txt").write_text(traceback.format_exc(), encoding="utf-8")
finally:
    for vrt in OUT.parent.glob(".*.vrt"):
        vrt.unlink()
    QTimer.singleShot(0, iface.actionExit().trigger)
