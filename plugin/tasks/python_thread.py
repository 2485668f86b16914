"""Run work in a thread that Python created, from a QgsTask's or a Processing algorithm's QThread.

Why: pyproj 3.7 keeps its PROJ context in Python's thread-specific storage, which it reaches without
a Python thread state in threads that Qt created; there, the first CRS or transform (ours, or
odc-geo's inside odc-stac) crashes QGIS with a segfault (pyproj#1509; Debian 13's QGIS 3.40 with
pyproj 3.7.1). A thread started by `threading` has that state from its birth, so every library,
not only our own code, is safe in it. The calling QThread just waits; cancel and progress still
flow through the task or the feedback, which are safe to use from any thread.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def in_foreign_thread() -> bool:
    """True in a thread that Python did not start (a QThread): there ``threading`` only knows a dummy."""
    return isinstance(threading.current_thread(), threading._DummyThread)


def call_in_python_thread(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, in a new Python thread when called from a foreign one; its result
    returned, its exception re-raised here. Python's own threads (QGIS's main thread, qgis_process,
    a pool worker) call it directly: they are safe already, and the main thread must never wait."""
    if not in_foreign_thread():
        return function(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 (re-raised in the caller's thread below)
            outcome["error"] = error

    worker = threading.Thread(target=target, name="cubescope-work", daemon=True)
    worker.start()
    # No timeout: the work itself watches the task's cancel flag and ends; the QThread has
    # nothing else to do meanwhile.
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
