"""Work in QgsTask threads runs where PROJ-using libraries are safe (pyproj#1509 crashed QGIS 3.40 on
Debian 13: a pyproj transform in a QThread is a segfault there, so this file crashing is the failure)."""

from __future__ import annotations

import threading

import pytest
from qgis.core import QgsApplication

from cubescope.plugin.tasks.call_task import CallTask
from cubescope.plugin.tasks.python_thread import call_in_python_thread, in_foreign_thread


def utm_of_a_point(task) -> dict:
    """What odc-geo does for every read plan: CRS objects and a transform, in the task's thread."""
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(32634), always_xy=True)
    x, y = transformer.transform(23.0, 45.0)
    return {"xy": (round(x, 1), round(y, 1)), "thread": threading.current_thread().name,
            "foreign": in_foreign_thread()}


def run_in_task_manager(qtbot, function) -> CallTask:
    task = CallTask("pyproj in a task", function)
    outcomes: list = []
    task.succeeded.connect(outcomes.append)
    task.failed.connect(outcomes.append)
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=60_000)
    return outcomes[0]


def test_pyproj_in_a_qgis_task_runs_in_a_python_thread(qtbot):
    result = run_in_task_manager(qtbot, utm_of_a_point)
    assert isinstance(result, dict), result
    # Zone 34N's central meridian is 21°E: 23°E, 45°N lies about 157 km east of it.
    assert result["xy"] == pytest.approx((657_630.6, 4_984_896.2), abs=1.0)
    assert result["thread"] == "cubescope-work"
    assert result["foreign"] is False


def test_an_error_in_the_python_thread_reaches_the_task(qtbot):
    def fail(task):
        raise ValueError("no such band: B99")

    assert run_in_task_manager(qtbot, fail) == "no such band: B99"


def test_python_threads_call_directly():
    """The main thread (and qgis_process) never waits on another thread."""
    assert in_foreign_thread() is False
    assert call_in_python_thread(lambda: threading.current_thread()) is threading.current_thread()
