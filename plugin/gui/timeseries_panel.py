"""The Time series tab: a click on the map plots that pixel through time for the current selection.

The reader (open COG headers and handles, the opened Zarr cube, or a described WTSS coverage) is kept
for the next click while the selection stays the same; reading runs in a CallTask and values are
plotted as they arrive. Once a WLTS connection was opened, its collection is the tab's land use:
every click also reads the point's classes through time, shown as a band under the plot.
"""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
)
from qgis.gui import QgsVertexMarker
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QFileDialog, QLabel

from ..analysis.land_use_table import write_csv_with_land_use
from ..analysis.ops.indices import INDICES, computable
from ..analysis.ops.quality import rule_for, rule_for_bands, user_rule
from ..analysis.timeseries import TimeSeries, read_series
from ..cube.cog_reader import CogStackReader
from ..cube.layer_plan import TRUE_COLOUR
from ..cube.zarr_reader import ZarrReader
from ..log import log
from ..stac.bands import list_bands
from ..stac.sources import Source, SourceKind
from ..tasks.call_task import CallTask
from ..tasks.service_tasks import open_wtss_reader, read_trajectory, service_fetcher

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
DEFAULT_CHOICE = "ndvi"


def _read(task, reader_factory, lon: float, lat: float, bands: list[str], rule):
    reader = reader_factory(task)
    series = read_series(reader, lon, lat, bands, rule, is_canceled=task.isCanceled,
                         on_observation=lambda obs, done, total: task.partial.emit((obs, done, total)))
    return reader, series


