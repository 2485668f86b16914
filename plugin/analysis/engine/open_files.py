"""The files a block thread keeps open while a load runs, so that a tile's blocks reuse them.

At most :data:`HANDLES` per thread and for one load (its token) only: memory stays bounded, and a file
rewritten between two runs is read afresh. Closed by the thread that opened them (GDAL datasets are
not thread-safe), at the end of every run (:func:`release`, registered with the block runner).
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from typing import Any

from .executor import at_run_end_in_each_thread
from .reader import file_grid, open_dataset

#: Open files kept per thread (about 0.2 MB of decoder buffers each): more than the files of one
#: block of a tile (24 dates x 5 bands), so the blocks of a tile reuse them.
HANDLES = 160


class OpenFile:
    """An open file, its grid and its bands."""

    def __init__(self, uri: str) -> None:
        self.dataset = open_dataset(uri)
        self.bands: dict[int, tuple[Any, float | None]] = {}
        try:
            self.grid = file_grid(uri, self.dataset)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close the file now (bands first), not whenever the garbage collector frees it.

        A failed read leaves references to this object in its traceback; freed later by the
        collector, in whichever thread, GDAL's closing of a broken file crashed QGIS 3.22.
        """
        self.bands.clear()
        self.dataset = None

    def band(self, number: int) -> tuple[Any, float | None]:
        """(GDAL band, its no-data value); the band keeps the dataset open, so both stay here."""
        if number not in self.bands:
            band = self.dataset.GetRasterBand(number)
            if band is None:
                raise OSError(f"Cannot read {self.dataset.GetDescription()}: it has no band {number}")
            self.bands[number] = (band, band.GetNoDataValue())
        return self.bands[number]


def _state() -> dict:
    return threading.current_thread().__dict__.setdefault("_cubescope_handles", {})


def handles(token: str) -> OrderedDict:
    """This thread's open files for the load ``token`` (those of an earlier load are closed)."""
    state = _state()
    if state.get("token") != token or "files" not in state:  # another load, or closed after a failure
        release()
        if not state and threading.current_thread() is threading.main_thread():
            atexit.register(_abandon)
        state.update(token=token, files=OrderedDict())
    return state["files"]


def release() -> None:
    """Close the files this thread keeps open (the block runner calls it in each of its threads when a
    run ends, succeeded or not)."""
    files = _state().pop("files", None) or {}
    for entry in files.values():
        entry.close()
    files.clear()


at_run_end_in_each_thread(release)


def _abandon() -> None:
    """At exit: let the process take the main thread's open files along. Closing them then would
    crash: QGIS (exitQgis) may already have shut GDAL's drivers down."""
    for entry in (_state().pop("files", None) or {}).values():
        entry.bands.clear()
        if entry.dataset is not None:
            entry.dataset.thisown = False  # no GDALClose when Python frees it
        entry.dataset = None


def opened(uri: str, token: str) -> OpenFile:
    files = handles(token)
    entry = files.get(uri)
    if entry is None:
        entry = files[uri] = OpenFile(uri)
        while len(files) > HANDLES:
            files.popitem(last=False)[1].close()
    else:
        files.move_to_end(uri)
    return entry
