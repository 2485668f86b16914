"""The Cubescope dock: Browse, Time series and Analysis tabs, and the sources combo."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsPointXY
from qgis.gui import QgsDockWidget, QgsMessageBar
from qgis.PyQt import uic
from qgis.PyQt.QtWidgets import QDialog, QMessageBox, QVBoxLayout, QWidget

from .. import settings
from ..stac.sources import Source
from .analysis_panel import AnalysisPanel
from .browse_panel import DEMO_NAME, BrowsePanel
from .connection_dialog import ConnectionDialog
from .timeseries_panel import TimeSeriesPanel

_FORM, _ = uic.loadUiType(str(Path(__file__).resolve().parents[2] / "ui" / "dock.ui"))

DEMO_SOURCE = "demo"


class CubescopeDock(QgsDockWidget):
    """Holds the tabs; owns the background tasks its panels start and cancels them when closed."""

    OBJECT_NAME = "CubescopeDock"

    def __init__(self, parent: QWidget | None = None, canvas=None) -> None:
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

        workdir = Path(QgsApplication.qgisSettingsDirPath()) / "cubescope" / "vrt"
        self.browse = BrowsePanel(self.form, self.message_bar, canvas, workdir, self)
        self.timeseries = TimeSeriesPanel(self.form, self.message_bar, canvas, self.browse, self)
        self.analysis = AnalysisPanel(self.form, self.message_bar, canvas, self.browse, self)
        self.analysis.cube_built.connect(self.add_built_cube)
        for button, icon in ((self.form.addSourceButton, "/symbologyAdd.svg"),
                             (self.form.editSourceButton, "/symbologyEdit.svg"),
                             (self.form.removeSourceButton, "/symbologyRemove.svg"),
                             (self.form.refreshSourceButton, "/mActionRefresh.svg")):
            button.setIcon(QgsApplication.getThemeIcon(icon))
        self.form.addSourceButton.clicked.connect(self.add_source)
        self.form.editSourceButton.clicked.connect(self.edit_source)
        self.form.removeSourceButton.clicked.connect(self.remove_source)
        self.form.refreshSourceButton.clicked.connect(self._open_selected_source)
        self._fill_sources()
        self.form.sourceCombo.currentIndexChanged.connect(self._open_selected_source)

    # -- the sources combo --------------------------------------------------------------------------
    def _fill_sources(self, select: str = DEMO_SOURCE) -> None:
        combo = self.form.sourceCombo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(QgsApplication.getThemeIcon("/mIconFolder.svg"), self.tr(DEMO_NAME), DEMO_SOURCE)
        for source in settings.all_sources():
            icon = "/mIconCloud.svg" if source.preset else "/mIconConnect.svg"
            combo.addItem(QgsApplication.getThemeIcon(icon), source.name, source)
        index = combo.findData(select) if select == DEMO_SOURCE else combo.findText(select)
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)
        self._update_buttons()

    def _update_buttons(self) -> None:
        data = self.form.sourceCombo.currentData()
        editable = isinstance(data, Source) and not data.preset
        self.form.editSourceButton.setEnabled(editable)
        self.form.removeSourceButton.setEnabled(editable)

    def current_source(self) -> Source | None:
        data = self.form.sourceCombo.currentData()
        return data if isinstance(data, Source) else None

    def _open_selected_source(self) -> None:
        self._update_buttons()
        data = self.form.sourceCombo.currentData()
        if data == DEMO_SOURCE:
            self.browse.open_demo()
        elif isinstance(data, Source):
            self.browse.open_source(data)

    def open_demo_cube(self, root: Path | None = None) -> None:
        """Select the demo cube and list its collections, generating it first if needed."""
        self.form.sourceCombo.blockSignals(True)
        self.form.sourceCombo.setCurrentIndex(self.form.sourceCombo.findData(DEMO_SOURCE))
        self.form.sourceCombo.blockSignals(False)
        self.browse.open_demo(root)

    def open_source(self, source: Source) -> None:
        """Select (adding it to the combo if new) and open ``source``."""
        combo = self.form.sourceCombo
        index = combo.findText(source.name)
        if index < 0:
            combo.addItem(QgsApplication.getThemeIcon("/mIconConnect.svg"), source.name, source)
            index = combo.count() - 1
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        self._update_buttons()
        self.browse.open_source(source)

    def add_source(self) -> None:
        taken = {self.form.sourceCombo.itemText(i) for i in range(self.form.sourceCombo.count())}
        dialog = ConnectionDialog(self, taken_names=taken)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            source = dialog.source()
            settings.upsert_source(source)
            self._fill_sources(source.name)
            self._open_selected_source()

    def add_built_cube(self, source: Source) -> None:
        """A cube built in the Analysis tab joins the connections; the open source stays selected."""
        settings.upsert_source(source)
        self._fill_sources(self.form.sourceCombo.currentText() if self.current_source() else DEMO_SOURCE)

    def edit_source(self) -> None:
        source = self.current_source()
        if source is None or source.preset:
            return
        taken = {self.form.sourceCombo.itemText(i) for i in range(self.form.sourceCombo.count())}
        dialog = ConnectionDialog(self, source, taken_names=taken)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            edited = dialog.source()
            settings.upsert_source(edited, replace=source.name)
            self._fill_sources(edited.name)
            self._open_selected_source()

    def remove_source(self) -> None:
        source = self.current_source()
        if source is None or source.preset:
            return
        answer = QMessageBox.question(self, self.tr("Remove connection"),
                                      self.tr("Remove the connection '{name}'?").format(name=source.name))
        if answer == QMessageBox.StandardButton.Yes:
            settings.remove_source(source.name)
            self._fill_sources()
            self._open_selected_source()

    # -- compatibility helpers used by the plugin and tests --------------------------------------------
    @property
    def demo_cube(self):
        return self.browse.demo_cube

    def collection_ids(self) -> list[str]:
        return self.browse.collection_ids()

    # -- time series -----------------------------------------------------------------------------
    def show_picked_point(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem) -> None:
        """The map tool's click: plot that pixel through time."""
        self.timeseries.pick(point, crs)

    # -- lifecycle -------------------------------------------------------------------------------
    def cancel_tasks(self) -> None:
        """Cancel every running task and detach it from the widgets: after this, a task's late report
        (progress, result, "Cancelled") touches nothing, so the dock can be deleted under it."""
        self.browse.cancel_all()
        self.timeseries.close()
        self.analysis.close()
