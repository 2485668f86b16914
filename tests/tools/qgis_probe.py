"""Run inside the real QGIS desktop (``qgis --code tests/tools/qgis_probe.py``) with a real iface.

Records what Cubescope added to QGIS after start-up, two analyses run and loaded by the Processing
toolbox's runner, what it added after a reload (started while a composite runs,
as a user reloading the plugin mid-run) and after an unload, the log messages those produced, and
whether the dock listed the demo catalog; writes it all as JSON to $CUBESCOPE_PROBE_REPORT and quits
QGIS. The tests read the JSON; this script asserts nothing itself.
"""

import json
import os
import sys
import traceback

import qgis.utils
from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QEventLoop, QTimer
from qgis.PyQt.QtGui import QAction
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar

REPORT = os.environ["CUBESCOPE_PROBE_REPORT"]
WAIT_DEMO_S = float(os.environ.get("CUBESCOPE_PROBE_WAIT_S", "120"))
COMPOSITE = os.path.join(os.path.dirname(REPORT), "reload-composite.tif")
iface = qgis.utils.iface
report: dict = {"log": []}


def on_message(message: str, tag: str, level) -> None:
    if level != Qgis.MessageLevel.Info:  # warnings, errors and the rest (>= would need an IntEnum on Qt6)
        report["log"].append({"tag": tag, "level": int(level), "message": message})


def state() -> dict:
    window = iface.mainWindow()
    provider = QgsApplication.processingRegistry().providerById("cubescope")
    plugin = qgis.utils.plugins.get("cubescope")
    return {
        "active": "cubescope" in qgis.utils.active_plugins,
        "docks": len([d for d in window.findChildren(QDockWidget) if d.objectName() == "CubescopeDock"]),
        "toolbars": len([t for t in window.findChildren(QToolBar) if t.objectName() == "CubescopeToolbar"]),
        "actions": sorted(
            a.objectName() for a in window.findChildren(QAction) if a.objectName().startswith("Cubescope")
        ),
        "menu_actions": sorted(
            a.text() for m in iface.pluginMenu().actions() if m.text() == "&Cubescope" and m.menu()
            for a in m.menu().actions()
        ),
        "map_tool": bool(plugin and plugin.pixel_tool is not None),
        "provider": provider is not None,
        "algorithms": sorted(a.id() for a in provider.algorithms()) if provider else [],
        "missing_packages": [r.name for r in plugin.notice.missing] if plugin and plugin.notice else [],
    }


def wait_until(done) -> None:
    """Let QGIS run until ``done()`` is true, at most WAIT_DEMO_S seconds."""
    loop = QEventLoop()
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    poll = QTimer()
    poll.timeout.connect(lambda: done() and loop.quit())
    deadline.start(int(WAIT_DEMO_S * 1000))
    poll.start(50)
    if not done():
        loop.exec()
    poll.stop()


def wait_for_demo_collections() -> list:
    """The dock lists the demo catalog once its background task is done; wait for that, bounded."""
    plugin = qgis.utils.plugins["cubescope"]
    wait_until(plugin.dock.collection_ids)
    return plugin.dock.collection_ids()


def wait_for_tasks() -> int:
    """Wait (bounded) until QGIS has no task running, letting their reports arrive; the count left."""
    manager = QgsApplication.taskManager()
    wait_until(lambda: manager.countActiveTasks() == 0)
    QgsApplication.processEvents()
    return manager.countActiveTasks()


def start_composite(plugin) -> list:
    """A median composite of the whole demo Sentinel-2 collection (seconds of work); the tasks running."""
    dock = plugin.dock
    dock.browse.select_collection("demo-s2-l2a")
    dock.form.analysisBandsEdit.setText("red,nir,NDVI")
    dock.form.outputFile.setFilePath(COMPOSITE)
    dock.form.runAnalysisButton.click()
    return [task.description() for task in QgsApplication.taskManager().activeTasks()]


def toolbox_run(plugin, algorithm: str, parameters: dict) -> dict:
    """``algorithm`` on the demo catalog from the Processing toolbox's own runner, its result loaded
    into the project: the layer's name and style as a user sees them, or the error Processing raised."""
    import processing
    from qgis.core import QgsProject

    parameters = {"SOURCE": str(plugin.dock.demo_cube.catalog), "COLLECTION": "demo-s2-l2a", "METHOD": 0,
                  "EXTENT": "732320,734880,5041600,5044160 [EPSG:32634]", **parameters}
    try:
        results = processing.runAndLoadResults(f"cubescope:{algorithm}", parameters)
    except Exception as error:  # noqa: BLE001 (recorded for the tests)
        return {"error": str(error)}
    [layer] = [lay for lay in QgsProject.instance().mapLayers().values()
               if results["OUTPUT"] in (lay.id(), lay.source())]
    renderer = layer.renderer()
    temporal = layer.temporalProperties()
    span = temporal.fixedTemporalRange()
    found = {"name": layer.name(), "renderer": renderer.type(),
             "time": [t.toUTC().toString("yyyy-MM-dd hh:mm:ss") for t in (span.begin(), span.end())]
             if temporal.isActive() else None}
    if renderer.type() == "singlebandpseudocolor":
        found.update(low=renderer.classificationMin(), high=renderer.classificationMax())
    elif renderer.type() == "multibandcolor":
        found["rgb"] = [renderer.redBand(), renderer.greenBand(), renderer.blueBand()]
    QgsProject.instance().removeMapLayer(layer)
    return found


def toolbox_runs(plugin) -> dict:
    """An NDVI difference to a temporary file and a true-colour composite to a named one."""
    return {
        "difference": toolbox_run(plugin, "difference", {
            "BANDS": "NDVI", "START_A": "2023-05-01", "END_A": "2023-09-30", "START_B": "2024-05-01",
            "END_B": "2024-07-31", "OUTPUT": "TEMPORARY_OUTPUT"}),
        "composite": toolbox_run(plugin, "composite", {
            "BANDS": "blue,green,red", "START": "2023-06-01", "END": "2023-08-31",
            "OUTPUT": os.path.join(os.path.dirname(REPORT), "natural.tif")}),
    }


def probe() -> None:
    QgsApplication.messageLog().messageReceived.connect(on_message)
    module = sys.modules.get("cubescope")
    report["plugin_path"] = os.path.dirname(module.__file__) if module else None
    report["after_start"] = state()
    report["demo_collections"] = wait_for_demo_collections() if report["after_start"]["active"] else []
    plugin = qgis.utils.plugins.get("cubescope")
    report["demo_status"] = plugin.dock.form.sourceStatus.text() if plugin else ""
    report["demo_root"] = plugin.dock.demo_cube and str(plugin.dock.demo_cube.root)
    report["toolbox"] = toolbox_runs(plugin) if plugin else {}
    report["running_at_reload"] = start_composite(plugin) if plugin else []
    qgis.utils.reloadPlugin("cubescope")
    report["after_reload"] = state()
    report["after_reload_collections"] = wait_for_demo_collections()
    qgis.utils.unloadPlugin("cubescope")
    QgsApplication.processEvents()
    report["after_unload"] = state()
    report["tasks_left"] = wait_for_tasks()
    report["composite_written"] = os.path.exists(COMPOSITE)


def finish() -> None:
    with open(REPORT, "w", encoding="utf-8") as stream:
        json.dump(report, stream, indent=2)
    iface.actionExit().trigger()


try:
    probe()
except Exception:  # noqa: BLE001 (the report must be written whatever happened)
    report["exception"] = traceback.format_exc()
finally:
    QTimer.singleShot(0, finish)
