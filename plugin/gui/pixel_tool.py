"""The map tool that picks a pixel for its time series."""

from __future__ import annotations

from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY
from qgis.gui import QgsMapCanvas, QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt, pyqtSignal


class PixelPickTool(QgsMapToolEmitPoint):
    """Emits the clicked point with the canvas CRS, so readers can transform it into each item's CRS."""

    picked = pyqtSignal(QgsPointXY, QgsCoordinateReferenceSystem)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.canvasClicked.connect(self._emit)

    def _emit(self, point: QgsPointXY, button) -> None:
        if button == Qt.MouseButton.LeftButton:
            self.picked.emit(point, self.canvas().mapSettings().destinationCrs())
