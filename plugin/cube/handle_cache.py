"""Open GDAL datasets kept per thread (least recently used first out), and threads that keep their files.

GDAL dataset handles are not thread-safe, so each worker thread opens its own; keeping them open
means the next click at another point reads one tile per file instead of the header and the tile
again. The caches of all threads are registered here so that `clear()` can close them when the
reader is done (after its threads have stopped: a handle is never used by two threads at once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class HandleCache(Generic[T]):
    """An LRU of `capacity` opened things per thread, keyed by path."""

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f"A handle cache needs room for at least one handle, not {capacity}")
        self.capacity = capacity
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[OrderedDict[str, T]] = []

    def _mine(self) -> OrderedDict[str, T]:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = OrderedDict()
            self._local.cache = cache
            with self._lock:
                self._all.append(cache)
        return cache

    def get(self, key: str, opener: Callable[[], T]) -> tuple[T, bool]:
        """(the handle for `key` in this thread, whether it was already open); opens it when needed."""
        cache = self._mine()
        handle = cache.get(key)
        if handle is not None:
            cache.move_to_end(key)
            return handle, True
        handle = opener()
        cache[key] = handle
        while len(cache) > self.capacity:
            cache.popitem(last=False)
        return handle, False

    def evict(self, key: str) -> None:
        """Forget this thread's handle for `key` (after a read failed: the next try opens it afresh)."""
        self._mine().pop(key, None)

    def open_count(self) -> int:
        """Handles open in all threads together."""
        with self._lock:
            return sum(len(cache) for cache in self._all)

    def clear(self) -> None:
        """Close every thread's handles; call it only when no thread uses them any more."""
        with self._lock:
            for cache in self._all:
                cache.clear()
            self._all.clear()
        self._local = threading.local()


class AffineWorkers:
    """Worker threads where the same key (a file) always goes to the same thread.

    A plain thread pool hands a file to whichever thread is free, so at the next click most files
    land in a thread that has not opened them: every file is opened again. Here each key is given a
    thread the first time it is seen (round robin, so a click over many files keeps every thread
    equally busy) and keeps it, so its open handle (and the tiles GDAL cached in it) are found again.
    """

    def __init__(self, threads: int, name: str = "cubescope-worker") -> None:
        if threads < 1:
            raise ValueError(f"At least one worker thread is needed, not {threads}")
        self._executors = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-{n}")
                           for n in range(threads)]
        self._assigned: dict[str, int] = {}
        self._next = 0
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        return len(self._executors)

    def _shard(self, key: str) -> int:
        with self._lock:
            shard = self._assigned.get(key)
            if shard is None:
                shard = self._assigned[key] = self._next
                self._next = (self._next + 1) % len(self._executors)
            return shard

    def submit(self, key: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._executors[self._shard(key)].submit(fn, *args)

    def shutdown(self) -> None:
        """Stop every thread after its running task; queued tasks are dropped."""
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        for executor in self._executors:
            executor.shutdown(wait=True)
