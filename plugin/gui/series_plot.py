"""The time-series plot: pyqtgraph with a date axis, one curve per point and band, observations marked,
masked ones drawn hollow (or hidden), hover tooltips, click to open that date's scene; under it, the
land-use band of WLTS trajectories (`land_use_band`), on the same time axis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timezone

import pyqtgraph as pg
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QVBoxLayout, QWidget

from ..analysis.timeseries import Observation
from . import pyqtgraph_compat
from .land_use_band import LandUseBand

pyqtgraph_compat.install()

# Colour-blind safe (Okabe-Ito), one per clicked point.
POINT_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
# Band/index line styles within one point's colour.
LINE_STYLES = [Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine]


def colour_of(point_number: int) -> QColor:
    return QColor(POINT_COLOURS[point_number % len(POINT_COLOURS)])


@dataclass
class _Curve:
    """One band of one point: the line (clear observations) and the marks (all observations)."""

    line: pg.PlotDataItem
    marks: pg.ScatterPlotItem
    observations: list[Observation] = field(default_factory=list)


class SeriesPlot(QWidget):
    """Curves are kept and updated with setData as observations stream in."""

    observation_clicked = pyqtSignal(object)  # Observation

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        # Local options only: pg.setConfigOption would change every other plugin's plots.
        self.widget = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom", utcOffset=0)},
                                    background="w")
        self.widget.showGrid(x=True, y=True, alpha=0.25)
        self.widget.getAxis("left").setPen("k")
        self.widget.getAxis("bottom").setPen("k")
        self.widget.getAxis("left").setTextPen("k")
        self.widget.getAxis("bottom").setTextPen("k")
        self.legend = self.widget.addLegend(offset=(8, 8), labelTextColor="k")
        layout.addWidget(self.widget)
        self.band = LandUseBand(self, self.legend)
        layout.addWidget(self.band)
        self.band.link_to(self.widget)
        self._curves: dict[tuple[int, str], _Curve] = {}
        self.hide_masked = False

    # -- data ------------------------------------------------------------------------------------
    def add_observation(self, point: int, label: str, band: str, band_number: int,
                        observation: Observation) -> None:
        key = (point, band)
        curve = self._curves.get(key)
        if curve is None:
            curve = self._new_curve(point, f"{label} {band}", band_number)
            self._curves[key] = curve
        curve.observations.append(observation)
        curve.observations.sort(key=lambda o: o.datetime)
        self._redraw(curve, point, band, band_number)

    def _new_curve(self, point: int, name: str, band_number: int) -> _Curve:
        colour = colour_of(point)
        pen = pg.mkPen(colour, width=2, style=LINE_STYLES[band_number % len(LINE_STYLES)])
        line = self.widget.plot([], [], pen=pen, name=name, connect="finite")
        marks = pg.ScatterPlotItem(size=8, hoverable=True, tip=self._tip, hoverSize=11)
        marks.sigClicked.connect(self._clicked)
        self.widget.addItem(marks)
        return _Curve(line, marks)

    def _redraw(self, curve: _Curve, point: int, band: str, band_number: int) -> None:
        colour = colour_of(point)
        xs, ys, spots = [], [], []
        for observation in curve.observations:
            value = observation.values.get(band, math.nan)
            x = observation.datetime.replace(tzinfo=observation.datetime.tzinfo or timezone.utc).timestamp()
            if not math.isfinite(value):
                continue
            masked = not observation.valid
            # Masked observations break the line and are drawn hollow; "hide masked" drops them.
            xs.append(x)
            ys.append(math.nan if masked else value)
            if masked and self.hide_masked:
                continue
            spots.append({
                "pos": (x, value), "data": (observation, band),
                "brush": pg.mkBrush(255, 255, 255, 230) if masked else pg.mkBrush(colour),
                "pen": pg.mkPen(colour, width=1.5),
                "symbol": "o" if band_number == 0 else ("t", "s", "d")[(band_number - 1) % 3],
            })
        curve.line.setData(xs, ys, connect="finite")
        curve.marks.setData(spots)

    def set_hide_masked(self, hide: bool) -> None:
        self.hide_masked = hide
        for (point, band), curve in self._curves.items():
            band_number = sorted({b for p, b in self._curves if p == point}).index(band)
            self._redraw(curve, point, band, band_number)

    def clear(self) -> None:
        for curve in self._curves.values():
            self.widget.removeItem(curve.line)
            self.widget.removeItem(curve.marks)
        self._curves.clear()
        self.band.clear()
        self.legend.clear()

    def legend_names(self) -> list[str]:
        """The legend's entries: curves ("P1 ndvi") and land-use classes."""
        return [label.text for _sample, label in self.legend.items]

    def curve_count(self) -> int:
        return len(self._curves)

    def points_of(self, key: tuple[int, str]) -> list[tuple[float, float]]:
        """Marked (x, y) of one curve, for tests and export."""
        return [tuple(spot.pos()) for spot in self._curves[key].marks.points()] if key in self._curves else []

    # -- interaction -------------------------------------------------------------------------------
    @staticmethod
    def _tip(x: float, y: float, data) -> str:
        observation, band = data
        state = "" if observation.valid else "  (masked)"
        when = observation.period or f"{observation.datetime:%Y-%m-%d}"  # an interval item shows its interval
        return f"{when}  {band} = {y:.4f}{state}\n{observation.item_id}"

    def _clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.observation_clicked.emit(points[0].data()[0])

    def export_png(self, path: str) -> bool:
        return self.grab().save(path, "PNG")  # with the land-use band
