"""Processing provider `cubescope` (toolbox, modeler, batch and qgis_process)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .demo_cube_algorithm import DemoCubeAlgorithm
from .search_items_algorithm import SearchItemsAlgorithm

ICON = Path(__file__).resolve().parents[2] / "resources" / "icon.svg"


class CubescopeProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "cubescope"

    def name(self) -> str:
        return "Cubescope"

    def longName(self) -> str:  # noqa: N802 (QGIS name)
        return "Cubescope: Earth-observation data cubes"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS name)
        self.addAlgorithm(DemoCubeAlgorithm())
        self.addAlgorithm(SearchItemsAlgorithm())
