"""The Analysis tab: composites, difference maps and per-pixel statistics of the selected collection,
and the cube products (a regular cube, a minicube, training chips; see ``cube_products``).

Builds the request from the widgets on the main thread, estimates the data volume or runs the work in
a CallTask (progress, cancel), and adds the written COG as a layer with a fitting style; a built cube
becomes a connection of the Browse tab.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsFileWidget, QgsProjectionSelectionWidget
from qgis.PyQt.QtCore import QDateTime, QObject, pyqtSignal

from .. import settings
from ..analysis.engine import pipeline as engine
from ..analysis.engine.analysis_request import (
    COMPOSITE_OP,
    DIFFERENCE_OP,
    OPERATIONS,
    STATISTICS_OP,
    AnalysisRequest,
    Period,
)
from ..analysis.engine.cog_writer import read_metadata
from ..analysis.ops import composite, statistics
from ..analysis.ops.quality import mask_fields
from ..log import log
from ..qgis_crs import crs_text
from ..qt_dates import utc_day
from ..tasks.call_task import CallTask
from ..tasks.source_tasks import catalog_fetcher
from . import cube_products as products
from .result_style import style_result

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
#: How the results written where the user chose no file begin (in the temporary folder).
DEFAULT_PREFIX = "cubescope-"
OPERATION_LABELS = {COMPOSITE_OP: "Temporal composite", DIFFERENCE_OP: "Difference (B − A)",
                    STATISTICS_OP: "Per-pixel time statistics"}



def _fetcher(task, request):
    """QGIS's network stack for the catalog, GDAL with the source's keys for a catalog in a bucket."""
    return catalog_fetcher(task, request.connection, dict(request.credentials) or None)


def _estimate(task, request):
    return engine.estimate(request, _fetcher(task, request), is_canceled=task.isCanceled)


def _run(task, request):
    return engine.run(request, progress=task.setProgress, is_canceled=task.isCanceled, fetch=_fetcher(task, request),
                      log=_engine_log)


def _engine_log(message: str) -> None:
    """The engine's lines in the Cubescope log (from the task's thread: QgsMessageLog is thread-safe);
    its "Warning: " lines, the inputs a run left out among them, as warnings."""
    log(message, "warning" if message.startswith("Warning:") else "info")


def _left_out(path) -> int:
    """How many inputs the run that wrote ``path`` left out (its CUBESCOPE_SKIPPED_INPUTS)."""
    metadata, _ = read_metadata(path)
    try:
        return int(metadata.get("CUBESCOPE_SKIPPED_INPUTS", "0"))
    except ValueError:
        return 0


class AnalysisPanel(QObject):
    finished = pyqtSignal(object)  # the added QgsRasterLayer
    product_finished = pyqtSignal(str, object)  # product, its result (a path or a ChipResult)
    cube_built = pyqtSignal(object)  # a Source for the Browse tab
    estimated = pyqtSignal(object)  # VolumeEstimate
    failed = pyqtSignal(str)

    def __init__(self, form, bar, canvas, browse, parent=None) -> None:
        super().__init__(parent)
        self.form, self.bar, self.browse = form, bar, browse
        self._task: CallTask | None = None
        for operation in OPERATIONS:
            form.operationCombo.addItem(self.tr(OPERATION_LABELS[operation]), operation)
        form.operationCombo.insertSeparator(form.operationCombo.count())
        for product in products.PRODUCTS:
            form.operationCombo.addItem(self.tr(products.LABELS[product]), product)
        form.pointsLayerCombo.setFilters(Qgis.LayerFilter.PointLayer)
        form.pointsLayerCombo.setAllowEmptyLayer(True)
        form.pointsLayerCombo.setLayer(None)
        form.labelLayerCombo.setFilters(Qgis.LayerFilter.PolygonLayer)
        form.labelLayerCombo.setAllowEmptyLayer(True)
        form.labelLayerCombo.setLayer(None)
        form.labelLayerCombo.layerChanged.connect(form.labelFieldCombo.setLayer)
        form.labelFieldCombo.setLayer(None)
        form.formatCombo.currentIndexChanged.connect(lambda *_: self._format_changed())
        # The spacer at the bottom takes the spare height, not the word-wrapped status label.
        form.analysisLayout.setStretch(form.analysisLayout.count() - 1, 1)
        form.operationCombo.currentIndexChanged.connect(self._operation_changed)
        for edit in (form.startAEdit, form.endAEdit, form.startBEdit, form.endBEdit):
            edit.setAllowNull(False)
        form.analysisExtentBox.setOutputCrs(WGS84)
        if canvas is not None:
            form.analysisExtentBox.setMapCanvas(canvas)
        form.resolutionSpin.setClearValue(0.0)
        # Not set: the data's own CRS and pixel grid, as the Processing algorithms' empty TARGET_CRS.
        form.analysisCrsWidget.setOptionVisible(QgsProjectionSelectionWidget.CrsOption.CrsNotSet, True)
        form.analysisCrsWidget.setNotSetText(self.tr("native (the data's own)"))
        form.analysisCrsWidget.setCrs(QgsCoordinateReferenceSystem())
        form.analysisCrsWidget.crsChanged.connect(self._crs_changed)
        self._crs_changed(form.analysisCrsWidget.crs())
        form.daskEdit.setText(settings.dask_scheduler())
        form.analysisProgress.hide()
        form.estimateButton.clicked.connect(self.estimate)
        form.runAnalysisButton.clicked.connect(self.run)
        form.cancelAnalysisButton.clicked.connect(self.cancel)
        form.collectionList.selectionModel().currentChanged.connect(lambda *_: self._collection_changed())
        self._operation_changed()

    def _crs_changed(self, crs: QgsCoordinateReferenceSystem) -> None:
        """Resolution in the chosen CRS's units: degrees need decimals that metres do not."""
        spin = self.form.resolutionSpin
        geographic = crs.isValid() and crs.isGeographic()
        spin.setDecimals(8 if geographic else 2)
        spin.setSingleStep(0.0001 if geographic else 10.0)
        metres = crs.isValid() and crs.mapUnits() == Qgis.DistanceUnit.Meters
        spin.setSuffix(" °" if geographic else " m" if metres else self.tr(" (CRS units)"))

    def _operation_changed(self) -> None:
        operation = self.form.operationCombo.currentData()
        product = operation if operation in products.PRODUCTS else None
        combo = self.form.methodCombo
        combo.clear()
        choices = statistics.STATISTICS if operation == STATISTICS_OP else (
            products.METHODS[product] if product else composite.METHODS)
        for choice in choices:
            combo.addItem(choice, choice)
        self.form.methodLabel.setText(
            self.tr("Statistic") if operation == STATISTICS_OP else self.tr("Aggregation")
            if product == products.MINICUBE else self.tr("Samples") if product == products.CHIPS else self.tr("Method"))
        difference = operation == DIFFERENCE_OP
        self.form.periodBLabel.setVisible(difference)
        for widget in (self.form.startBEdit, self.form.endBEdit):
            widget.setVisible(difference)
        self.form.periodALabel.setText(self.tr("Period A") if difference else self.tr("Period"))
        # Hidden, not greyed, where it does not apply: a greyed box still shows its tick, which read as
        # "extra bands on" for a difference or a statistic.
        self.form.extraBandsCheck.setVisible(operation in (COMPOSITE_OP, products.BUILDCUBE))
        for widget in (self.form.analysisMaskLabel, self.form.analysisMaskEdit):  # a minicube keeps every date
            widget.setVisible(product != products.MINICUBE)
        self.form.estimateButton.setEnabled(product in (None, products.BUILDCUBE))
        self.form.productBox.setVisible(product is not None)
        for used_by, names in products.ROWS.values():
            for name in names:
                getattr(self.form, name).setVisible(product in used_by)
        if product == products.MINICUBE and self.form.periodLengthEdit.text() == "P16D":
            self.form.periodLengthEdit.setText("P5D")
        self.form.formatCombo.clear()
        for label, value in products.FORMATS.get(product, ()):
            self.form.formatCombo.addItem(self.tr(label), value)
        self._format_changed()

    def _format_changed(self) -> None:
        """The output is a file (COG, NetCDF), a store or a folder, depending on what is written."""
        operation, fmt = self.form.operationCombo.currentData(), self.form.formatCombo.currentData()
        widget = self.form.outputFile
        folder = (operation, fmt) in ((products.BUILDCUBE, products.COG_STAC), (products.CHIPS, "npz"))
        widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory if folder else QgsFileWidget.StorageMode.SaveFile)
        widget.setFilter({"zarr": "Zarr store (*.zarr)", "netcdf": "NetCDF (*.nc)"}.get(
            fmt, "" if folder else "Cloud-Optimized GeoTIFF (*.tif)"))

    def _collection_changed(self) -> None:
        collection = self.browse.current_collection()
        if collection is None:
            return
        if collection.bbox:
            from qgis.core import QgsRectangle

            self.form.analysisExtentBox.setOriginalExtent(QgsRectangle(*collection.bbox), WGS84)
            self.form.analysisExtentBox.setOutputExtentFromOriginal()
        start, end = collection.interval
        if start and end:
            first = QDateTime.fromString(start[:10], "yyyy-MM-dd")
            last = QDateTime.fromString(end[:10], "yyyy-MM-dd")
            middle = first.addSecs(first.secsTo(last) // 2)
            self.form.startAEdit.setDateTime(first)
            self.form.endAEdit.setDateTime(middle)
            self.form.startBEdit.setDateTime(middle.addDays(1))
            self.form.endBEdit.setDateTime(last)

    # -- the request ---------------------------------------------------------------------------------
    def request(self) -> AnalysisRequest:
        """The engine's request; for a cube product, the composite request it is built from."""
        source, collection = self.browse.source, self.browse.current_collection()
        if source is None or collection is None:
            raise ValueError(self.tr("Choose a source and a collection in the Browse tab first."))
        operation = self.form.operationCombo.currentData()
        product = operation if operation in products.PRODUCTS else None
        if product:
            operation = COMPOSITE_OP
        form = self.form
        periods = [Period(utc_day(form.startAEdit.dateTime()), utc_day(form.endAEdit.dateTime(), True))]
        if operation == DIFFERENCE_OP:
            periods.append(Period(utc_day(self.form.startBEdit.dateTime()),
                                         utc_day(self.form.endBEdit.dateTime(), True)))
        bands = tuple(b.strip() for b in self.form.analysisBandsEdit.text().split(",") if b.strip())
        if not bands:
            raise ValueError(self.tr("Enter at least one band or index."))
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
        name = collection.id.removesuffix(".zarr")  # a Zarr cube's "collection" is its store's name
        output = self.form.outputFile.filePath().strip() or (
            products.default_output(product, self.form.formatCombo.currentData(), collection.id) if product else
            str(Path(tempfile.gettempdir()) / f"{DEFAULT_PREFIX}{operation}-{name}-{stamp}.tif"))
        method = self.form.methodCombo.currentData()
        extent = self.form.analysisExtentBox.outputExtent()
        access = self.browse.access.of(self.browse.source)
        cloud = self.form.analysisCloudSpin.value()
        try:
            quality_band, clear_values = mask_fields(self.form.analysisMaskEdit.text())
        except ValueError as error:
            raise ValueError(self.tr("Mask: {error}").format(error=error)) from None
        return AnalysisRequest(
            source=source, collection=collection.id, operation=operation, bands=bands, periods=tuple(periods),
            output=output,
            method=method if method in composite.METHODS else composite.MEDIAN,
            statistic=method if operation == STATISTICS_OP else statistics.MEAN,
            extra_bands=self.form.extraBandsCheck.isChecked() and operation == COMPOSITE_OP,
            fail_on_bad_input=self.form.failOnBadInputCheck.isChecked(),
            extent=None if extent.isEmpty() else (extent.xMinimum(), extent.yMinimum(),
                                                  extent.xMaximum(), extent.yMaximum()),
            resolution=self.form.resolutionSpin.value(),
            crs=crs_text(self.form.analysisCrsWidget.crs()),
            max_cloud=None if cloud >= 100 else float(cloud),
            quality_band=quality_band, clear_values=clear_values,
            dask_scheduler=self.form.daskEdit.text().strip(),
            credentials=tuple(sorted(access.credentials.items())),
            auth_headers=tuple(access.headers.items()),
        )

    # -- estimate and run ------------------------------------------------------------------------------
    def estimate(self) -> None:
        self._start(self.tr("Cubescope: estimating"), _estimate, self._estimated)

    def run(self) -> None:
        description = self.tr("Cubescope: {op}").format(op=self.form.operationCombo.currentText())
        if self.form.operationCombo.currentData() in products.PRODUCTS:
            self._start(description, products.run_product, self._product_done, self.product_job)
        else:
            self._start(description, _run, self._ran)

    def product_job(self) -> products.ProductJob:
        """The cube, minicube or chips job the widgets describe."""
        form, product = self.form, self.form.operationCombo.currentData()
        products.check_source(self.browse.source, product)
        analysis, source, fmt = self.request(), self.browse.source, form.formatCombo.currentData()
        method = form.methodCombo.currentData()
        if product == products.BUILDCUBE:
            request = products.cube_request(analysis, form.periodLengthEdit.text(), form.cyclicCheck.isChecked(), fmt)
        elif product == products.MINICUBE:
            request = products.minicube_request(analysis, source, self.browse.current_collection(), method,
                                                form.periodLengthEdit.text(), fmt, form.extraSourcesEdit.text())
        else:
            request = products.chip_request(analysis, source, method, fmt, form.chipSizeSpin.value(),
                                            form.maxMaskedSpin.value(), form.pointsLayerCombo.currentLayer(),
                                            form.labelLayerCombo.currentLayer(), form.labelFieldCombo.currentField())
        return products.job_for(product, request, source)

    def _start(self, description: str, function, on_success, make_request=None) -> None:
        try:
            request = (make_request or self.request)()
        except (ValueError, PermissionError) as error:
            self._fail(str(error))
            return
        self.cancel()
        task = CallTask(description, function, request)
        progress = self.form.analysisProgress
        task.progressChanged.connect(lambda value: self._task is task and progress.setValue(int(value)))
        task.succeeded.connect(lambda result: self._task is task and self._finish(on_success, request, result))
        task.failed.connect(lambda message: self._task is task and self._fail(message))
        self._task = task
        self.form.analysisProgress.setValue(0)
        self.form.analysisProgress.show()
        self.form.cancelAnalysisButton.setEnabled(True)
        self.form.runAnalysisButton.setEnabled(False)
        self.form.estimateButton.setEnabled(False)
        self.form.analysisStatus.setText(self.tr("{what}…").format(what=description.split(": ", 1)[-1]))
        QgsApplication.taskManager().addTask(task)

    def _idle(self) -> None:
        self._task = None
        self.form.analysisProgress.hide()
        self.form.cancelAnalysisButton.setEnabled(False)
        self.form.runAnalysisButton.setEnabled(True)
        self.form.estimateButton.setEnabled(self.form.operationCombo.currentData() not in (products.MINICUBE,
                                                                                          products.CHIPS))

    def _finish(self, handler, request, result) -> None:
        self._idle()
        handler(request, result)

    def _estimated(self, _request, volume) -> None:
        self.form.analysisStatus.setText(volume.describe())
        self.estimated.emit(volume)

    def _ran(self, request, path) -> None:
        # A file the user named keeps its name; a default one is named by what it holds, so that
        # several runs read apart in the layer tree.
        name = request.title if _is_default_output(Path(path)) else Path(path).stem
        layer = QgsRasterLayer(str(path), name, "gdal")
        if not layer.isValid():
            self._fail(self.tr("The result {path} cannot be opened").format(path=path))
            return
        style_result(layer, request)
        project = QgsProject.instance()
        # A run written over an earlier result replaces its layer, which would show the old pixels
        # (GDAL keeps the replaced file open) under the same name.
        project.removeMapLayers([old.id() for old in project.mapLayers().values()
                                 if old.source() == layer.source() and old is not layer])
        # On top of the layer tree, over the imagery, never inside the tile/date group of a loaded
        # scene that happens to be selected (where QGIS would insert it).
        project.addMapLayer(layer, False)
        project.layerTreeRoot().insertLayer(0, layer)
        # The whole path in the status line and the log; the bar names the layer the run added, on
        # one line: without the plugin's name as a title, which the dock's own bar needs not repeat.
        left_out = _left_out(path)
        if left_out:
            # A result with gaps is still a result: say so where the user looks, the inputs are in the log.
            message = self.tr("Wrote {path}; {count} input(s) could not be read and were left out (listed in "
                              "the Cubescope log)").format(path=path, count=left_out)
            self.form.analysisStatus.setText(message)
            log(message, "warning", bar=self.bar, title="", short=self.tr(
                "Added “{name}”; {count} input(s) left out (see the log)").format(name=name, count=left_out))
        else:
            self.form.analysisStatus.setText(self.tr("Wrote {path}").format(path=path))
            log(self.tr("Wrote {path}").format(path=path), "success", bar=self.bar, title="",
                short=self.tr("Added “{name}”").format(name=name))
        self.finished.emit(layer)

    def _product_done(self, job: products.ProductJob, result) -> None:
        if job.product == products.CHIPS:
            message = products.describe_chips(result)
        elif job.product == products.BUILDCUBE:
            source = products.built_cube_source(Path(result), job.request)
            message = self.tr("Built {path}; it is listed as the connection '{name}' in Browse").format(
                path=result, name=source.name)
            self.cube_built.emit(source)
        else:
            message = self.tr("Wrote {path}").format(path=result)
        self.form.analysisStatus.setText(message)
        log(message, "success", bar=self.bar)
        self.product_finished.emit(job.product, result)

    def _fail(self, message: str) -> None:
        self._idle()
        self.form.analysisStatus.setText(message)
        log(message, "warning" if message.startswith("Cancelled") else "critical", bar=self.bar)
        self.failed.emit(message)

    def cancel(self) -> None:
        """The Cancel button: the task ends and reports "Cancelled" in the tab."""
        _cancel(self._task)

    def close(self) -> None:
        """The plugin unloads: forget the task, then cancel it, so that its report finds no widget to
        update (they are deleted with the dock). Forgotten first: a task still queued reports its
        cancel at once, from within cancel()."""
        task, self._task = self._task, None
        _cancel(task)


def _cancel(task: CallTask | None) -> None:
    if task is not None:
        try:
            task.cancel()
        except RuntimeError:  # the C++ task finished and was deleted already
            pass


def _is_default_output(path: Path) -> bool:
    return path.parent == Path(tempfile.gettempdir()).absolute() and path.name.startswith(DEFAULT_PREFIX)
