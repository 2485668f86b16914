"""Wires Cubescope into QGIS: dock, toolbar and menu actions, the pixel map tool, the Processing provider.

Nothing else lives here; everything this adds to QGIS it removes again in ``unload`` so that a
reload (Plugin Reloader, ``qgis.utils.reloadPlugin``) leaves no duplicates.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QAction, QIcon

from .cube.header_files import remove_header_files
from .dependencies.activation import activate_packages_folder, packages_folder
from .dependencies.requirements import missing_requirements
from .gui.dependencies_notice import DependenciesNotice
from .gui.dock import CubescopeDock
from .gui.pixel_tool import PixelPickTool
from .gui.project_restore import ProjectRestorer
from .log import log
from .network import apply_gdal_http_settings
from .processing.provider import CubescopeProvider

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
MENU = "&Cubescope"
TOOLBAR_NAME = "CubescopeToolbar"


def tr(text: str) -> str:
    return QCoreApplication.translate("Cubescope", text)


class CubescopePlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        # Before anything imports an optional package, and for qgis_process too (no initGui there).
        try:
            activate_packages_folder(packages_folder(QgsApplication.qgisSettingsDirPath()))
        except ValueError as error:
            log(str(error), "warning")
        self.provider: CubescopeProvider | None = None
        self.dock: CubescopeDock | None = None
        self.toolbar = None
        self.actions: list[QAction] = []
        self.pixel_tool: PixelPickTool | None = None
        self.notice: DependenciesNotice | None = None
        self.restorer: ProjectRestorer | None = None

    # -- Processing (also called alone by qgis_process, which has no GUI) ----------------------
    def initProcessing(self) -> None:  # noqa: N802 (QGIS name)
        if self.provider is None:
            self.provider = CubescopeProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # -- GUI ---------------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 (QGIS name)
        self.initProcessing()
        apply_gdal_http_settings()
        main_window = self.iface.mainWindow()

        self.dock = CubescopeDock(main_window, self.iface.mapCanvas())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)

        self.toolbar = self.iface.addToolBar(tr("Cubescope"))
        self.toolbar.setObjectName(TOOLBAR_NAME)

        dock_action = self.dock.toggleViewAction()
        dock_action.setIcon(QIcon(str(RESOURCES / "icon.svg")))
        dock_action.setText(tr("Cubescope panel"))
        dock_action.setObjectName("CubescopeShowDock")
        self._add_action(dock_action)

        # Parented to our toolbar so that deleting the toolbar on unload deletes the action too.
        pick_action = QAction(QIcon(str(RESOURCES / "timeseries.svg")), tr("Pixel time series"), self.toolbar)
        pick_action.setObjectName("CubescopePixelTool")
        pick_action.setCheckable(True)
        pick_action.setToolTip(tr("Click the map to plot that pixel through time"))
        self.pixel_tool = PixelPickTool(self.iface.mapCanvas())
        self.pixel_tool.setAction(pick_action)
        self.pixel_tool.picked.connect(self.dock.show_picked_point)
        pick_action.triggered.connect(self._activate_pixel_tool)
        self._add_action(pick_action)

        missing = missing_requirements()
        if missing:
            self.notice = DependenciesNotice(self.iface, missing)
            self.notice.show()

        self.restorer = ProjectRestorer(main_window)
        self.dock.open_demo_cube()
        log(tr("Cubescope loaded"))

    def _add_action(self, action: QAction) -> None:
        self.toolbar.addAction(action)
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)

    def _activate_pixel_tool(self) -> None:
        self.iface.mapCanvas().setMapTool(self.pixel_tool)

    def unload(self) -> None:
        canvas = self.iface.mapCanvas()
        if self.pixel_tool is not None:
            if canvas.mapTool() is self.pixel_tool:
                canvas.unsetMapTool(self.pixel_tool)
            self.pixel_tool.deleteLater()
            self.pixel_tool = None
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
        self.actions.clear()
        # Detach before deleteLater: a reload right after unload must not find the old widgets.
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dock is not None:
            self.dock.cancel_tasks()
            self.iface.removeDockWidget(self.dock)
            self.dock.setParent(None)
            self.dock.deleteLater()
            self.dock = None
        if self.notice is not None:
            self.notice.remove()
            self.notice.deleteLater()
            self.notice = None
        if self.restorer is not None:
            self.restorer.close()
            self.restorer.deleteLater()
            self.restorer = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        remove_header_files()  # auth headers written for GDAL must not outlive the plugin on disk
