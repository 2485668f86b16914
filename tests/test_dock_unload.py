"""Unloading or reloading the plugin while the dock's tasks run: the plugin's ``unload`` cancels them and
deletes the dock at once, and their late reports (progress, "Cancelled", a result) must touch none of
its deleted widgets. pytest-qt fails a test on any exception raised in a Qt slot, which is what QGIS
shows users as a Python error; and a cancelled task logs no traceback as if it had crashed."""

from __future__ import annotations

import sys
import threading

import pytest
from demo_dock import S2, WAIT_MS, search
from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsPointXY, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, QEvent, Qt, QThreadPool

from cubescope.plugin.gui.dock import CubescopeDock

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def start_analysis(dock, qtbot, tmp_path) -> None:
    dock.browse.select_collection(S2)
    dock.form.analysisBandsEdit.setText("red,nir,NDVI")  # the whole collection: seconds of work
    dock.form.outputFile.setFilePath(str(tmp_path / "composite.tif"))
    dock.form.runAnalysisButton.click()


def start_search(dock, qtbot, tmp_path) -> None:
    dock.browse.select_collection(S2)
    qtbot.mouseClick(dock.form.searchButton, Qt.MouseButton.LeftButton)


def start_series(dock, qtbot, tmp_path) -> None:
    search(dock, qtbot)
    dock.form.seriesBandsCombo.setCheckedItems(["ndvi", "red"])
    dock.timeseries.pick(QgsPointXY(24.0, 45.5), WGS84)


@pytest.mark.parametrize("start", [start_analysis, start_search, start_series], ids=lambda f: f.__name__)
def test_unloading_while_a_task_runs_raises_nothing_and_leaves_no_file(qgis_app, qgis_canvas, qtbot, tmp_path,
                                                                       demo_cube, start):
    dock = CubescopeDock(None, qgis_canvas)
    dock.browse.workdir = tmp_path / "vrt"
    dock.show()
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_demo_cube(demo_cube.root)
    logged: list[str] = []
    record = lambda message, tag, level: logged.append(message)  # noqa: E731
    QgsApplication.messageLog().messageReceived.connect(record)
    try:
        unload_mid_task(dock, qtbot, tmp_path, start)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(record)
    assert not (tmp_path / "composite.tif").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "vrt"] == []
    assert [m for m in logged if "Traceback" in m] == [], "a cancel is no bug: no traceback in the log"


def threads_reading() -> list[str]:
    """Cubescope's worker threads that are inside a pixel read right now."""
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        while thread.name.startswith("cubescope-") and frame is not None:
            if frame.f_code.co_name == "_read_task":
                busy.append(thread.name)
                break
            frame = frame.f_back
    return busy


def unload_mid_task(dock, qtbot, tmp_path, start) -> None:
    manager = QgsApplication.taskManager()
    start(dock, qtbot, tmp_path)
    running = [task.description() for task in manager.activeTasks()]
    assert running, "the task is still running when the plugin unloads"

    dock.cancel_tasks()  # what CubescopePlugin.unload does, in its order
    dock.setParent(None)
    dock.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qtbot.waitUntil(lambda: manager.countActiveTasks() == 0, timeout=WAIT_MS)
    # A read still running once its task has ended would run on under QGIS quitting (a crash in GDAL).
    assert threads_reading() == []
    QCoreApplication.processEvents()  # the tasks' queued reports arrive here


class _Blocker(QgsTask):
    """Holds one of the task manager's threads until released (bounded), so that the next task waits."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__("blocker", QgsTask.Flag(0))
        self.release, self.started = release, threading.Event()

    def run(self) -> bool:
        self.started.set()
        return self.release.wait(WAIT_MS / 1000)


def start_series_only(dock, qtbot, tmp_path) -> None:
    dock.form.seriesBandsCombo.setCheckedItems(["ndvi"])
    dock.timeseries.pick(QgsPointXY(24.0, 45.5), WGS84)


@pytest.mark.parametrize("start", [start_analysis, start_series_only], ids=lambda f: f.__name__)
def test_unloading_while_a_task_still_waits_for_a_thread_reports_nothing(qgis_app, qgis_canvas, qtbot, tmp_path,
                                                                        demo_cube, start):
    """Every thread busy, the dock's task waits in the queue when the plugin unloads: QGIS reports such
    a task's cancel at once, from within cancel(), which must find it already forgotten (before: a
    "Cancelled" warning in the log on every reload)."""
    dock = CubescopeDock(None, qgis_canvas)
    dock.browse.workdir = tmp_path / "vrt"
    dock.show()
    with qtbot.waitSignal(dock.browse.collections_listed, timeout=WAIT_MS):
        dock.open_demo_cube(demo_cube.root)
    search(dock, qtbot)
    manager = QgsApplication.taskManager()
    # Tasks an earlier test left finishing (a cancelled demo cube on a busy machine) would hold a thread.
    qtbot.waitUntil(lambda: manager.countActiveTasks() == 0, timeout=2 * WAIT_MS)
    qgis_canvas.waitWhileRendering()  # map renders run on the same global thread pool
    release = threading.Event()
    blockers = [_Blocker(release) for _ in range(QThreadPool.globalInstance().maxThreadCount())]
    logged: list[str] = []
    record = lambda message, tag, level: tag == "Cubescope" and logged.append(message)  # noqa: E731
    QgsApplication.messageLog().messageReceived.connect(record)
    try:
        for blocker in blockers:
            manager.addTask(blocker)
        qtbot.waitUntil(lambda: all(b.started.is_set() for b in blockers), timeout=WAIT_MS)
        start(dock, qtbot, tmp_path)
        waiting = [t.status() for t in manager.activeTasks() if t.description().startswith("Cubescope")]
        assert waiting == [QgsTask.TaskStatus.Queued], "the dock's task waits for a thread"
        dock.cancel_tasks()
    finally:
        release.set()
        QgsApplication.messageLog().messageReceived.disconnect(record)
    qtbot.waitUntil(lambda: manager.countActiveTasks() == 0, timeout=WAIT_MS)
    QCoreApplication.processEvents()
    assert logged == []
    dock.setParent(None)
    dock.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
