"""The search result as a tree: tiles, and under each its dates with cloud cover and thumbnail."""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QStandardItem, QStandardItemModel

from ..stac.items import item_cloud_cover, item_when
from ..stac.tiles import TileGroup

ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
"""The STAC item dict of a date row."""
TILE_ROLE = Qt.ItemDataRole.UserRole + 2
"""The TileGroup of a tile row."""


def _cloud_text(item: dict) -> str:
    cloud = item_cloud_cover(item)
    return "" if cloud is None else f"{cloud:.0f} %"


class ResultsModel(QStandardItemModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHorizontalHeaderLabels([self.tr("Tile / date"), self.tr("Clouds")])
        self._rows_by_id: dict[str, QStandardItem] = {}

    def set_groups(self, groups: list[TileGroup]) -> None:
        self.removeRows(0, self.rowCount())
        self._rows_by_id.clear()
        for group in groups:
            tile = QStandardItem(self.tr("{tile}  ({n} dates)").format(tile=group.tile, n=len(group.items)))
            tile.setData(group, TILE_ROLE)
            tile.setToolTip(f"EPSG:{group.epsg}" if group.epsg else "")
            for item in group.items:
                # An item without a datetime shows its interval (start_datetime/end_datetime).
                when = QStandardItem(item_when(item))
                when.setData(item, ITEM_ROLE)
                when.setToolTip(f"{item.get('id', '')}\n{item_when(item, with_time=True)} UTC")
                cloud = QStandardItem(_cloud_text(item))
                cloud.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                tile.appendRow([when, cloud])
                self._rows_by_id[item.get("id", "")] = when
            self.appendRow([tile, QStandardItem("")])

    def row_for(self, item_id: str) -> QStandardItem | None:
        return self._rows_by_id.get(item_id)

    def item_ids(self) -> list[str]:
        return list(self._rows_by_id)
