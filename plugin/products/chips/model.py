"""What a chip job is asked for and what it gives: the request (validated when made), one chip's
window, the result, and the reasons a chip or sample is skipped. Nothing imports QGIS."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from ...analysis.engine.executor import CONNECT_TIMEOUT_S
from .splits import BlockSplitter

COMPOSITE, DATES, FORECAST = "composite", "dates", "forecast"
MODES = (COMPOSITE, DATES, FORECAST)
ZARR, NPZ = "zarr", "npz"
IN_MEMORY = 256 * 1024 * 1024
"""Jobs whose whole stack (float32 bytes) is at most this are read at once; larger ones chip by chip."""

OUTSIDE = "outside the data"
CROSSES = "crosses a split boundary"
MASKED = "too many masked pixels"
NO_DATE = "no acquisition on the chosen date"
TOO_SHORT = "too few dates for a context/target window"


class ChipError(ValueError):
    """Chips that cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class ChipRequest:
    """Everything a chip job needs, copied on the main thread before a task starts."""

    source: str
    """STAC API or static catalog (URL or path)."""
    collection: str
    bands: tuple[str, ...]
    start: datetime
    end: datetime
    output: str
    """A ``.zarr`` store, or a folder for ``.npz`` files; the manifest goes beside (``<output>.csv``)."""
    points: tuple[tuple[str, float, float], ...] = ()
    """(id, x, y) in ``points_crs``; or give ``extent``."""
    points_crs: str = "EPSG:4326"
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str = "EPSG:4326"
    stride: int = 0
    """Pixels between chips on a regular grid; 0 for the chip size (chips side by side)."""
    chip_size: int = 256
    resolution: float = 0.0
    """0 for the bands' finest native resolution."""
    crs: str = ""
    """Empty for the items' native CRS."""
    mode: str = COMPOSITE
    """"composite" (median of clear values over the period), "dates" (one sample per date) or
    "forecast" (context/target windows)."""
    dates: tuple[date, ...] = ()
    """For "dates": the dates wanted; empty for every acquisition."""
    context: int = 0
    target: int = 0
    shift: int = 1
    """Dates between the starts of consecutive forecasting windows."""
    label_source: str = ""
    label_collection: str = ""
    label_band: str = ""
    label_polygons: tuple[tuple[dict, float], ...] = ()
    """(GeoJSON geometry in ``label_polygons_crs``, class value) rasterised per chip (0 elsewhere)."""
    label_polygons_crs: str = "EPSG:4326"
    max_masked: float = 0.5
    """Skip samples with a larger fraction of masked (not clear or no-data) pixels."""
    quality_band: str = ""
    """Empty for the collection's own, "none" for no mask."""
    clear_values: str = ""
    block_size: float = 2560.0
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    buffer: float = 0.0
    format: str = ZARR
    dask_scheduler: str = ""
    """Address of a Dask scheduler (tcp://host:8786); empty to compute with local threads."""
    scheduler_timeout: float = CONNECT_TIMEOUT_S
    """Seconds to wait for the scheduler (and for its first worker) before giving up."""
    fail_on_bad_input: bool = False
    """Stop at the first input that cannot be read, instead of leaving it out and reporting it."""
    read_at_once: int = IN_MEMORY
    """Bytes (float32 stack of every date and band) up to which the job is read at once and cut in
    memory; larger jobs are read chip by chip. 0: always chip by chip."""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        object.__setattr__(self, "bands", tuple(b.strip() for b in self.bands if b and b.strip()))
        if not self.bands:
            raise ChipError("Choose at least one band")
        if bool(self.points) == (self.extent is not None):
            raise ChipError("Give either points or an extent")
        if self.mode not in MODES:
            raise ChipError(f"Unknown mode '{self.mode}'; choose one of {', '.join(MODES)}")
        if self.mode == FORECAST and (self.context < 1 or self.target < 1 or self.shift < 1):
            raise ChipError("Forecasting windows need a context and a target of at least 1 date and a shift >= 1, "
                            f"got {self.context}, {self.target}, {self.shift}")
        if not 2 <= self.chip_size <= 4096:
            raise ChipError(f"The chip size must be 2 to 4096 pixels, got {self.chip_size}")
        if not 0 <= self.max_masked <= 1:
            raise ChipError(f"The masked-pixel threshold is a fraction from 0 to 1, got {self.max_masked}")
        if self.format not in (ZARR, NPZ):
            raise ChipError(f"Unknown format '{self.format}'; choose {ZARR} or {NPZ}")
        BlockSplitter(self.block_size, self.seed, self.fractions, self.buffer)


@dataclass
class Chip:
    """One window on the grid."""

    id: str
    row: int
    col: int
    bounds: tuple[float, float, float, float]
    split: str | None = None
    reason: str = ""


@dataclass
class ChipResult:
    output: Path
    manifest: Path
    samples: int
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> how many chips or samples were skipped for it."""
