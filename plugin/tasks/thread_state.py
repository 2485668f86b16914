"""Keep a QThread's Python thread state for the thread's whole life, so pyproj does not crash QGIS.

Why: QGIS runs each QgsTask (and each Processing algorithm started from the toolbox) on a pooled
QThread that Python did not create. For every ``run()`` SIP makes a temporary Python thread state
and deletes it when ``run()`` returns. pyproj 3.7 keeps its PROJ context in two places: in the OS
thread's storage and in a ``threading.local`` of the Python thread state. Deleting the temporary
state frees the context but (before pyproj's fix, pyproj#1541) leaves the OS thread's pointer to
it; the next task on the same pooled thread that touches a CRS, ours or odc-geo's, uses freed memory
and QGIS segfaults (pyproj#1509; Debian 13's QGIS 3.40 with pyproj 3.7.1).

Taking one more reference on the thread state (``PyGILState_Ensure`` without a matching release)
keeps it, and the context with it, until the OS thread ends, as for a thread Python started. The
work stays in the QThread, where Qt's timers (QGIS's network timeouts) keep working.
"""

from __future__ import annotations

import ctypes
import threading

_kept = threading.local()


def in_foreign_thread() -> bool:
    """True in a thread that Python did not start (a QThread): there ``threading`` only knows a dummy."""
    return isinstance(threading.current_thread(), threading._DummyThread)


def keep_thread_state() -> None:
    """Make this thread's Python thread state last as long as the thread; once per thread, cheap after.

    Python's own threads (QGIS's main thread, qgis_process, pool workers) keep theirs already."""
    if getattr(_kept, "done", False) or not in_foreign_thread():
        return
    # pythonapi calls keep the GIL: with a thread state already current this only counts one more
    # user of it, so SIP's release at the end of run() no longer deletes it.
    ctypes.pythonapi.PyGILState_Ensure.restype = ctypes.c_int
    ctypes.pythonapi.PyGILState_Ensure()
    # Set after the state became permanent: the flag lives in that state's threading.local.
    _kept.done = True
