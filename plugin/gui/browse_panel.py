"""The Browse tab: connections, collections, search, the tile/date tree, footprints and layer loading.

Every network or GDAL call runs in a CallTask; this class only copies inputs from widgets, starts
tasks and shows what they report. Tasks it replaced are ignored when they report late.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QDateTime, QItemSelectionModel, QObject, QSortFilterProxyModel, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QPixmap, QStandardItem, QStandardItemModel

from .. import settings
from ..cube.layer_plan import FALSE_COLOUR, TRUE_COLOUR
from ..demo import DemoCube, default_demo_dir
from ..log import log
from ..qt_dates import utc_day
from ..stac.bands import list_bands
from ..stac.catalog_client import PagingLimits, SearchQuery
from ..stac.paging import PAGE_LIMIT, TIME_LIMIT, PagingStop
from ..stac.sources import Source, SourceKind
from ..stac.static_catalog import CollectionSummary
from ..stac.tiles import group_by_tile
from ..tasks.call_task import CallTask
from ..tasks.demo_cube_task import DemoCubeTask
from ..tasks.source_tasks import SearchOutcome, fetch_thumbnails, list_collections, run_search
from . import footprints
from .collection_details import collection_html
from .layer_loader import (
    add_layers,
    check_item_layers,
    check_zarr_layers,
    make_layers_in_turns,
    play_on_controller,
    zoom_if_outside,
)
from .results_model import ITEM_ROLE, TILE_ROLE, ResultsModel
from .source_access import SourceAccess

DEMO_NAME = "Demo cube (offline)"
COLLECTION_ROLE = Qt.ItemDataRole.UserRole + 1
SOURCE_ROLE = Qt.ItemDataRole.UserRole + 2
WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
MAX_THUMBNAILS = 300



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
        self.footprints_layer = None
        self._tasks: dict[str, object] = {}
        self._syncing = False
        self.access = SourceAccess(self)

        self.collections = QStandardItemModel(self)
        self.filtered = QSortFilterProxyModel(self)
        self.filtered.setSourceModel(self.collections)
        self.filtered.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filtered.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filtered.sort(0)
        form.collectionList.setModel(self.filtered)
        form.collectionFilter.textChanged.connect(self.filtered.setFilterFixedString)
        form.collectionList.selectionModel().currentChanged.connect(self._collection_changed)

        self.results = ResultsModel(self)
        form.resultsTree.setModel(self.results)
        form.resultsTree.selectionModel().selectionChanged.connect(self._tree_selection_changed)
        form.sourceProgress.hide()
        form.searchProgress.hide()
        form.extentBox.setOutputCrs(WGS84)
        if canvas is not None:
            form.extentBox.setMapCanvas(canvas)
        for edit in (form.startEdit, form.endEdit):
            edit.setAllowNull(False)
        today = QDateTime.currentDateTimeUtc()
        form.startEdit.setDateTime(today.addYears(-1))
        form.endEdit.setDateTime(today)
        limits = settings.paging_limits()
        form.maxPagesSpin.setValue(limits.max_pages)
        form.timeLimitSpin.setValue(int(limits.time_limit_s))
        form.maxPagesSpin.valueChanged.connect(lambda _v: settings.set_paging_limits(self.paging_limits()))
        form.timeLimitSpin.valueChanged.connect(lambda _v: settings.set_paging_limits(self.paging_limits()))

        form.searchButton.clicked.connect(self.search)
        form.cancelSearchButton.clicked.connect(lambda: self._cancel("search"))
        form.loadAssetButton.clicked.connect(lambda: self.load_selected([form.assetCombo.currentData() or ""]))
        form.trueColourButton.clicked.connect(lambda: self.load_selected(list(TRUE_COLOUR)))
        form.falseColourButton.clicked.connect(lambda: self.load_selected(list(FALSE_COLOUR)))
        form.stackButton.clicked.connect(self.load_stack)

    # -- tasks -------------------------------------------------------------------------------------
    def _start(self, key: str, task, on_success, on_failure=None, on_partial=None) -> None:
        """Start ``task`` as the current one for ``key``; a previous one is cancelled and ignored."""
        self._cancel(key)
        self._tasks[key] = task
        task.succeeded.connect(lambda result: self._tasks.get(key) is task and self._done(key, on_success, result))
        task.failed.connect(lambda message: self._tasks.get(key) is task
                            and self._done(key, on_failure or self._report_failure, message))
        if on_partial is not None:
            task.partial.connect(lambda value: self._tasks.get(key) is task and on_partial(value))
        QgsApplication.taskManager().addTask(task)

    def _done(self, key: str, handler, value) -> None:
        self._tasks.pop(key, None)
        handler(value)

    def _cancel(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            try:
                task.cancel()
            except RuntimeError:  # the C++ task finished and was deleted already
                pass

    def cancel_all(self) -> None:
        for key in list(self._tasks):
            self._cancel(key)

    def busy(self) -> bool:
        return bool(self._tasks)

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
        self._cancel("source")
        task = DemoCubeTask(root)
        self._tasks["source"] = task
        current = lambda: self._tasks.get("source") is task  # noqa: E731 (a replaced task reports late)
        task.progressChanged.connect(lambda v: current() and self.form.sourceProgress.setValue(int(v)))
        task.ready.connect(lambda cube, _collections: current() and self._demo_ready(cube))
        task.failed.connect(lambda message: current() and self._done("source", self._report_failure, message))
        QgsApplication.taskManager().addTask(task)

    def _demo_ready(self, cube: DemoCube) -> None:
        self._tasks.pop("source", None)
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
        self._start("source", task, self._collections_listed, on_partial=self._collections_page)

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
            self._append_collection(collection)
        self.form.sourceStatus.setText(self.tr("{n} collections so far…").format(n=self.collections.rowCount()))

    def _append_collection(self, collection: CollectionSummary) -> None:
        row = QStandardItem(collection.title)
        row.setData(collection, COLLECTION_ROLE)
        row.setToolTip(f"{collection.id}\n\n{collection.description[:300]}")
        self.collections.appendRow(row)

    def _collections_listed(self, collections: list[CollectionSummary]) -> None:
        self.form.sourceProgress.setRange(0, 100)
        self.form.sourceProgress.hide()
        if self.collections.rowCount() != len(collections):  # Zarr, or pages not streamed
            self.collections.clear()
            for collection in collections:
                self._append_collection(collection)
        name = self.source.name if self.source else ""
        if self.source and self.source.name == DEMO_NAME:
            self.form.sourceStatus.setText(
                self.tr("Demo cube: {n} collections, offline.").format(n=len(collections)))
        else:
            self.form.sourceStatus.setText(self.tr("{name}: {n} collections.").format(name=name, n=len(collections)))
        if collections:
            self.form.collectionList.setCurrentIndex(self.filtered.index(0, 0))
        self.collections_listed.emit(collections)

    def collection_ids(self) -> list[str]:
        """In the order the list shows them (by title)."""
        return [self.filtered.index(r, 0).data(COLLECTION_ROLE).id for r in range(self.filtered.rowCount())]

    def select_collection(self, collection_id: str) -> None:
        for row in range(self.filtered.rowCount()):
            index = self.filtered.index(row, 0)
            if index.data(COLLECTION_ROLE).id == collection_id:
                self.form.collectionList.setCurrentIndex(index)
                return
        raise KeyError(f"No collection '{collection_id}' in {self.source.name if self.source else 'this source'}")

    def current_collection(self) -> CollectionSummary | None:
        index = self.form.collectionList.currentIndex()
        return index.data(COLLECTION_ROLE) if index.isValid() else None

    def _collection_changed(self, current, _previous=None) -> None:
        collection = current.data(COLLECTION_ROLE) if current.isValid() else None
        self.form.collectionDetails.setHtml(collection_html(collection) if collection else "")
        if collection is None:
            return
        if collection.bbox:
            west, south, east, north = collection.bbox
            self.form.extentBox.setOriginalExtent(QgsRectangle(west, south, east, north), WGS84)
            self.form.extentBox.setOutputExtentFromOriginal()
        start, end = collection.interval
        if start:
            self.form.startEdit.setDateTime(QDateTime.fromString(start[:10], "yyyy-MM-dd"))
        if end:
            self.form.endEdit.setDateTime(QDateTime.fromString(end[:10], "yyyy-MM-dd"))
        self.form.assetCombo.clear()
        for band in collection.bands:
            label = band.asset_key if not band.common_name or band.common_name == band.asset_key else \
                f"{band.asset_key} ({band.common_name})"
            self.form.assetCombo.addItem(label, band.asset_key)

    # -- search ------------------------------------------------------------------------------------
    def query(self) -> SearchQuery:
        collection = self.current_collection()
        extent = self.form.extentBox.outputExtent()
        bbox = None if extent.isEmpty() else \
            (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        cloud = self.form.cloudSpin.value()
        return SearchQuery(
            collections=(collection.id,) if collection else (),
            bbox=bbox,
            start=utc_day(self.form.startEdit.dateTime()),
            end=utc_day(self.form.endEdit.dateTime(), end_of_day=True),
            max_cloud=None if cloud >= 100 else float(cloud),
            cql2=self.form.cqlEdit.text().strip() or None,
            paging=self.paging_limits(),
        )

    def paging_limits(self) -> PagingLimits:
        return PagingLimits(self.form.maxPagesSpin.value(), float(self.form.timeLimitSpin.value()))

    def search(self) -> None:
        if self.source is None or self.current_collection() is None:
            log(self.tr("Choose a source and a collection first."), "warning", bar=self.bar)
            return
        if self.source.kind == SourceKind.ZARR:
            log(self.tr("A Zarr cube needs no search: use Time stack to load its time steps."), "info", bar=self.bar)
            return
        query = self.query()
        self.form.searchButton.setEnabled(False)
        self.form.cancelSearchButton.setEnabled(True)
        self.form.searchProgress.setRange(0, 0)
        self.form.searchProgress.show()
        self.form.searchCount.setText(self.tr("searching…"))
        task = CallTask(self.tr("Cubescope: searching {name}").format(name=self.source.name),
                        run_search, self.source, query, self.access.keys(self.source))
        task.progressChanged.connect(lambda value: self._tasks.get("search") is task and (
            self.form.searchProgress.setRange(0, 100) or self.form.searchProgress.setValue(int(value))))
        self._start("search", task, self._search_done, self._search_failed, self._search_progress)

    def _search_progress(self, value) -> None:
        received, matched = value
        self.form.searchCount.setText(
            self.tr("{n} of {m} items").format(n=received, m=matched) if matched else
            self.tr("{n} items").format(n=received))

    def _search_failed(self, message: str) -> None:
        self._search_ui_idle()
        self.form.searchCount.setText(self.tr("{n} items").format(n=len(self.items)))
        log(message, "warning" if message.startswith("Cancelled") else "critical", bar=self.bar)

    def _search_ui_idle(self) -> None:
        self.form.searchButton.setEnabled(True)
        self.form.cancelSearchButton.setEnabled(False)
        self.form.searchProgress.hide()

    def _search_done(self, outcome: SearchOutcome) -> None:
        self._search_ui_idle()
        self.show_items(outcome.items)
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
        """Fill the tile/date tree and the footprints layer (replacing the previous search's)."""
        self.items = items
        groups = group_by_tile(items)
        self.results.set_groups(groups)
        self.form.resultsTree.expandToDepth(0)
        self.form.resultsTree.resizeColumnToContents(0)
        tiles = {item.get("id", ""): group.tile for group in groups for item in group.items}
        project = QgsProject.instance()
        if self.footprints_layer is not None and project.mapLayer(self.footprints_layer.id()):
            project.removeMapLayer(self.footprints_layer.id())
        collection = self.current_collection()
        self.footprints_layer = footprints.footprints_layer(
            items, self.tr("Footprints {c}").format(c=collection.id if collection else ""), tiles)
        # At the bottom of the layer tree: imagery loaded later draws over the outlines.
        project.addMapLayer(self.footprints_layer, False)
        project.layerTreeRoot().addLayer(self.footprints_layer)
        self.footprints_layer.selectionChanged.connect(self._layer_selection_changed)
        if items and not self.form.assetCombo.count():
            for band in list_bands(items[0]):
                self.form.assetCombo.addItem(band.asset_key, band.asset_key)
        if items and self.source is not None:
            task = CallTask(self.tr("Cubescope: thumbnails"), fetch_thumbnails, self.source, items[:MAX_THUMBNAILS],
                            self.access.keys(self.source))
            self._start("thumbnails", task, lambda _n: None, lambda _message: None, self._show_thumbnail)

    def _show_thumbnail(self, value) -> None:
        item_id, image = value
        row = self.results.row_for(item_id)
        if row is not None:
            row.setIcon(QIcon(QPixmap.fromImage(image)))

    # -- selection, linked both ways -----------------------------------------------------------------
    def selected_items(self) -> list[dict]:
        """Selected dates; a selected tile row stands for its whole time stack."""
        chosen: dict[str, dict] = {}
        for index in self.form.resultsTree.selectionModel().selectedRows(0):
            group = index.data(TILE_ROLE)
            items = list(group.items) if group is not None else [index.data(ITEM_ROLE)]
            chosen.update({item["id"]: item for item in items if item})
        return list(chosen.values())

    def select_tile(self, tile: str) -> None:
        for row in range(self.results.rowCount()):
            index = self.results.index(row, 0)
            if index.data(TILE_ROLE).tile == tile:
                self.form.resultsTree.selectionModel().select(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                return
        raise KeyError(f"No tile '{tile}' in the search result")

    def _tree_selection_changed(self, *_args) -> None:
        if self._syncing or self.footprints_layer is None:
            return
        self._syncing = True
        try:
            ids = {item["id"] for item in self.selected_items()}
            self.footprints_layer.selectByIds(footprints.feature_ids_of(self.footprints_layer, ids))
        finally:
            self._syncing = False

    def _layer_selection_changed(self, selected, _deselected, _clear) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            ids = set(footprints.ids_of_features(self.footprints_layer, self.footprints_layer.selectedFeatureIds()))
            selection = self.form.resultsTree.selectionModel()
            selection.clearSelection()
            for item_id in ids:
                row = self.results.row_for(item_id)
                if row is not None:
                    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
                    selection.select(row.index(), flags)
        finally:
            self._syncing = False

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
        self._start("load", task, lambda result: self._layers_ready(result, stack))

    def load_stack(self) -> None:
        """A tile's (or a Zarr variable's) whole time stack, playable on the temporal controller."""
        if self.source is not None and self.source.kind == SourceKind.ZARR and self.zarr_description is not None:
            variable = self.form.assetCombo.currentData() or self.zarr_description.variables[0].name
            task = CallTask(self.tr("Cubescope: opening {v}").format(v=variable), check_zarr_layers,
                            self.source, variable, list(self.zarr_description.times), self.access.of(self.source))
            self._start("load", task, lambda result: self._layers_ready(result, True))
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
