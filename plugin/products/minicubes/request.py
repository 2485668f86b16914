"""What a minicube is asked for: its sources, cadence, period, size and format, and the grid that follows.

`MinicubeRequest` is copied from the dock or Processing on the main thread and checked on creation;
`minicube_grid` places the common grid (the UTM zone of the centre unless a CRS is given) and refuses
one larger than the format allows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ...analysis.engine.executor import CONNECT_TIMEOUT_S
from ...analysis.engine.grid import OutputGrid, snap, transform_bounds, transform_point
from ...stac.sources import SourceKind, guess_kind
from .errors import MinicubeError
from .store import NETCDF, ZARR

AGGREGATIONS = ("mean", "min", "max", "sum", "median", "first")
STATIC = "static"
NATIVE = "native"
MAX_SIDE = 16384
"""Refuse Zarr minicubes wider or taller than this many pixels: written block by block their memory
stays bounded, but the task graph and the run time grow with the area (a minicube is small)."""
MAX_SIDE_NETCDF = 4096
"""The limit for NetCDF, which holds the whole minicube in memory while it is written (see
:mod:`.store`)."""


def max_side(fmt: str) -> int:
    """The largest side in pixels a minicube may have in ``fmt``."""
    return MAX_SIDE_NETCDF if fmt == NETCDF else MAX_SIDE


@dataclass(frozen=True)
class SourceSpec:
    """One source of a minicube."""

    url: str
    """A STAC API or static catalog (URL or path), or a Zarr store (``.zarr``)."""
    collection: str
    """The STAC collection; ignored for Zarr stores."""
    bands: tuple[str, ...]
    """Band names (asset key or common name) or Zarr variable names; ``name=band`` renames."""
    aggregation: str = "mean"
    """How observations within one cadence step combine, or "static" for a layer without time."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(b.strip() for b in self.bands if b and b.strip()))
        if not self.url.strip():
            raise MinicubeError("A source has no URL or path")
        if not self.bands:
            raise MinicubeError(f"The source {self.url} lists no bands")
        if self.aggregation not in (*AGGREGATIONS, STATIC):
            raise MinicubeError(f"Unknown aggregation '{self.aggregation}' for {self.url}; choose one of "
                                f"{', '.join(AGGREGATIONS)} or {STATIC}")
        if not self.is_zarr and not self.collection.strip():
            raise MinicubeError(f"The STAC source {self.url} needs a collection")

    @property
    def names(self) -> tuple[str, ...]:
        """The minicube's variable names (``elevation`` for ``elevation=data``)."""
        return tuple(b.split("=", 1)[0].strip() for b in self.bands)

    @property
    def sources(self) -> tuple[str, ...]:
        """The bands or variables read (``data`` for ``elevation=data``)."""
        return tuple(b.split("=", 1)[-1].strip() for b in self.bands)

    @property
    def is_zarr(self) -> bool:
        return guess_kind(self.url) == SourceKind.ZARR or any(Path(self.url, key).is_file()
                                                              for key in (".zgroup", "zarr.json"))


def parse_sources(text: str) -> tuple[SourceSpec, ...]:
    """``url|collection|band1,band2|aggregation`` entries separated by ``;`` or new lines."""
    specs = []
    for entry in re.split(r"[;\n]", text):
        if not entry.strip():
            continue
        parts = [p.strip() for p in entry.split("|")]
        if len(parts) not in (3, 4):
            raise MinicubeError(f"'{entry.strip()}' is not url|collection|bands|aggregation")
        specs.append(SourceSpec(parts[0], parts[1], tuple(parts[2].split(",")),
                                parts[3] if len(parts) == 4 and parts[3] else "mean"))
    if not specs:
        raise MinicubeError("Give at least one source (url|collection|bands|aggregation)")
    return tuple(specs)


