"""The search result as a tree: tiles, and under each its dates with cloud cover and thumbnail.

Filled at once (`set_groups`) or while a search pages (`add_items`, then `finish_groups`): rows go in
where they belong (tiles in natural order, dates oldest first), a page's rows of a tile in one turn,
so the tree grows page by page and never is rebuilt.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QStandardItem, QStandardItemModel

from ..stac.items import date_sort_key, item_cloud_cover, item_epsg, item_when
from ..stac.tiles import TileGroup, natural_key

ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
"""The STAC item of a date row, held as is (`item_of` gives the dict): a dict itself would be copied into
a QVariantMap, key by key, and back into a new dict on each read, which cost most of a page's insert."""
TILE_ROLE = Qt.ItemDataRole.UserRole + 2
"""The TileGroup of a tile row."""


def _cloud_text(item: dict) -> str:
    cloud = item_cloud_cover(item)
    return "" if cloud is None else f"{cloud:.0f} %"


class _Held:
    """A Python object Qt keeps as a reference, whatever it holds."""

    __slots__ = ("item",)

    def __init__(self, item: dict) -> None:
        self.item = item


def item_of(index) -> dict | None:
    """The STAC item of a date row (a QModelIndex or a QStandardItem); None on a tile row."""
    held = index.data(ITEM_ROLE)
    return held.item if isinstance(held, _Held) else None


DateTexts = tuple[tuple, str, str, str]
"""A date row's sort key, text, tooltip and cloud cover text."""


def date_texts(item: dict) -> DateTexts:
    """What a date row shows of ``item``; pure, so a task's thread can make it."""
    # An item without a datetime shows its interval (start_datetime/end_datetime).
    return (date_sort_key(item), item_when(item), f"{item.get('id', '')}\n{item_when(item, with_time=True)} UTC",
            _cloud_text(item))


class ResultsModel(QStandardItemModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHorizontalHeaderLabels([self.tr("Tile / date"), self.tr("Clouds")])
        self._rows_by_id: dict[str, QStandardItem] = {}
        # while a search streams in: per tile name, its row and its items' sort keys (oldest first)
        self._tiles: dict[str, QStandardItem] = {}
        self._tile_keys: list[list[object]] = []
        self._dates: dict[str, tuple[list[tuple], list[dict]]] = {}

    def clear_rows(self) -> None:
        self.removeRows(0, self.rowCount())
        self._rows_by_id.clear()
        self._tiles.clear()
        self._tile_keys.clear()
        self._dates.clear()

    def set_groups(self, groups: list[TileGroup]) -> None:
        self.clear_rows()
        for group in groups:
            tile = self._tile_row(group)
            for item in group.items:
                tile.appendRow(self._date_row(item))
            self.appendRow([tile, QStandardItem("")])

    def _tile_row(self, group: TileGroup) -> QStandardItem:
        tile = QStandardItem(self._tile_text(group.tile, len(group.items)))
        tile.setData(group, TILE_ROLE)
        tile.setToolTip(f"EPSG:{group.epsg}" if group.epsg else "")
        return tile

    def _tile_text(self, tile: str, n: int) -> str:
        return self.tr("{tile}  ({n} dates)").format(tile=tile, n=n)

    def _date_row(self, item: dict, texts: DateTexts | None = None) -> list[QStandardItem]:
        _key, text, tooltip, cloud_text = texts or date_texts(item)
        when = QStandardItem(text)
        when.setData(_Held(item), ITEM_ROLE)
        when.setToolTip(tooltip)
        cloud = QStandardItem(cloud_text)
        cloud.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._rows_by_id[item.get("id", "")] = when
        return [when, cloud]

    # -- streaming ------------------------------------------------------------------------------------
    def add_items(self, items: list[dict], tiles: list[str], texts: list[DateTexts] | None = None) -> bool:
        """A page's items under their tiles (``tiles[i]`` names ``items[i]``'s, ``texts[i]`` is its
        `date_texts`); True when a tile row was added. Each tile's TileGroup holds its items so far,
        until `finish_groups` sets the last."""
        by_tile: dict[str, list[tuple[DateTexts, dict]]] = {}
        for item, tile, shown in zip(items, tiles, texts or [date_texts(item) for item in items]):
            by_tile.setdefault(tile, []).append((shown, item))
        added = False
        for name, members in by_tile.items():
            members.sort(key=lambda member: member[0][0])
            tile = self._tiles.get(name)
            if tile is None:  # made whole, then inserted at its place: one insert for the tile and its dates
                added = True
                tile = self._tiles[name] = self._tile_row(TileGroup(name, (), None, None))
                for shown, item in members:
                    tile.appendRow(self._date_row(item, shown))
                self._dates[name] = ([shown[0] for shown, _ in members], [item for _, item in members])
                key = natural_key(name)
                row = bisect_right(self._tile_keys, key)
                self._tile_keys.insert(row, key)
                self.insertRow(row, [tile, QStandardItem("")])
            else:
                keys, dated = self._dates[name]
                for shown, item in members:
                    row = bisect_right(keys, shown[0])
                    keys.insert(row, shown[0])
                    dated.insert(row, item)
                    tile.insertRow(row, self._date_row(item, shown))
            self._update_tile(tile, self._dates[name][1], [item for _, item in members])
        return added

    def _update_tile(self, tile: QStandardItem, items: list[dict], members: list[dict]) -> None:
        group: TileGroup = tile.data(TILE_ROLE)
        epsgs = {item_epsg(i) for i in members} | ({group.epsg} if group.items else set())
        group = replace(group, items=tuple(items), epsg=next(iter(epsgs)) if len(epsgs) == 1 else None)
        self._set_quietly(tile, group)
        tile.setText(self._tile_text(group.tile, len(items)))

    def _set_quietly(self, tile: QStandardItem, group: TileGroup) -> None:
        """A tile row's group and tooltip, which nothing draws, set without telling the views: a
        QTreeView looks each changed row up among all the rows it shows (10,000 dates), about 1 ms a change."""
        blocked = self.blockSignals(True)
        try:
            tile.setData(group, TILE_ROLE)
            tile.setToolTip(f"EPSG:{group.epsg}" if group.epsg else "")
        finally:
            self.blockSignals(blocked)

    def finish_groups(self, groups: list[TileGroup], start: int = 0, rows: int = 0) -> int:
        """The search's final groups: streamed tiles get theirs (bbox and all), groups not streamed (the
        clusters of untiled items) are added with their dates. At most ``rows`` date rows are added
        (0: all), from ``groups[start:]``; returns where to go on (len(groups) when done)."""
        added = 0
        for number in range(start, len(groups)):
            group = groups[number]
            tile = self._tiles.get(group.tile)
            if tile is not None:
                self._set_quietly(tile, group)
                continue
            if rows and added and added + len(group.items) > rows:
                return number
            tile = self._tile_row(group)
            for item in group.items:
                tile.appendRow(self._date_row(item))
            self.appendRow([tile, QStandardItem("")])
            added += len(group.items)
        return len(groups)

    def row_for(self, item_id: str) -> QStandardItem | None:
        return self._rows_by_id.get(item_id)

    def item_ids(self) -> list[str]:
        return list(self._rows_by_id)
