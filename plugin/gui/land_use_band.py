"""The land-use band under the time-series plot: one row per clicked point, one coloured bar per
trajectory step (a WLTS class from its date to the next), the class names in the plot's legend.

Its time axis is linked to the plot's, so a step lines up with the observations of its dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pyqtgraph as pg
from qgis.PyQt.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ..cube.wlts_client import Trajectory, class_colour
from . import pyqtgraph_compat

pyqtgraph_compat.install()

ROW_PX = 22
"""Height of one point's row."""
AXIS_PX = 48
"""Width of the left axes of the plot and the band, equal so that their dates line up."""


@dataclass
class _Row:
    label: str
    trajectory: Trajectory
    bars: pg.BarGraphItem | None = None
    spans: list[tuple[float, float, str, str]] = field(default_factory=list)
    """(start, end, class, colour) per step, x as POSIX seconds."""


class LandUseBand(QWidget):
    """Hidden until a trajectory is added; ``legend`` (the plot's) gets one entry per class."""

    def __init__(self, parent: QWidget | None = None, legend: pg.LegendItem | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.widget = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom", utcOffset=0)},
                                    background="w")
        self.widget.setMouseEnabled(x=True, y=False)
        self.widget.hideButtons()
        for side in ("left", "bottom"):
            self.widget.getAxis(side).setPen("k")
            self.widget.getAxis(side).setTextPen("k")
        self.widget.getAxis("bottom").setStyle(showValues=False)
        self.widget.setTitle("Land use (WLTS)", color="k", size="9pt")
        layout.addWidget(self.widget)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.legend = legend
        self._rows: list[_Row] = []
        self._samples: dict[str, pg.ScatterPlotItem] = {}
        self.hide()

    def link_to(self, plot: pg.PlotWidget) -> None:
        """Share ``plot``'s time axis, and one left axis width so the dates line up."""
        self.widget.setXLink(plot)
        for axis in (plot.getAxis("left"), self.widget.getAxis("left")):
            axis.setWidth(AXIS_PX)

    # -- data ------------------------------------------------------------------------------------
    def add(self, label: str, trajectory: Trajectory) -> None:
        """One row for ``trajectory`` (a point's steps), below the rows already shown."""
        row = _Row(label, trajectory)
        number = len(self._rows)
        for step in trajectory.steps:
            end = step.end or step.date + timedelta(days=365)
            colour = class_colour(step.class_name)
            row.spans.append((step.date.timestamp(), end.timestamp(), step.class_name, colour))
            self._add_to_legend(step.class_name, colour)
        if row.spans:
            row.bars = pg.BarGraphItem(
                x0=[s[0] for s in row.spans], x1=[s[1] for s in row.spans], y0=[-number - 0.4] * len(row.spans),
                y1=[-number + 0.4] * len(row.spans), brushes=[pg.mkBrush(s[3]) for s in row.spans],
                pens=[pg.mkPen("k", width=0.5) for _ in row.spans])
            self.widget.addItem(row.bars)
        self._rows.append(row)
        self._relabel()
        self.show()

    def _add_to_legend(self, name: str, colour: str) -> None:
        if name in self._samples:
            return
        sample = pg.ScatterPlotItem(symbol="s", size=11, brush=pg.mkBrush(colour), pen=pg.mkPen("k", width=0.5))
        self._samples[name] = sample
        if self.legend is not None:
            self.legend.addItem(sample, name)

    def _relabel(self) -> None:
        self.widget.getAxis("left").setTicks([[(-n, row.label) for n, row in enumerate(self._rows)]])
        self.widget.setYRange(-len(self._rows) + 0.5, 0.5, padding=0)
        self.setFixedHeight(34 + ROW_PX * max(1, len(self._rows)))
        lines = []
        for row in self._rows:
            steps = ", ".join(f"{step.date:%Y-%m-%d} {step.class_name}" for step in row.trajectory.steps)
            lines.append(f"{row.label}: {steps or 'no class at this point'}")
        self.widget.setToolTip("\n".join(lines))

    def clear(self) -> None:
        for row in self._rows:
            if row.bars is not None:
                self.widget.removeItem(row.bars)
        self._rows.clear()
        if self.legend is not None:
            for sample in self._samples.values():
                self.legend.removeItem(sample)
        self._samples.clear()
        self.hide()

    # -- what is shown (tests, export) --------------------------------------------------------------
    def row_count(self) -> int:
        return len(self._rows)

    def spans_of(self, number: int) -> list[tuple[float, float, str, str]]:
        """(start, end, class, colour) of row ``number``'s bars."""
        return list(self._rows[number].spans)

    def legend_names(self) -> list[str]:
        return list(self._samples)