@dataclass(frozen=True)
class Cadence:
    """Regular time steps from the start date: ``days`` days or ``months`` calendar months; neither: native."""

    days: int = 0
    months: int = 0

    @classmethod
    def parse(cls, text: str) -> Cadence:
        text = (text or NATIVE).strip().upper()
        if text == NATIVE.upper():
            return cls()
        match = re.fullmatch(r"P(\d+)([DWM])", text)
        if not match or int(match.group(1)) == 0:
            raise MinicubeError(f"Cadence '{text}' is not native, PnD, PnW or PnM (such as P5D)")
        n, unit = int(match.group(1)), match.group(2)
        return cls(months=n) if unit == "M" else cls(days=n * (7 if unit == "W" else 1))

    @property
    def native(self) -> bool:
        return not (self.days or self.months)

    @property
    def label(self) -> str:
        return NATIVE if self.native else (f"P{self.months}M" if self.months else f"P{self.days}D")

    def edges(self, start: datetime, end: datetime) -> list[datetime]:
        """Step edges from ``start`` to past ``end``."""
        edges = [start]
        while edges[-1] <= end:
            if self.months:
                k = len(edges) * self.months
                month = start.month - 1 + k
                edges.append(start.replace(year=start.year + month // 12, month=month % 12 + 1, day=1)
                             if start.day > 28 else start.replace(year=start.year + month // 12, month=month % 12 + 1))
            else:
                edges.append(edges[-1] + timedelta(days=self.days))
        return edges


@dataclass(frozen=True)
class MinicubeRequest:
    """Everything a minicube needs, copied on the main thread before a task starts."""

    sources: tuple[SourceSpec, ...]
    start: datetime
    end: datetime
    output: str
    point: tuple[float, float] | None = None
    """Centre (x, y) in ``point_crs``; or give ``extent``."""
    point_crs: str = "EPSG:4326"
    size: int = 128
    """Side in pixels around the point."""
    resolution: float = 10.0
    """Pixel size in the grid CRS's units."""
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str = "EPSG:4326"
    crs: str = ""
    """Grid CRS; empty for the UTM zone of the centre."""
    cadence: str = "P5D"
    format: str = NETCDF
    dask_scheduler: str = ""
    """Address of a Dask scheduler (tcp://host:8786); empty to compute with local threads."""
    scheduler_timeout: float = CONNECT_TIMEOUT_S
    """Seconds to wait for the scheduler (and for its first worker) before giving up."""
    fail_on_bad_input: bool = False
    """Stop at the first input that cannot be read, instead of leaving it out and reporting it."""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if self.start > self.end:
            raise MinicubeError(f"The minicube starts ({self.start:%Y-%m-%d}) after it ends ({self.end:%Y-%m-%d})")
        if (self.point is None) == (self.extent is None):
            raise MinicubeError("Give either a point or an extent")
        if not (isinstance(self.resolution, (int, float)) and math.isfinite(self.resolution) and self.resolution > 0):
            raise MinicubeError(f"The resolution must be a positive number, got {self.resolution!r}")
        if self.format not in (NETCDF, ZARR):
            raise MinicubeError(f"Unknown format '{self.format}'; choose {NETCDF} or {ZARR}")
        if self.point is not None and not 1 <= self.size <= max_side(self.format):
            raise MinicubeError(f"The size must be 1 to {max_side(self.format)} pixels for {self.format}, "
                                f"got {self.size}")
        Cadence.parse(self.cadence)
        if not self.sources:
            raise MinicubeError("Give at least one source")


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone of a point."""
    zone = min(60, max(1, math.floor((lon + 180) / 6) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def minicube_grid(request: MinicubeRequest) -> OutputGrid:
    """The common grid: ``size`` pixels around the point (or the extent), edges on multiples of the resolution."""
    res = float(request.resolution)
    if request.point is not None:
        lon, lat = transform_point(*request.point, request.point_crs, "EPSG:4326")
        crs = request.crs or utm_crs(lon, lat)
        cx, cy = transform_point(*request.point, request.point_crs, crs)
        half = request.size * res / 2
        x0 = math.floor((cx - half) / res + 0.5) * res
        y0 = math.floor((cy - half) / res + 0.5) * res
        grid = OutputGrid(crs, res, (x0, y0, x0 + request.size * res, y0 + request.size * res))
    else:
        west, south, east, north = transform_bounds(request.extent, request.extent_crs, "EPSG:4326")
        crs = request.crs or utm_crs((west + east) / 2, (south + north) / 2)
        grid = OutputGrid(crs, res, snap(transform_bounds(request.extent, request.extent_crs, crs), res))
    limit = max_side(request.format)
    if max(grid.width, grid.height) > limit:
        raise MinicubeError(f"The minicube would be {grid.width} x {grid.height} pixels; the limit is "
                            f"{limit} a side in {request.format}. Use a coarser resolution or a smaller extent"
                            + (", or Zarr." if request.format == NETCDF else "."))
    return grid

