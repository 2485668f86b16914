"""Threads that read remote data for the blocks: kept for the process, shared by every block.

A remote read waits for at least one round trip, so several go at once; the threads live on because
a fresh thread starts with a cold PROJ context (its CRS lookups in proj.db took a quarter of the CPU
of a remote composite). Nothing here is module-global: the state hangs on the main thread object,
because the analysis modules are pickled by value for Dask workers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

#: Paths and URLs read over the network.
_REMOTE = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "http://", "https://")


def is_remote(uri: str) -> bool:
    return any(mark in uri for mark in _REMOTE)


def reader_pool(name: str, size: int) -> ThreadPoolExecutor:
    """The pool ``name`` of ``size`` threads (its size is the one it was first asked with)."""
    state = threading.main_thread().__dict__.setdefault("_cubescope_readers", {})
    pool = state.get(name)
    if pool is None:  # setdefault is atomic: of two racing threads one pool wins (no thread starts before a submit)
        pool = state.setdefault(name, ThreadPoolExecutor(size, thread_name_prefix=f"cubescope-{name}"))
    return pool


def run_together(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], None]]) -> None:
    """Every call on ``pool``, waiting for all; the first failure stops the calls not yet started and
    is raised here."""
    stop = threading.Event()

    def guarded(call: Callable[[], None]) -> None:
        if stop.is_set():
            return
        try:
            call()
        except BaseException:
            stop.set()
            raise

    futures = [pool.submit(guarded, call) for call in calls]
    wait(futures)
    for future in futures:
        future.result()