class TimeSeriesPanel(QObject):
    series_done = pyqtSignal(object)  # TimeSeries
    series_failed = pyqtSignal(str)
    trajectory_done = pyqtSignal(object)  # Trajectory

    def __init__(self, form, bar, canvas, browse, parent=None) -> None:
        super().__init__(parent)
        self.form, self.bar, self.canvas, self.browse = form, bar, canvas, browse
        self.series: list[tuple[str, TimeSeries]] = []
        self.trajectories: list[tuple[str, object]] = []
        """(point label, WLTS Trajectory) of the clicks since the last Clear."""
        self.land_use: tuple[Source, list[str]] | None = None
        """The WLTS connection and collections every click also reads; None before one was opened."""
        self._trajectory_task: CallTask | None = None
        self.markers: list[QgsVertexMarker] = []
        self._reader = None
        self._reader_key: tuple | None = None
        self._task: CallTask | None = None
        self._point = 0
        try:
            from .series_plot import SeriesPlot, colour_of
        except ImportError as error:  # pyqtgraph missing: say so where the plot would be
            self.plot = None
            self._colour_of = None
            form.plotLayout.addWidget(QLabel(self.tr("The plot needs pyqtgraph ({error}).").format(error=error)))
        else:
            self.plot = SeriesPlot(form.plotContainer)
            self._colour_of = colour_of
            form.plotLayout.addWidget(self.plot)
            self.plot.observation_clicked.connect(self._open_scene)
            form.hideMaskedCheck.toggled.connect(self.plot.set_hide_masked)
        form.seriesProgress.hide()
        form.clearSeriesButton.clicked.connect(self.clear)
        form.exportCsvButton.clicked.connect(self._export_csv)
        form.exportPngButton.clicked.connect(self._export_png)
        browse.search_finished.connect(lambda _outcome: self.refresh_choices())
        browse.collections_listed.connect(self._collections_listed)
        form.collectionList.selectionModel().currentChanged.connect(lambda *_: self.refresh_choices())

    def _collections_listed(self, collections) -> None:
        source = self.browse.source
        if source is not None and source.kind == SourceKind.WLTS and collections:
            current = self.browse.current_collection()
            self.land_use = (source, [current.id if current is not None else collections[0].id])
        self.refresh_choices()

    # -- what can be plotted -------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """The bands of the selection and the indices they allow; NDVI checked when possible."""
        combo = self.form.seriesBandsCombo
        checked = set(combo.checkedItems())
        bands = self._available_bands()
        combo.clear()
        names = list(bands) + sorted(i for i in INDICES if computable(i, bands.values()))
        for name in names:
            combo.addItem(name)
        keep = [n for n in names if n in checked] or ([DEFAULT_CHOICE] if DEFAULT_CHOICE in names else names[:1])
        combo.setCheckedItems(keep)

    def _available_bands(self) -> dict[str, str]:
        """Band name -> common name (or itself)."""
        kind = self.browse.source.kind if self.browse.source is not None else None
        if kind in (SourceKind.WTSS, SourceKind.WLTS):  # a coverage's attributes; nothing to plot from WLTS
            coverage = self.browse.current_collection() if kind == SourceKind.WTSS else None
            return {b.asset_key: (b.common_name or b.asset_key) for b in coverage.bands} if coverage else {}
        if kind == SourceKind.ZARR:
            description = self.browse.zarr_description
            return {v.name: v.name for v in description.variables} if description else {}
        items = self.browse.items
        if not items:
            return {}
        return {b.asset_key: (b.common_name or b.asset_key) for b in list_bands(items[0])}

    def chosen(self) -> list[str]:
        return list(self.form.seriesBandsCombo.checkedItems())

    # -- the reader, kept across clicks ---------------------------------------------------------------
    def _reader_factory(self):
        source = self.browse.source
        if source is not None and source.kind == SourceKind.WTSS:
            return self._wtss_factory(source)
        if source is not None and source.kind == SourceKind.ZARR:
            key = ("zarr", source.url)
            access = self.browse.access.of(self.browse.source)

            def make(_task=None):
                return ZarrReader(source.url, s3=source.s3, credentials=access.credentials or None,
                                  auth_headers=access.headers or None)
        else:
            items = self.browse.selected_items() or self.browse.items
            if not items:
                raise ValueError(self.tr("Search a collection first: the plot reads the search result "
                                         "(or the selected tile's dates)."))
            key = ("cog", tuple(sorted(item["id"] for item in items)))
            access = self.browse.access.of(self.browse.source)

            def make(_task=None):
                return CogStackReader(items, s3=source.s3 if source else None, signer=access.signer,
                                      credentials=access.credentials or None,
                                      auth_headers=access.headers or None, auth_scope=source.url if source else "")
        if key == self._reader_key and self._reader is not None:
            reader = self._reader
            return key, lambda _task=None: reader
        return key, make

    def _wtss_factory(self, source: Source):
        coverage = self.browse.current_collection()
        if coverage is None:
            raise ValueError(self.tr("Choose a coverage of {name} first.").format(name=source.name))
        key = ("wtss", source.url, coverage.id)
        if key == self._reader_key and self._reader is not None:
            reader = self._reader

            def reuse(task):
                reader.use_fetcher(service_fetcher(task, source))  # this click's requests, cancelled with it
                return reader
            return key, reuse
        return key, lambda task: open_wtss_reader(task, source, coverage.id)

    def _quality_rule(self):
        """The user's rule when typed (as in the Analysis tab), else the one the metadata implies."""
        if self.browse.source is not None and self.browse.source.kind == SourceKind.WTSS:
            coverage = self.browse.current_collection()
            detected = rule_for_bands({b.asset_key: {} for b in coverage.bands}) if coverage else None
            return user_rule(self.form.qualityEdit.text(), detected)
        items = self.browse.items
        return user_rule(self.form.qualityEdit.text(), rule_for(items[0]) if items else None)

    # -- a click ---------------------------------------------------------------------------------------
    def pick(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        """Plot the pixel at ``point``; a read still running for an earlier click is cancelled."""
        self.form.tabs.setCurrentWidget(self.form.timeSeriesTab)
        source = self.browse.source
        if source is not None and source.kind == SourceKind.WLTS:
            self._pick_land_use(source, point, crs)
            return
        bands = self.chosen()
        if not bands:
            self._fail(self.tr("Choose at least one band or index to plot."))
            return
        try:
            key, factory = self._reader_factory()
        except ValueError as error:
            self._fail(str(error))
            return
        try:
            rule = self._quality_rule()
        except ValueError as error:
            self._fail(self.tr("Mask: {error}").format(error=error))
            return
        lonlat = QgsCoordinateTransform(crs, WGS84, QgsProject.instance()).transform(point)
        self._cancel()
        self._point += 1
        label = self.tr("P{n}").format(n=self._point)
        self._add_marker(point, crs)
        self.form.timeSeriesHint.hide()
        self.form.seriesStatus.setText(self.tr("{label} at {lon:.5f}, {lat:.5f}: reading…").format(
            label=label, lon=lonlat.x(), lat=lonlat.y()))
        self.form.seriesProgress.setRange(0, 0)
        self.form.seriesProgress.show()
        task = CallTask(self.tr("Cubescope: time series of {label}").format(label=label),
                        _read, factory, lonlat.x(), lonlat.y(), bands, rule)
        number = self._point - 1
        task.partial.connect(lambda value: self._task is task and self._arrived(number, label, bands, *value))
        task.succeeded.connect(lambda result: self._task is task and self._done(key, label, result))
        task.failed.connect(lambda message: self._task is task and self._fail(message))
        self._task = task
        QgsApplication.taskManager().addTask(task)
        if self.land_use is not None:
            self._read_land_use(label, lonlat.x(), lonlat.y())

    # -- land use (WLTS) -------------------------------------------------------------------------------
    def _pick_land_use(self, source: Source, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        """A click on a WLTS connection: the classes at the point, in the band under the plot."""
        collection = self.browse.current_collection()
        if collection is None:
            self._fail(self.tr("Choose a collection of {name} first.").format(name=source.name))
            return
        self.land_use = (source, [collection.id])
        lonlat = QgsCoordinateTransform(crs, WGS84, QgsProject.instance()).transform(point)
        self._cancel()
        self._point += 1
        label = self.tr("P{n}").format(n=self._point)
        self._add_marker(point, crs)
        self.form.timeSeriesHint.hide()
        self.form.seriesStatus.setText(self.tr("{label}: reading the land use…").format(label=label))
        self.form.seriesProgress.setRange(0, 0)
        self.form.seriesProgress.show()
        self._read_land_use(label, lonlat.x(), lonlat.y(), alone=True)

    def _read_land_use(self, label: str, lon: float, lat: float, alone: bool = False) -> None:
        """``alone``: a WLTS click, whose status line is the land use (else the series' is kept)."""
        source, collections = self.land_use
        task = CallTask(self.tr("Cubescope: land use of {label}").format(label=label), read_trajectory, source,
                        lon, lat, list(collections))
        task.succeeded.connect(lambda result: self._trajectory_task is task and self._land_use_read(label, result,
                                                                                                     alone))
        task.failed.connect(lambda message: self._trajectory_task is task and self._land_use_failed(label, message,
                                                                                                     alone))
        self._trajectory_task = task
        QgsApplication.taskManager().addTask(task)

    def _land_use_read(self, label: str, trajectory, alone: bool) -> None:
        self._trajectory_task = None
        self.trajectories.append((label, trajectory))
        if self.plot is not None:
            self.plot.band.add(label, trajectory)
        if alone:
            self.form.seriesProgress.hide()
            steps = ", ".join(f"{s.date:%Y} {s.class_name}" for s in trajectory.steps)
            self.form.seriesStatus.setText(self.tr("{label}: land use {steps}").format(
                label=label, steps=steps or self.tr("none at this point")))
        self.trajectory_done.emit(trajectory)

    def _land_use_failed(self, label: str, message: str, alone: bool) -> None:
        self._trajectory_task = None
        if alone:
            self.form.seriesProgress.hide()
            self.form.seriesStatus.setText(message)
        log(self.tr("{label}: land use: {error}").format(label=label, error=message), "warning", bar=self.bar)

    def _arrived(self, number: int, label: str, bands: list[str], observation, done: int, total: int) -> None:
        self.form.seriesProgress.setRange(0, total)
        self.form.seriesProgress.setValue(done)
        self.form.seriesStatus.setText(self.tr("{label}: {done} of {total} dates").format(
            label=label, done=done, total=total))
        if self.plot is not None:
            for band_number, band in enumerate(bands):
                self.plot.add_observation(number, label, band, band_number, observation)

    def _done(self, key, label: str, result) -> None:
        reader, series = result
        self._task = None
        self._reader, self._reader_key = reader, key
        self.form.seriesProgress.hide()
        self.series.append((label, series))
        masked = sum(1 for o in series.observations if not o.valid)
        text = self.tr("{label}: {n} dates, {m} masked").format(label=label, n=len(series.observations), m=masked)
        if series.outside:
            text = self.tr("{label}: {why}").format(label=label, why=series.warnings[0])
        if series.skipped:
            text = self.tr("{text}; {skipped}").format(text=text, skipped=series.skipped.summary())
        self.form.seriesStatus.setText(text)
        if series.skipped:
            # one bar message with the count; the log lists each file with its cause
            summary = self.tr("{label}: {skipped} (the plot has gaps there)").format(
                label=label, skipped=series.skipped.summary())
            log("\n".join([summary, *series.skipped.lines(limit=100)]), "warning", bar=self.bar, short=summary)
        for warning in series.warnings if not series.outside else []:
            log(warning, "warning", bar=None if series.skipped else self.bar)
        if series.outside:
            log(series.warnings[0], "warning", bar=self.bar)
        self.series_done.emit(series)

    def _fail(self, message: str) -> None:
        self._task = None
        self.form.seriesProgress.hide()
        self.form.seriesStatus.setText(message)
        log(message, "warning", bar=self.bar)
        self.series_failed.emit(message)

    def _cancel(self) -> None:
        # Forgotten before it is cancelled: a task still queued reports its cancel from within cancel().
        tasks = (self._task, self._trajectory_task)
        self._task = self._trajectory_task = None
        for task in tasks:
            if task is not None:
                try:
                    task.cancel()
                except RuntimeError:  # the C++ task finished and was deleted already
                    pass

    # -- markers, clear, export -------------------------------------------------------------------------
    def _add_marker(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        if self.canvas is None or self._colour_of is None:
            return
        destination = self.canvas.mapSettings().destinationCrs()
        marker = QgsVertexMarker(self.canvas)
        marker.setCenter(QgsCoordinateTransform(crs, destination, QgsProject.instance()).transform(point))
        marker.setColor(self._colour_of(self._point - 1))
        marker.setIconType(QgsVertexMarker.IconType.ICON_CIRCLE)
        marker.setIconSize(12)
        marker.setPenWidth(3)
        self.markers.append(marker)

    def clear(self) -> None:
        self._cancel()
        if self.plot is not None:
            self.plot.clear()
        for marker in self.markers:
            if self.canvas is not None:
                self.canvas.scene().removeItem(marker)
        self.markers.clear()
        self.series.clear()
        self.trajectories.clear()
        self._point = 0
        self.form.seriesStatus.setText("")
        self.form.timeSeriesHint.show()

    def close(self) -> None:
        self.clear()
        if self._reader is not None and hasattr(self._reader, "close"):
            self._reader.close()
        self._reader = self._reader_key = None

    def write_csv(self, path):
        """The plotted series and land-use trajectories, one row per date (see land_use_table)."""
        return write_csv_with_land_use(path, dict(self.series), dict(self.trajectories))

    def _export_csv(self) -> None:
        if not self.series and not self.trajectories:
            return
        path, _ = QFileDialog.getSaveFileName(self.form.timeSeriesTab, self.tr("Export time series"),
                                              "timeseries.csv", "CSV (*.csv)")
        if path:
            self.write_csv(path)
            log(self.tr("Wrote {path}").format(path=path), "success", bar=self.bar)

    def _export_png(self) -> None:
        if self.plot is None:
            return
        path, _ = QFileDialog.getSaveFileName(self.form.timeSeriesTab, self.tr("Export plot"),
                                              "timeseries.png", "PNG (*.png)")
        if path and self.plot.export_png(path):
            log(self.tr("Wrote {path}").format(path=path), "success", bar=self.bar)

    def _open_scene(self, observation) -> None:
        """A click on an observation opens that date's scene in true colour."""
        item = next((i for i in self.browse.items if i.get("id") == observation.item_id), None)
        if item is not None:
            self.browse.load_items([item], list(TRUE_COLOUR))
