"""Run inside QGIS under Xvfb (``make screenshots``): wait for the dock to list the demo catalog,
open two demo scenes so the map is not empty, and save PNGs of the window and the dock.

Screenshots go to resources/screenshots/ (kept out of the plugin ZIP); QGIS quits afterwards.
"""

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
    """A clear summer date of both tiles, false colour from the per-band COGs via a VRT."""
    from osgeo import gdal

    items = sorted((cube.root / "stac" / "demo-s2-l2a").glob("*/"))
    by_tile: dict[str, Path] = {}
    for item in items:
        if "2023-07" in item.name or "20230" in item.name:
            by_tile.setdefault(item.name.split("_")[1] if "_" in item.name else item.name, item)
    for name, item in list(by_tile.items())[:2]:
        vrt = str(OUT.parent / f".{item.name}.vrt")
        bands = [str(item / f"{b}.tif") for b in ("nir", "red", "green")]
        if all(Path(b).exists() for b in bands):
            gdal.BuildVRT(vrt, bands, separate=True)
            layer = QgsRasterLayer(vrt, f"{item.name} (nir/red/green)")
            QgsProject.instance().addMapLayer(layer)


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
