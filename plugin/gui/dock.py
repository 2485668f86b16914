"""The Cubescope dock: Browse, Time series and Analysis tabs."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsPointXY
from qgis.gui import QgsDockWidget, QgsMessageBar
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QSortFilterProxyModel, Qt
from qgis.PyQt.QtGui import QStandardItem, QStandardItemModel
from qgis.PyQt.QtWidgets import QVBoxLayout, QWidget

from ..demo import DemoCube, default_demo_dir
from ..log import log
from ..stac.static_catalog import CollectionSummary
from ..tasks.demo_cube_task import DemoCubeTask
from .collection_details import collection_html

_FORM, _ = uic.loadUiType(str(Path(__file__).resolve().parents[2] / "ui" / "dock.ui"))

DEMO_SOURCE = "demo"
COLLECTION_ROLE = Qt.UserRole + 1


class CubescopeDock(QgsDockWidget):
    """Holds the tabs; owns the background tasks it starts and cancels them when closed."""

    OBJECT_NAME = "CubescopeDock"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Cubescope"))
        self.setObjectName(self.OBJECT_NAME)
        container = QWidget(self)
        layout = QVBoxLayout(container)
        layout.setContentsMargins(0, 0, 0, 0)
        self.message_bar = QgsMessageBar(container)
        layout.addWidget(self.message_bar)
        self.form = _FORM()
        body = QWidget(container)
        self.form.setupUi(body)
        layout.addWidget(body)
        self.setWidget(container)

        self.demo_cube: DemoCube | None = None
        self._task: DemoCubeTask | None = None
        self._collections = QStandardItemModel(self)
        self._filtered = QSortFilterProxyModel(self)
        self._filtered.setSourceModel(self._collections)
        self._filtered.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self._filtered.setFilterKeyColumn(0)
        self.form.collectionList.setModel(self._filtered)
        self.form.collectionFilter.textChanged.connect(self._filtered.setFilterFixedString)
        self.form.collectionList.selectionModel().currentChanged.connect(self._show_collection)
        self.form.sourceProgress.hide()

        self.form.sourceCombo.addItem(
            QgsApplication.getThemeIcon("/mIconFolder.svg"), self.tr("Demo cube (offline)"), DEMO_SOURCE
        )
        self.form.sourceCombo.currentIndexChanged.connect(self._open_selected_source)

    # -- sources -------------------------------------------------------------------------------
    def open_demo_cube(self, root: Path | None = None) -> None:
        """Select the demo cube and list its collections, generating it first if needed."""
        self.form.sourceCombo.setCurrentIndex(self.form.sourceCombo.findData(DEMO_SOURCE))
        self._start_demo_task(root or default_demo_dir())

    def _open_selected_source(self) -> None:
        if self.form.sourceCombo.currentData() == DEMO_SOURCE:
            self._start_demo_task(default_demo_dir())

    def _start_demo_task(self, root: Path) -> None:
        self.cancel_tasks()
        self._collections.clear()
        self.form.sourceStatus.setText(self.tr("Preparing the demo cube…"))
        self.form.sourceStatus.setToolTip(str(root))
        self.form.sourceProgress.setValue(0)
        self.form.sourceProgress.show()
        task = DemoCubeTask(root)
        task.progressChanged.connect(self._set_progress)
        task.ready.connect(self._demo_ready)
        task.failed.connect(self._source_failed)
        self._task = task
        QgsApplication.taskManager().addTask(task)

    def _is_stale(self) -> bool:
        """A signal from a task this dock has since cancelled or replaced."""
        return self.sender() is not self._task

    def _set_progress(self, value: float) -> None:
        if not self._is_stale():
            self.form.sourceProgress.setValue(int(value))

    def _demo_ready(self, cube: DemoCube, collections: list[CollectionSummary]) -> None:
        if self._is_stale():
            return
        self._task = None
        self.demo_cube = cube
        self.form.sourceProgress.hide()
        self._set_collections(collections)
        self.form.sourceStatus.setText(self.tr("Demo cube: {n} collections, offline.").format(n=len(collections)))
        self.form.sourceStatus.setToolTip(str(cube.root))

    def _source_failed(self, message: str) -> None:
        if self._is_stale():
            return
        self._task = None
        self.form.sourceProgress.hide()
        self.form.sourceStatus.setText(message)
        log(message, "critical", bar=self.message_bar)

    def _set_collections(self, collections: list[CollectionSummary]) -> None:
        self._collections.clear()
        for collection in collections:
            item = QStandardItem(collection.title)
            item.setData(collection, COLLECTION_ROLE)
            item.setToolTip(f"{collection.id}\n\n{collection.description[:300]}")
            self._collections.appendRow(item)
        if collections:
            self.form.collectionList.setCurrentIndex(self._filtered.index(0, 0))

    def _show_collection(self, current, _previous=None) -> None:
        collection = current.data(COLLECTION_ROLE) if current.isValid() else None
        self.form.collectionDetails.setHtml(collection_html(collection) if collection else "")

    def collection_ids(self) -> list[str]:
        return [
            self._collections.item(row).data(COLLECTION_ROLE).id for row in range(self._collections.rowCount())
        ]

    # -- time series -----------------------------------------------------------------------------
    def show_picked_point(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        """The map tool's click; the plot itself comes with the time-series engine."""
        self.form.tabs.setCurrentWidget(self.form.timeSeriesTab)
        self.form.pickedPoint.setText(
            self.tr("Picked {x:.6f}, {y:.6f} ({crs})").format(x=point.x(), y=point.y(), crs=crs.authid())
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def cancel_tasks(self) -> None:
        if self._task is not None:
            try:
                self._task.cancel()
            except RuntimeError:  # the C++ task is already gone
                pass
            self._task = None
