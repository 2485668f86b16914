"""What a user asks of the engine: an operation on bands over one or two periods, and the output.

The dataclasses are checked when built (a period that starts after it ends, an unknown method), so a
request that exists can be run. The dock, the Processing algorithms and the products build them; the
planner and the pipeline read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ...stac.sources import Source, guess_kind
from ..ops import composite, statistics
from .executor import CONNECT_TIMEOUT_S
from .grid import MAX_PIXELS

COMPOSITE_OP, DIFFERENCE_OP, STATISTICS_OP = "composite", "difference", "statistics"
OPERATIONS = (COMPOSITE_OP, DIFFERENCE_OP, STATISTICS_OP)

Progress = Callable[[float], None]
"""Percent done, 0 to 100."""


@dataclass(frozen=True)
class Period:
    """A closed date range; naive datetimes are UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, datetime):
                raise ValueError(f"The period {name} must be a datetime, got {value!r}")
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if self.start > self.end:
            raise ValueError(f"The period starts ({self.start:%Y-%m-%d}) after it ends ({self.end:%Y-%m-%d})")

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d}/{self.end:%Y-%m-%d}"


@dataclass(frozen=True)
class AnalysisRequest:
    """Everything a run needs, copied on the main thread before a task starts."""

    source: Source | str
    """A connection, or the URL/path of a STAC API or static catalog."""
    collection: str
    operation: str
    """"composite", "difference" (period B minus period A) or "statistics"."""
    bands: tuple[str, ...]
    """Band names (asset key, common name or band id) and/or index names (NDVI, EVI, ...)."""
    periods: tuple[Period, ...]
    """One period; two for a difference (A, then B)."""
    output: str
    """The GeoTIFF (COG) to write."""
    method: str = composite.MEDIAN
    """Composite method (composite and difference)."""
    statistic: str = statistics.MEAN
    extra_bands: bool = False
    """Add CLEAROB, TOTALOB (and PROVENANCE for best-pixel and quality-mosaic) to a composite."""
    extent: tuple[float, float, float, float] | None = None
    """(xmin, ymin, xmax, ymax) in ``extent_crs``; None for the items' whole extent."""
    extent_crs: str = "EPSG:4326"
    resolution: float = 0.0
    """Pixel size in the output CRS's units; 0 for the finest native resolution of the bands."""
    crs: str = ""
    """Output CRS ("EPSG:32634", WKT); empty for the items' native CRS."""
    max_cloud: float | None = None
    """Items with more eo:cloud_cover (percent) are not used; None for all."""
    quality_band: str = ""
    """The quality band; empty to find it from the collection, "none" to use no mask."""
    clear_values: str = ""
    """Clear classes ("4,5,6") or masked bits ("bits:1,3"); empty for the collection's known rule."""
    dask_scheduler: str = ""
    """Address of a Dask scheduler; empty to compute with local threads."""
    scheduler_timeout: float = CONNECT_TIMEOUT_S
    """Seconds to wait for the scheduler to answer."""
    resampling: str = "nearest"
    """odc-stac resampling of the data bands (the quality band is always nearest)."""
    chunk_size: int = 0
    """Block side in pixels; 0 to choose from the number of dates and bands."""
    threads: int = 0
    """Local threads; 0 for one per CPU."""
    max_pixels: int = MAX_PIXELS
    gdal_options: tuple[tuple[str, str], ...] = ()
    """Extra GDAL options for reading (proxy, auth headers from QGIS)."""
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Object-store keys for s3:// assets (from the connection's auth configuration), in memory only."""
    auth_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """HTTP auth headers of the source (from the connection's auth configuration) for its assets on
    its own site (`hrefs.within_auth_scope`), in memory only."""
    token: str = field(default="", repr=False)
    """Access token for sources signed with it (Brazil Data Cube)."""
    max_items: int = 0
    """Stop the search after this many items per period; 0 for all."""
    fail_on_bad_input: bool = False
    """Stop at the first input that cannot be read, instead of leaving it out and reporting it."""

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"Unknown operation '{self.operation}'; choose one of {', '.join(OPERATIONS)}")
        object.__setattr__(self, "bands", tuple(b.strip() for b in self.bands if b and b.strip()))
        if not self.bands:
            raise ValueError("Choose at least one band or index")
        wanted = 2 if self.operation == DIFFERENCE_OP else 1
        if len(self.periods) != wanted:
            raise ValueError(f"A {self.operation} needs {wanted} period(s), got {len(self.periods)}")
        if self.operation == STATISTICS_OP:
            statistics.check_statistic(self.statistic)
        else:
            composite.check_method(self.method)
        if not str(self.output).strip():
            raise ValueError("Choose an output file")
        if not isinstance(self.resolution, (int, float)) or not math.isfinite(self.resolution) or self.resolution < 0:
            raise ValueError(f"The resolution must be 0 (native) or a positive number, got {self.resolution!r}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise ValueError(f"The maximum cloud cover must be between 0 and 100 %, got {self.max_cloud!r}")

    @property
    def title(self) -> str:
        """What the result is, for a layer name: "NDVI median 2023-06-01/2023-08-31",
        "NDVI median difference 2024-05-01/2024-07-31 − 2023-06-01/2023-09-30", "NDVI std 2023-…"."""
        what = ",".join(self.bands)
        if self.operation == STATISTICS_OP:
            return f"{what} {self.statistic} {self.periods[0].label}"
        if self.operation == DIFFERENCE_OP:
            return f"{what} {self.method} difference {self.periods[1].label} − {self.periods[0].label}"
        return f"{what} {self.method} {self.periods[0].label}"

    @property
    def connection(self) -> Source:
        if isinstance(self.source, Source):
            return self.source
        url = str(self.source).strip()
        if not url:
            raise ValueError("Choose a STAC API or catalog")
        return Source(name=url, kind=guess_kind(url), url=url)
