"""A regular cube's request, formats and names, shared by the builder and its stores."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ...analysis.engine.analysis_request import COMPOSITE_OP, AnalysisRequest, Period
from ...analysis.ops.blocks import CLEAROB, TOTALOB
from .timeline import Step, parse_step, regular_periods

ZARR, COG_STAC = "zarr", "cog-stac"
FORMATS = (ZARR, COG_STAC)
PROGRESS_FILE = "cubescope-build.json"
#: Spatial chunk side of the Zarr variables (their time chunk is the whole timeline).
CHUNK_XY = 256
TIME_UNITS = "seconds since 1970-01-01 00:00:00"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COUNT_BANDS = (CLEAROB, TOTALOB)

Log = Callable[[str], None]


class CubeError(ValueError):
    """A cube that cannot be built as asked (the output holds another cube, bad timeline)."""


@dataclass(frozen=True)
class CubeRequest:
    """A regular cube: the composite ``request`` over its whole range, cut into periods of ``step``."""

    request: AnalysisRequest
    """A composite request: its one period is the cube's time range, its output the cube's path
    (a ``.zarr`` folder, or the folder of the COGs and catalog)."""
    step: str = "P16D"
    """ISO 8601 duration of a period: P16D, P8D, P1M..."""
    cyclic: bool = False
    """Restart the periods on January 1 of every year (Brazil Data Cube style)."""
    format: str = ZARR
    """"zarr" or "cog-stac"."""

    def __post_init__(self) -> None:
        if self.request.operation != COMPOSITE_OP:
            raise ValueError(f"A cube is built from a composite request, not a {self.request.operation}")
        if self.format not in FORMATS:
            raise ValueError(f"Unknown cube format '{self.format}'; choose one of {', '.join(FORMATS)}")
        parse_step(self.step)

    @property
    def periods(self) -> list[Period]:
        whole = self.request.periods[0]
        return regular_periods(whole.start, whole.end, self.step, self.cyclic)

    @property
    def output(self) -> Path:
        return Path(self.request.output).absolute()


def collection_id(cube: CubeRequest) -> str:
    step: Step = parse_step(cube.step)
    text = f"{cube.request.collection}-{cube.request.method}-{step.text}{'-cyclic' if cube.cyclic else ''}"
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower())
