"""Make sure the offline demo cube exists (generating it the first time) and list its collections."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..demo import DemoCube, DemoCubeCanceled, ensure_demo_cube
from ..stac.static_catalog import CatalogError, CollectionSummary, read_collections
from .thread_state import keep_thread_state


class DemoCubeTask(QgsTask):
    """Generation takes tens of seconds the first time and milliseconds after: never on the GUI thread."""

    ready = pyqtSignal(object, list)  # DemoCube, list[CollectionSummary]
    failed = pyqtSignal(str)

    def __init__(self, root: Path) -> None:
        super().__init__("Cubescope: preparing the demo cube", QgsTask.Flag.CanCancel)
        self._root = root
        self._cube: DemoCube | None = None
        self._collections: list[CollectionSummary] = []
        self._error = ""

    def run(self) -> bool:
        keep_thread_state()  # before any pyproj use in this pooled QThread (thread_state.py)
        try:
            self._cube = ensure_demo_cube(self._root, progress=self._report, is_canceled=self.isCanceled)
            self._collections = read_collections(self._cube.catalog)
        except DemoCubeCanceled:
            return False
        except (OSError, CatalogError, ValueError) as error:
            self._error = f"Could not prepare the demo cube in {self._root}: {error}"
            return False
        return True

    def _report(self, fraction: float) -> None:
        self.setProgress(100.0 * fraction)

    def finished(self, result: bool) -> None:
        if result and self._cube is not None:
            self.ready.emit(self._cube, self._collections)
        elif self.isCanceled():
            self.failed.emit("Preparing the demo cube was cancelled.")
        else:
            self.failed.emit(self._error or "Preparing the demo cube failed.")
