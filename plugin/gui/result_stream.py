"""A search's items reach the dock while it pages, without ever holding up QGIS's main thread.

The search task prepares each page in its own thread (`SearchPreparation`: tile names, footprint
features with their geometries and attributes; at the end the final groups and the clusters of untiled
items). The main thread (`ResultStream`) only inserts what is prepared: a page's rows in their tiles and
its footprints with one provider call, a bounded amount per turn of the event loop, so the map, the
dock and every other widget keep answering between two batches.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from qgis.core import QgsFeature
from qgis.PyQt.QtCore import QObject, QTimer

from ..stac.items import sort_by_date
from ..stac.tiles import TileGroup, group_by_tile, tile_id
from . import footprints
from .footprint_selection import FootprintSelection
from .results_model import DateTexts, ResultsModel, date_texts

#: Work done on the main thread per turn of its event loop, at most (then other events go first).
TURN_S = 0.025
#: Rows of a page inserted in one go; a bigger page is split.
BATCH = 200
#: Date rows of clusters (untiled items) inserted in one go at the end.
CLUSTER_ROWS = 400


@dataclass(frozen=True)
class PreparedPage:
    """A page's items that name their tile, their tiles and footprints; those that name none wait for the end."""

    items: list[dict]
    tiles: list[str]
    texts: list[DateTexts]
    features: list[QgsFeature]
    untiled: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedEnd:
    """The search's groups (as `group_by_tile` of all its items) and the footprints of its untiled items."""

    groups: list[TileGroup]
    features: list[QgsFeature]


class SearchPreparation:
    """What the search task does in its thread with each page (`page`) and with all the items (`last`)."""

    def __init__(self) -> None:
        self.fields = footprints.footprint_fields()
        self.untiled: set[str] = set()

    def page(self, items: list[dict]) -> PreparedPage:
        named = [(item, tile_id(item)) for item in items]
        tiled = [(item, tile) for item, tile in named if tile is not None]
        untiled = [item for item, tile in named if tile is None]
        self.untiled.update(item.get("id", "") for item in untiled)
        tiles = {item.get("id", ""): tile for item, tile in tiled}
        kept = [item for item, _ in tiled]
        return PreparedPage(kept, [tile for _, tile in tiled], [date_texts(item) for item in kept],
                            footprints.footprint_features(kept, tiles, self.fields), untiled)

    def last(self, items: list[dict]) -> PreparedEnd:
        groups = group_by_tile(items)
        clusters = {item.get("id", ""): group.tile for group in groups for item in group.items
                    if item.get("id", "") in self.untiled}
        untiled = [item for item in sort_by_date(items) if item.get("id", "") in clusters]
        return PreparedEnd(groups, footprints.footprint_features(untiled, clusters, self.fields))


class FullCollections:
    """CPython's full garbage collections held off while a search streams in, then its items frozen.

    A search brings some 30 containers per item (330,000 for 10,000 items), all long-lived and free of
    cycles. Each time the heap grew by a quarter, CPython walked all of it to find nothing: 150-600 ms
    during which every Python thread, QGIS's main thread included, stood still (the benchmark's
    stalls). Young generations are still collected meanwhile; once the items are shown they are moved
    to the permanent generation (`gc.freeze`), which later full collections skip; they are freed by
    their reference counts as before when the next search replaces them.
    """

    def __init__(self) -> None:
        self._kept: tuple[int, int, int] | None = None

    def pause(self) -> None:
        if self._kept is None:
            self._kept = gc.get_threshold()
            gc.set_threshold(self._kept[0], self._kept[1], 1 << 30)

    def resume(self, freeze: bool) -> None:
        if self._kept is not None:
            if freeze:
                gc.collect(1)  # young cycles go first: what is frozen is never collected
                gc.freeze()
            gc.set_threshold(*self._kept)
            self._kept = None


class ResultStream(QObject):
    """Puts prepared pages into the tree (``results``) and the footprints (``selection``) in turns."""

    def __init__(self, results: ResultsModel, selection: FootprintSelection, on_rows: Callable[[bool], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.results, self.selection, self._on_rows = results, selection, on_rows
        self._queue: deque[Callable[[], None]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._drain)
        self._layer_name = ""
        self._started = False
        self._collections = FullCollections()
        self.received: list[dict] = []
        """The items of the pages pushed so far."""

    def begin(self, layer_name: str) -> None:
        """A new search: what the last one left queued is dropped; its rows stay until this one's first page."""
        self.stop()
        self._layer_name, self._started = layer_name, False
        self.received = []
        self._collections.pause()

    def stop(self) -> None:
        self._queue.clear()
        self._timer.stop()
        self._collections.resume(freeze=False)

    def pending(self) -> bool:
        return bool(self._queue)

    def push_page(self, page: PreparedPage) -> None:
        self.received.extend(page.items)
        self.received.extend(page.untiled)
        for start in range(0, len(page.items), BATCH):
            part = slice(start, start + BATCH)
            self._push(lambda part=part: self._add(page.items[part], page.tiles[part], page.texts[part],
                                                            page.features[part]))
        if not page.items:
            self._push(lambda: self._add([], [], [], []))

    def push_end(self, end: PreparedEnd, then: Callable[[], None]) -> None:
        """The final groups, then the clusters' rows and footprints in turns, then ``then()``."""
        self._push(lambda: self._finish(end, 0, then))

    def push_call(self, then: Callable[[], None]) -> None:
        self._push(then)

    def _push(self, unit: Callable[[], None]) -> None:
        self._queue.append(unit)
        if not self._timer.isActive():
            self._timer.start()

    def _drain(self) -> None:
        deadline = time.perf_counter() + TURN_S
        while self._queue and time.perf_counter() < deadline:
            self._queue.popleft()()

        if self._queue:
            self._timer.start()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.results.clear_rows()
            self.selection.new_layer(self._layer_name)

    def _add(self, items: list[dict], tiles: list[str], texts: list[DateTexts], features: list[QgsFeature]) -> None:
        self._start()
        added = self.results.add_items(items, tiles, texts)
        self.selection.add(features)
        self._on_rows(added)

    def _finish(self, end: PreparedEnd, start: int, then: Callable[[], None]) -> None:
        self._start()
        rows = self.results.rowCount()
        following = self.results.finish_groups(end.groups, start, CLUSTER_ROWS)
        self._on_rows(self.results.rowCount() > rows)  # clusters added: the tree's column fits them
        if following < len(end.groups):
            self._queue.appendleft(lambda: self._finish(end, following, then))
            return
        units: list[Callable[[], None]] = [
            lambda first=first: self.selection.add(end.features[first:first + BATCH * 2])
            for first in range(0, len(end.features), BATCH * 2)]
        for unit in reversed([*units, lambda: self._collections.resume(True), then]):
            self._queue.appendleft(unit)

    def release(self, items: list[dict]) -> None:
        """Let go of a replaced search's items a thousand at a time: freeing 10,000 items (330,000
        objects) at once holds the main thread for about 100 ms."""
        held = list(items)
        for _ in range(0, len(held), 1000):
            self._push(lambda: held.__delitem__(slice(0, 1000)))
