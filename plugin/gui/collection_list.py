"""The source's collections as the Browse tab lists them: sorted by title, filtered by the typed text,
each row holding its CollectionSummary."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import QObject, QSortFilterProxyModel, Qt
from qgis.PyQt.QtGui import QStandardItem, QStandardItemModel

from ..stac.static_catalog import CollectionSummary

COLLECTION_ROLE = Qt.ItemDataRole.UserRole + 1
"""The CollectionSummary of a row."""


class CollectionList:
    """The models behind the list ``view``: ``model`` holds a row per collection, ``filtered`` what shows."""

    def __init__(self, view: Any, filter_edit: Any, parent: QObject) -> None:
        self.view = view
        self.model = QStandardItemModel(parent)
        self.filtered = QSortFilterProxyModel(parent)
        self.filtered.setSourceModel(self.model)
        self.filtered.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filtered.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filtered.sort(0)
        view.setModel(self.filtered)
        filter_edit.textChanged.connect(self.filtered.setFilterFixedString)

    def append(self, collection: CollectionSummary) -> None:
        row = QStandardItem(collection.title)
        row.setData(collection, COLLECTION_ROLE)
        row.setToolTip(f"{collection.id}\n\n{collection.description[:300]}")
        self.model.appendRow(row)

    def ids(self) -> list[str]:
        """In the order the list shows them (by title)."""
        return [self.filtered.index(r, 0).data(COLLECTION_ROLE).id for r in range(self.filtered.rowCount())]

    def select(self, collection_id: str) -> bool:
        """Make ``collection_id`` the current row; False when the list does not show it."""
        for row in range(self.filtered.rowCount()):
            index = self.filtered.index(row, 0)
            if index.data(COLLECTION_ROLE).id == collection_id:
                self.view.setCurrentIndex(index)
                return True
        return False

    def select_first(self) -> None:
        self.view.setCurrentIndex(self.filtered.index(0, 0))

    def current(self) -> CollectionSummary | None:
        index = self.view.currentIndex()
        return index.data(COLLECTION_ROLE) if index.isValid() else None
