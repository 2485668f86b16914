"""pyproj in QGIS's pooled task threads, task after task (pyproj#1509: on Debian 13's QGIS 3.40 the
second task on a thread that touched a CRS segfaulted QGIS, so this file crashing is the failure)."""

from __future__ import annotations

import threading

import pytest
from qgis.core import QgsApplication

from cubescope.plugin.tasks.call_task import CallTask
from cubescope.plugin.tasks.thread_state import in_foreign_thread, keep_thread_state

#: Lives in the Python thread state: it keeps its values across tasks only while the state is kept.
_per_thread = threading.local()


def utm_of_a_point(task, number: int) -> dict:
    """What odc-geo does for every read plan: CRS objects and a transform, in the task's thread."""
    from pyproj import CRS, Transformer

    transformer = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(32634), always_xy=True)
    x, y = transformer.transform(23.0, 45.0)
    seen_before = getattr(_per_thread, "tasks", [])
    _per_thread.tasks = [*seen_before, number]
    return {"xy": (x, y), "thread": threading.get_ident(), "foreign": in_foreign_thread(),
            "earlier_on_this_thread": seen_before}


def run_in_task_manager(qtbot, function, *args):
    task = CallTask("pyproj in a task", function, *args)
    outcomes: list = []
    task.succeeded.connect(outcomes.append)
    task.failed.connect(outcomes.append)
    QgsApplication.taskManager().addTask(task)
    qtbot.waitUntil(lambda: bool(outcomes), timeout=60_000)
    return outcomes[0]


def test_pyproj_task_after_task_on_the_pooled_threads(qtbot):
    results = [run_in_task_manager(qtbot, utm_of_a_point, number) for number in range(8)]
    assert all(isinstance(r, dict) for r in results), results
    # Zone 34N's central meridian is 21°E: 23°E, 45°N lies about 158 km east of it.
    for result in results:
        assert result["xy"] == pytest.approx((657_630.6, 4_984_896.2), abs=0.5)
        assert result["foreign"] is True, "tasks run on QThreads"
    # One after another, the pool hands the same threads out again; each kept its Python state
    # (and with it pyproj's context) from the earlier tasks it ran.
    threads = [r["thread"] for r in results]
    reused = [r for i, r in enumerate(results) if threads[i] in threads[:i]]
    assert reused, "the pool reused no thread: nothing was checked"
    for result in reused:
        assert result["earlier_on_this_thread"], result


def test_keeping_the_state_is_a_no_op_in_python_threads():
    assert in_foreign_thread() is False
    keep_thread_state()
    worker = threading.Thread(target=keep_thread_state)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
