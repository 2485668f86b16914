"""What every pixel reader answers, whether its pixels come from a STAC stack of COGs or a Zarr cube.

The time-series engine (and later the compositing code) only talks to a `PixelReader`: the dates
it has (`timeline`), the bands it knows (`bands`), and the values at a point (`read_point`). A
reader lives across clicks: it keeps what it opened (COG headers, Zarr metadata) for the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

NAN = float("nan")


class ReaderError(Exception):
    """A reader cannot answer at all (no items, unreadable cube); the message says why, in users' words."""


class PointOutsideCoverage(ReaderError):  # noqa: N818 (public API name)
    """The point is outside the footprint of every scene: the series is empty, and this says so."""

    def __init__(self, lon: float, lat: float, scenes: int, extent: tuple[float, float, float, float] | None) -> None:
        self.lon, self.lat, self.scenes, self.extent = lon, lat, scenes, extent
        where = (f"; the data covers lon {extent[0]:.5f}..{extent[2]:.5f}, lat {extent[1]:.5f}..{extent[3]:.5f}"
                 if extent else "")
        super().__init__(f"The point (lon {lon:.6f}, lat {lat:.6f}) is outside the footprint of all "
                         f"{scenes} scenes{where}")


@dataclass(frozen=True)
class Scene:
    """One date of one place in a reader's timeline: a STAC item, or a time step of a Zarr cube."""

    datetime: datetime
    """Acquisition time, aware UTC."""
    item_id: str
    """STAC item id, or the ISO time of a Zarr time step."""
    tile: str | None = None
    """Grid tile as its provider writes it ("34TGR"); None for a Zarr cube."""
    group: str = ""
    """Scenes with the same group are one observation (one day of a COG stack); see timeseries.dedupe."""
    order: int = 0
    """Position in the timeline (date, then tile, then id): the tie-breaker when scenes of a group compete."""
    period: str = ""
    """The item's interval as a user reads it ("2022-02-02/2022-02-09") when it is known by one only
    (`datetime` null); empty for an instant."""


@dataclass
class PointValues:
    """What a reader got for one scene at one point."""

    scene: Scene
    values: dict[str, float] = field(default_factory=dict)
    """Band name as asked -> physical value (scale and offset applied); NaN for no data or a failed read."""
    errors: list[str] = field(default_factory=list)
    """Why a band could not be read ("item X: red: HTTP 404 ..."); empty when all went well."""
    failed_bands: set[str] = field(default_factory=set)
    """Names whose value is NaN because reading failed (not because the pixel is no data)."""
    outside: bool = False
    """The point falls outside this scene's raster: the scene is not part of the series."""

    @property
    def failed(self) -> bool:
        """Every band failed to read (as opposed to reading as no data)."""
        return bool(self.values) and self.failed_bands >= set(self.values)


#: Called with (what was read, how many scenes are done, how many there are) as each scene arrives.
OnValues = Callable[[PointValues, int, int], None]


@runtime_checkable
class PixelReader(Protocol):
    """A source of pixels through time; see `cog_reader.CogStackReader` and `zarr_reader.ZarrReader`."""

    def timeline(self) -> list[Scene]:
        """Every scene the reader can read, in time order."""
        ...

    def bands(self) -> list[str]:
        """Names `read_point` accepts (asset keys and common names, or Zarr variables)."""
        ...

    def common_names(self) -> Mapping[str, str]:
        """Common name ("nir") -> the band name to read for it, for the indices; empty when unknown."""
        ...

    def scenes_at(self, lon: float, lat: float) -> list[Scene]:
        """The scenes whose footprint contains the point: what `read_point` will read (and call back for).

        Raises `PointOutsideCoverage` when there are none.
        """
        ...

    def check_bands(self, names: Sequence[str]) -> None:
        """Raise BandNotFound (listing the bands there are) for the first name the reader does not know."""
        ...

    def read_point(
        self,
        lon: float,
        lat: float,
        bands: Sequence[str],
        *,
        on_values: OnValues | None = None,
        is_canceled: Callable[[], bool] | None = None,
    ) -> list[PointValues]:
        """Values of `bands` at (lon, lat) in every scene covering the point, in timeline order.

        Scenes not covering the point are left out; `PointOutsideCoverage` when none does. A band
        that fails to read gives NaN and an error in its scene, not an exception. `on_values` is
        called, in the calling thread, as each scene of `scenes_at` is done (in completion order, also
        for a scene whose raster turns out not to contain the point: `outside` is then True);
        `is_canceled` stops early, keeping what arrived.
        """
        ...

    def read_window(self, bbox: tuple[float, float, float, float], bands: Sequence[str], **options: Any) -> Any:
        """The pixels of `bands` in a lon/lat box through time (for compositing); not every reader has it."""
        ...

    def close(self) -> None:
        """Release open files and threads; the reader is not used afterwards."""
        ...


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a Z ("2023-03-05T09:20:29Z")."""
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    text = when.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")
