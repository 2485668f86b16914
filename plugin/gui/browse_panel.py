"""The Browse tab: connections, collections, search, the tile/date tree, footprints and layer loading.

Every network or GDAL call runs in a CallTask; this class only copies inputs from widgets, starts
tasks and shows what they report. Tasks it replaced are ignored when they report late (`current_tasks`);
the collections list is `collection_list`, the search's inputs `search_form`, the tree and the footprints
selecting together `footprint_selection`.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QPixmap
from qgis.PyQt.QtWidgets import QHeaderView

from ..cube.layer_plan import FALSE_COLOUR, TRUE_COLOUR
from ..demo import DemoCube, default_demo_dir
from ..log import log
from ..stac.bands import list_bands
from ..stac.catalog_client import PagingLimits, SearchQuery
from ..stac.items import sort_by_date
from ..stac.paging import PAGE_LIMIT, TIME_LIMIT, PagingStop
from ..stac.sources import Source, SourceKind
from ..stac.static_catalog import CollectionSummary
from ..stac.tiles import group_by_tile
from ..tasks.call_task import CallTask
from ..tasks.demo_cube_task import DemoCubeTask
from ..tasks.source_tasks import SearchOutcome, fetch_thumbnails, list_collections, run_search
from .collection_details import collection_html
from .collection_list import COLLECTION_ROLE, CollectionList
from .current_tasks import CurrentTasks
from .footprint_selection import FootprintSelection
from .layer_loader import (
    add_layers,
    check_item_layers,
    check_zarr_layers,
    make_layers_in_turns,
    play_on_controller,
    zoom_if_outside,
)
from .result_stream import ResultStream, SearchPreparation
from .results_model import ResultsModel
from .search_form import follow_collection, read_paging_limits, read_query, set_up_search_form
from .source_access import SourceAccess

DEMO_NAME = "Demo cube (offline)"
SOURCE_ROLE = Qt.ItemDataRole.UserRole + 2
MAX_THUMBNAILS = 300


def _fit_columns(tree) -> None:
    """Tile / date takes the width the clouds column leaves: measuring it from the rows would cost a pass
    over 10,000 of them, and measured on the first page it cut later dates ("2023...")."""
    header = tree.header()
    header.setStretchLastSection(False)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
    header.resizeSection(1, tree.fontMetrics().horizontalAdvance("Clouds 100 %") + 16)


class BrowsePanel(QObject):
    """Controller of the Browse tab's widgets (``form``), reporting to ``bar`` and the log."""

    layers_loaded = pyqtSignal(list)
    source_failed = pyqtSignal(str)
    search_finished = pyqtSignal(object)
    collections_listed = pyqtSignal(list)

    def __init__(self, form, bar, canvas, workdir: Path, parent=None) -> None:
        super().__init__(parent)
        self.form, self.bar, self.canvas, self.workdir = form, bar, canvas, workdir
        self.source: Source | None = None
        self.demo_cube: DemoCube | None = None
        self.zarr_description = None
        self.items: list[dict] = []
        self.tasks = CurrentTasks(self._report_failure)
        self.access = SourceAccess(self)

        self.collection_list = CollectionList(form.collectionList, form.collectionFilter, self)
        self.collections = self.collection_list.model
        form.collectionList.selectionModel().currentChanged.connect(self._collection_changed)

        self.results = ResultsModel(self)
        form.resultsTree.setModel(self.results)
        _fit_columns(form.resultsTree)
        self.selection = FootprintSelection(form.resultsTree, self.results)
        self.stream = ResultStream(self.results, self.selection, self._rows_added, self)
        self._preparation: SearchPreparation | None = None
        form.sourceProgress.hide()
        form.searchProgress.hide()
        set_up_search_form(form, canvas)

        form.searchButton.clicked.connect(self.search)
        form.cancelSearchButton.clicked.connect(lambda: self.tasks.cancel("search"))
        form.loadAssetButton.clicked.connect(lambda: self.load_selected([form.assetCombo.currentData() or ""]))
        form.trueColourButton.clicked.connect(lambda: self.load_selected(list(TRUE_COLOUR)))
        form.falseColourButton.clicked.connect(lambda: self.load_selected(list(FALSE_COLOUR)))
        form.stackButton.clicked.connect(self.load_stack)

    # -- tasks -------------------------------------------------------------------------------------
    def cancel_all(self) -> None:
        self.tasks.cancel_all()
        self.stream.stop()

    def busy(self) -> bool:
        return self.tasks.busy()

    def _report_failure(self, message: str) -> None:
        self.form.sourceProgress.hide()
        self.form.searchProgress.hide()
        self.form.sourceStatus.setText(message)
        log(message, "critical", bar=self.bar)
        self.source_failed.emit(message)

    # -- sources -----------------------------------------------------------------------------------
    def open_demo(self, root: Path | None = None) -> None:
        root = root or default_demo_dir()
        self.form.sourceStatus.setText(self.tr("Preparing the demo cube…"))
        self.form.sourceStatus.setToolTip(str(root))
        self.form.sourceProgress.setValue(0)
        self.form.sourceProgress.show()
        task = DemoCubeTask(root)
        self.tasks.adopt("source", task)
        current = lambda: self.tasks.is_current("source", task)  # noqa: E731 (a replaced task reports late)
        task.progressChanged.connect(lambda v: current() and self.form.sourceProgress.setValue(int(v)))
        task.ready.connect(lambda cube, _collections: current() and self._demo_ready(cube))
        task.failed.connect(lambda message: current() and self.tasks.finish("source", self._report_failure, message))
        QgsApplication.taskManager().addTask(task)

    def _demo_ready(self, cube: DemoCube) -> None:
        self.tasks.finish("source")
        self.demo_cube = cube
        self.open_source(Source(name=DEMO_NAME, kind=SourceKind.STATIC, url=str(cube.catalog), preset=True))

    def open_source(self, source: Source) -> None:
        """List the collections of ``source`` (a Zarr cube shows as one collection)."""
        self.source = source
        self.zarr_description = None
        if source.authcfg:
            # Keys are read now, before any task of this source runs (see source_access).
            try:
                self.access.of(source)
            except (ValueError, PermissionError) as error:
                log(str(error), "critical", bar=self.bar)
        self.collections.clear()
        self.form.collectionDetails.clear()
        self.form.sourceStatus.setText(self.tr("Connecting to {url}…").format(url=source.url))
        self.form.sourceStatus.setToolTip(source.url)
        self.form.sourceProgress.setRange(0, 0)
        self.form.sourceProgress.show()
        task = CallTask(self.tr("Cubescope: listing collections of {name}").format(name=source.name),
                        list_collections, source, self.access.keys(source), self.access.headers(source))
        self.tasks.start("source", task, self._collections_listed, on_partial=self._collections_page)

    def _collections_page(self, value) -> None:
        kind, payload = value
        if kind == "zarr":
            self.zarr_description = payload
            return
        if kind == "skipped":
            log(self.tr("{n} collections left out:\n{problems}").format(
                n=len(payload), problems="\n".join(payload[:20])), "warning", bar=self.bar)
            return
        for collection in payload:
            self.collection_list.append(collection)
        self.form.sourceStatus.setText(self.tr("{n} collections so far…").format(n=self.collections.rowCount()))

    def _collections_listed(self, collections: list[CollectionSummary]) -> None:
        self.form.sourceProgress.setRange(0, 100)
        self.form.sourceProgress.hide()
        if self.collections.rowCount() != len(collections):  # Zarr, or pages not streamed
            self.collections.clear()
            for collection in collections:
                self.collection_list.append(collection)
        name = self.source.name if self.source else ""
        if self.source and self.source.name == DEMO_NAME:
            self.form.sourceStatus.setText(
                self.tr("Demo cube: {n} collections, offline.").format(n=len(collections)))
        else:
            self.form.sourceStatus.setText(self.tr("{name}: {n} collections.").format(name=name, n=len(collections)))
        if collections:
            self.collection_list.select_first()
        self.collections_listed.emit(collections)

    def collection_ids(self) -> list[str]:
        """In the order the list shows them (by title)."""
        return self.collection_list.ids()

    def select_collection(self, collection_id: str) -> None:
        if not self.collection_list.select(collection_id):
            raise KeyError(f"No collection '{collection_id}' in {self.source.name if self.source else 'this source'}")

    def current_collection(self) -> CollectionSummary | None:
        return self.collection_list.current()

    def _collection_changed(self, current, _previous=None) -> None:
        collection = current.data(COLLECTION_ROLE) if current.isValid() else None
        self.form.collectionDetails.setHtml(collection_html(collection) if collection else "")
        if collection is not None:
            follow_collection(self.form, collection)

    # -- search ------------------------------------------------------------------------------------
    def query(self) -> SearchQuery:
        return read_query(self.form, self.current_collection())

    def paging_limits(self) -> PagingLimits:
        return read_paging_limits(self.form)

    def search(self) -> None:
        if self.source is None or self.current_collection() is None:
            log(self.tr("Choose a source and a collection first."), "warning", bar=self.bar)
            return
        if self.source.kind == SourceKind.ZARR:
            log(self.tr("A Zarr cube needs no search: use Time stack to load its time steps."), "info", bar=self.bar)
            return
        if self.source.kind in (SourceKind.WTSS, SourceKind.WLTS):
            log(self.tr("A WTSS or WLTS service needs no search: pick the pixel tool and click the map (Time "
                        "series tab)."), "info", bar=self.bar)
            return
        query = self.query()
        self.form.searchButton.setEnabled(False)
        self.form.cancelSearchButton.setEnabled(True)
        self.form.searchProgress.setRange(0, 0)
        self.form.searchProgress.show()
        self.form.searchCount.setText(self.tr("searching…"))
        collection = self.current_collection()
        # Pages are shown while they arrive, prepared in the task's thread (result_stream).
        self.stream.begin(self.tr("Footprints {c}").format(c=collection.id if collection else ""))
        self._preparation = SearchPreparation()
        task = CallTask(self.tr("Cubescope: searching {name}").format(name=self.source.name),
                        run_search, self.source, query, self.access.keys(self.source), self._preparation)
        task.progressChanged.connect(lambda value: self.tasks.is_current("search", task) and (
            self.form.searchProgress.setRange(0, 100) or self.form.searchProgress.setValue(int(value))))
        self.tasks.start("search", task, self._search_done, self._search_failed, self._search_progress)
        # The outcome is the dock's now: the task deleted later must not take 10,000 items with it at once.
        task.succeeded.connect(lambda _outcome, task=task: setattr(task, "result", None))

    def _search_progress(self, value) -> None:
        received, matched, prepared = value
        self.form.searchCount.setText(
            self.tr("{n} of {m} items").format(n=received, m=matched) if matched else
            self.tr("{n} items").format(n=received))
        if prepared is not None:
            self.stream.push_page(prepared)

    def _rows_added(self, new_tiles: bool) -> None:
        if new_tiles:
            self.form.resultsTree.expandToDepth(0)

    def _search_failed(self, message: str) -> None:
        """The items received before are kept (their clusters made here: the task made none)."""
        received = sort_by_date(self.stream.received)
        if received and self._preparation is not None:
            self.stream.push_end(self._preparation.last(received), lambda: self._search_failed_shown(message, received))
        else:
            self._search_failed_shown(message, self.items)

    def _search_failed_shown(self, message: str, items: list[dict]) -> None:
        self.items = items
        self._search_ui_idle()
        self.form.searchCount.setText(self.tr("{n} items").format(n=len(self.items)))
        log(message, "warning" if message.startswith("Cancelled") else "critical", bar=self.bar)

    def _search_ui_idle(self) -> None:
        self.form.searchButton.setEnabled(True)
        self.form.cancelSearchButton.setEnabled(False)
        self.form.searchProgress.hide()

    def _search_done(self, outcome: SearchOutcome) -> None:
        if outcome.prepared is not None:  # shown once the pages queued before it are
            self.stream.push_end(outcome.prepared, lambda: self._search_shown(outcome))
        else:
            self.show_items(outcome.items)
            self._search_shown(outcome, thumbnails=False)

    def _search_shown(self, outcome: SearchOutcome, thumbnails: bool = True) -> None:
        self.stream.release(self.items)
        self.items = outcome.items
        self._search_ui_idle()
        if thumbnails:
            self._items_shown(outcome.items)
        self.form.searchCount.setText(self.tr("{n} items").format(n=len(outcome.items)))
        self.form.searchCount.setToolTip(self._stop_message(outcome.stop) if outcome.stop else "")
        if outcome.stop:
            self.form.searchCount.setText(self.tr("{n} items (stopped: {reason})").format(
                n=len(outcome.items), reason=outcome.stop.reason))
            log(self.form.searchCount.toolTip(), "warning", bar=self.bar, duration=0)
        if outcome.skipped:
            log(self.tr("{n} items left out:\n{problems}").format(
                n=len(outcome.skipped), problems="\n".join(outcome.skipped[:20])), "warning", bar=self.bar)
        if outcome.error:
            message = self.tr("The search stopped after {n} items: {error}")
            log(message.format(n=len(outcome.items), error=outcome.error), "critical", bar=self.bar, duration=0)
        self.search_finished.emit(outcome)

    def _stop_message(self, stop: PagingStop) -> str:
        where = {PAGE_LIMIT: self.tr("the search's “Pages ≤” box"),
                 TIME_LIMIT: self.tr("the search's “Time ≤” box")}.get(stop.reason, "")
        return stop.message(where)

    def show_items(self, items: list[dict]) -> None:
        """Fill the tile/date tree and the footprints layer at once (replacing the previous search's)."""
        self.stream.stop()
        self.items = items
        groups = group_by_tile(items)
        self.results.set_groups(groups)
        self._rows_added(True)
        tiles = {item.get("id", ""): group.tile for group in groups for item in group.items}
        collection = self.current_collection()
        self.selection.show(items, self.tr("Footprints {c}").format(c=collection.id if collection else ""), tiles)
        self._items_shown(items)

    def _items_shown(self, items: list[dict]) -> None:
        """The asset list and the thumbnails of a search's items."""
        if items and not self.form.assetCombo.count():
            for band in list_bands(items[0]):
                self.form.assetCombo.addItem(band.asset_key, band.asset_key)
        if items and self.source is not None:
            task = CallTask(self.tr("Cubescope: thumbnails"), fetch_thumbnails, self.source, items[:MAX_THUMBNAILS],
                            self.access.keys(self.source))
            self.tasks.start("thumbnails", task, lambda _n: None, lambda _message: None, self._show_thumbnail)

    def _show_thumbnail(self, value) -> None:
        item_id, image = value
        row = self.results.row_for(item_id)
        if row is not None:
            row.setIcon(QIcon(QPixmap.fromImage(image)))

    # -- selection, linked both ways -----------------------------------------------------------------
    @property
    def footprints_layer(self):
        """The current search's footprints (None before the first search)."""
        return self.selection.layer

    def selected_items(self) -> list[dict]:
        """Selected dates; a selected tile row stands for its whole time stack."""
        return self.selection.selected_items()

    def select_tile(self, tile: str) -> None:
        self.selection.select_tile(tile)

    # -- loading -------------------------------------------------------------------------------------
    def load_selected(self, bands: list[str], stack: bool = False) -> None:
        items = self.selected_items()
        if not items:
            log(self.tr("Select dates or a tile in the search result first."), "warning", bar=self.bar)
            return
        self.load_items(items, bands, stack)

    def load_items(self, items: list[dict], bands: list[str], stack: bool = False) -> None:
        if not [b for b in bands if b]:
            log(self.tr("Choose an asset to load."), "warning", bar=self.bar)
            return
        try:
            access = self.access.of(self.source)
        except (ValueError, PermissionError) as error:
            log(str(error), "critical", bar=self.bar)
            return
        task = CallTask(self.tr("Cubescope: opening {n} layers").format(n=len(items)),
                        check_item_layers, items, bands, self.source, self.workdir, stack, access)
        self.tasks.start("load", task, lambda result: self._layers_ready(result, stack))

    def load_stack(self) -> None:
        """A tile's (or a Zarr variable's) whole time stack, playable on the temporal controller."""
        if self.source is not None and self.source.kind == SourceKind.ZARR and self.zarr_description is not None:
            variable = self.form.assetCombo.currentData() or self.zarr_description.variables[0].name
            task = CallTask(self.tr("Cubescope: opening {v}").format(v=variable), check_zarr_layers,
                            self.source, variable, list(self.zarr_description.times), self.access.of(self.source))
            self.tasks.start("load", task, lambda result: self._layers_ready(result, True))
            return
        bands = [self.form.assetCombo.currentData()] if self.form.assetCombo.currentData() else list(TRUE_COLOUR)
        self.load_selected(bands, stack=True)

    def _layers_ready(self, result, stack: bool) -> None:
        """Layers are made on this (GUI) thread, a few per event-loop turn (see layer_loader)."""
        plans, problems = result
        make_layers_in_turns(self, list(plans), list(problems),
                             lambda layers, problems: self._layers_made(layers, problems, stack))

    def _layers_made(self, layers: list, problems: list[str], stack: bool) -> None:
        added = add_layers(layers, self.tr("time stack") if stack else None)
        if problems:
            message = self.tr("{n} layers not loaded:\n{problems}")
            log(message.format(n=len(problems), problems="\n".join(problems[:20])), "warning", bar=self.bar)
        if stack and added:
            play_on_controller(self.canvas, added)
        if added:
            zoom_if_outside(self.canvas, added)
        self.layers_loaded.emit(added)
