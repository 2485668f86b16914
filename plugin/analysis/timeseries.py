"""A pixel's time series: observations read from any `PixelReader`, masked, deduplicated, with indices.

The dock's map tool, its background task and the Processing algorithm all call `read_series`;
values stream to `on_observation` as dates complete, so a plot can grow while files are read.
One date of one place is one observation: items of the same day (the same tile delivered twice, or
two overlapping tiles) are merged by `choose`, preferring a clear, readable one.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cube.reader import NAN, PixelReader, PointOutsideCoverage, PointValues, Scene, iso
from ..stac.bands import first_present, with_substitutes
from ..stac.unreadable import SkippedInputs
from .ops.indices import MissingBand, compute_index, is_index, required_bands
from .ops.quality import QualityRule

#: Per-item problems listed one by one; beyond this many they are summarised in one warning.
MAX_ITEM_WARNINGS = 5


@dataclass(frozen=True)
class Observation:
    """One date at one point."""

    datetime: datetime
    item_id: str
    tile: str | None
    values: dict[str, float]
    """Requested band or index name -> physical value (reflectance after scale and offset, index value);
    NaN for no data."""
    quality: int | None = None
    """The quality band's value; None without a rule, or when it was no data or unreadable."""
    clear: bool | None = None
    """What the quality rule says; None without a rule (or when the quality band could not be read)."""
    group: str = ""
    """Observations with the same group are one date (see `dedupe`)."""
    order: int = 0
    """The scene's place in the reader's timeline (date, tile, id)."""
    errors: tuple[str, ...] = ()
    """Bands that could not be read for this scene, with the reason."""
    failed: bool = False
    """Nothing could be read: the series has a gap here."""
    valid: bool = True
    """Usable for analysis: every band was read, not all are no data, and the quality rule says clear
    (no rule: True)."""
    period: str = ""
    """The item's interval ("2022-02-02/2022-02-09") when it is known by one only; empty for an instant."""

    @property
    def has_data(self) -> bool:
        return any(isinstance(v, float) and math.isfinite(v) for v in self.values.values())


@dataclass
class TimeSeries:
    """The series of one point, sorted by date."""

    lon: float
    lat: float
    bands: tuple[str, ...]
    """Band and index names, as requested (the keys of each observation's values)."""
    observations: list[Observation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Items that could not be read (naming them), a point outside the data, ..."""
    quality_rule: QualityRule | None = None
    outside: bool = False
    """The point is outside every footprint: the series is empty and `warnings[0]` says so."""
    canceled: bool = False
    dates: int = 0
    """Dates (observation groups) at this point before reading; len(observations) can be lower (gaps)."""
    skipped: SkippedInputs = field(default_factory=SkippedInputs)
    """The files this series could not read (HTTP 404, not a GeoTIFF, truncated), by URL and cause."""

    def values(self, name: str, valid_only: bool = False) -> list[float]:
        """One band's or index's values in date order (NaN where masked when `valid_only`)."""
        return [o.values.get(name, NAN) if (o.valid or not valid_only) else NAN for o in self.observations]

    def times(self) -> list[datetime]:
        return [o.datetime for o in self.observations]


OnObservation = Callable[[Observation, int, int], None]
"""(observation, dates done, dates in all) as each date completes."""


def _rank(observation: Observation) -> tuple[bool, bool, bool, int]:
    """Lower is better: read at all, clear, has data, then the first tile and item in timeline order."""
    return (observation.failed, observation.clear is not True, not observation.has_data, observation.order)


def choose(candidates: Sequence[Observation]) -> Observation:
    """The one observation a date keeps among scenes of the same day.

    A readable one beats a failed one; a clear one beats the others (the overlap of two tiles where
    one is cloudy); then one with data (the other tile at its swath edge); then the first in the
    timeline's order (tile, then item id).
    """
    if not candidates:
        raise ValueError("No observation to choose from")
    return min(candidates, key=_rank)


def dedupe(observations: Iterable[Observation]) -> list[Observation]:
    """One observation per group, sorted by date then timeline order."""
    groups: dict[str, list[Observation]] = {}
    for observation in observations:
        groups.setdefault(observation.group, []).append(observation)
    return sorted((choose(group) for group in groups.values()), key=lambda o: (o.datetime, o.order))


@dataclass(frozen=True)
class ReadPlan:
    """What to read for the bands and indices a user asked for."""

    requested: tuple[str, ...]
    """Band and index names as asked, deduplicated, in order."""
    indices: dict[str, tuple[str, ...]]
    """Index name -> the band names (as the reader knows them) of its common names, in required order."""
    read: tuple[str, ...]
    """Every band name the reader reads: requested bands, index inputs, the quality band."""
    quality_band: str | None


def plan_read(reader: PixelReader, names: Sequence[str], quality_rule: QualityRule | None = None) -> ReadPlan:
    """Check the names against the reader and work out which bands to read.

    Raises BandNotFound (listing the bands there are) for an unknown band, MissingBand for an index
    whose input band the data lacks.
    """
    requested = tuple(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not requested:
        raise ValueError("No band or index given")
    known = {b.casefold() for b in reader.bands()}
    # a band the data has wins over an index of the same name (an "NDVI" product band)
    index_names = [n for n in requested if is_index(n) and n.casefold() not in known]
    bands = [n for n in requested if n not in index_names]
    if bands:
        reader.check_bands(bands)
    common = {k.casefold(): v for k, v in reader.common_names().items()}
    indices: dict[str, tuple[str, ...]] = {}
    for name in index_names:
        inputs = []
        for needed in required_bands(name):
            band = first_present(needed, common)
            if band is None:
                raise MissingBand(name.casefold(), needed, common.keys(), with_substitutes(needed)[1:])
            inputs.append(band)
        indices[name] = tuple(inputs)
    read = list(bands)
    for inputs in indices.values():
        read.extend(inputs)
    quality_band = None
    if quality_rule is not None:
        reader.check_bands([quality_rule.band])
        quality_band = quality_rule.band
        read.append(quality_band)
    return ReadPlan(requested, indices, tuple(dict.fromkeys(read)), quality_band)


def _observation(values: PointValues, plan: ReadPlan, rule: QualityRule | None) -> Observation:
    raw = values.values
    out: dict[str, float] = {}
    for name in plan.requested:
        if name in plan.indices:
            needed = required_bands(name)
            inputs = {common: raw.get(band, NAN) for common, band in zip(needed, plan.indices[name])}
            out[name] = float(compute_index(name, inputs))
        else:
            out[name] = raw.get(name, NAN)
    quality, clear = None, None
    if rule is not None and plan.quality_band is not None:
        q = raw.get(plan.quality_band, NAN)
        if math.isfinite(q):
            quality = int(q)
        clear = None if plan.quality_band in values.failed_bands else bool(rule.is_clear(q))
    scene = values.scene
    data_bands = set(plan.read) - {plan.quality_band}
    failed = bool(data_bands) and data_bands <= values.failed_bands
    has_data = any(math.isfinite(v) for v in out.values())
    valid = not values.failed_bands and has_data and (clear is True if rule is not None else True)
    return Observation(datetime=scene.datetime, item_id=scene.item_id, tile=scene.tile, values=out,
                       quality=quality, clear=clear, group=scene.group, order=scene.order,
                       errors=tuple(values.errors), failed=failed, valid=valid, period=scene.period)


def _summarise(errors: dict[str, list[str]]) -> list[str]:
    """One warning per scene that had errors (in timeline order), summarised beyond MAX_ITEM_WARNINGS."""
    lines = ["; ".join(messages) for messages in errors.values()]
    if len(lines) <= MAX_ITEM_WARNINGS:
        return lines
    rest = list(errors)[MAX_ITEM_WARNINGS - 1:]
    return [*lines[:MAX_ITEM_WARNINGS - 1],
            f"{len(rest)} more scenes could not be read completely (the series has gaps there): "
            f"{', '.join(rest)}; the last error: {lines[-1]}"]


def read_series(
    reader: PixelReader,
    lon: float,
    lat: float,
    bands: Sequence[str],
    quality_rule: QualityRule | None = None,
    *,
    on_observation: OnObservation | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    plan: ReadPlan | None = None,
) -> TimeSeries:
    """The series of `bands` (band names and/or indices such as "ndvi") at (lon, lat).

    `on_observation(obs, k, n)` is called as each date completes ("k of n dates"), `on_progress(k, n)`
    for every completed date including gaps. A point outside all footprints gives an empty series
    with `outside` set and the reason in `warnings`; unreadable items give gaps and warnings naming
    them (and, from a reader that records them, the unreadable files by URL and cause in `skipped`).
    BandNotFound / MissingBand are raised before anything is read; StopAtFirstBadInputError comes
    through from a reader told to stop at the first unreadable file.
    """
    plan = plan or plan_read(reader, bands, quality_rule)
    series = TimeSeries(lon, lat, plan.requested, quality_rule=quality_rule)
    try:
        scenes = reader.scenes_at(lon, lat)
    except PointOutsideCoverage as error:
        series.outside = True
        series.warnings.append(str(error))
        return series
    groups: dict[str, list[Scene]] = {}
    for scene in scenes:
        groups.setdefault(scene.group, []).append(scene)
    waiting = {group: len(members) for group, members in groups.items()}
    candidates: dict[str, list[Observation]] = {group: [] for group in groups}
    kept: list[Observation] = []
    errors: dict[tuple[int, str], list[str]] = {}
    series.dates = total = len(groups)
    done = 0

    def close_group(group: str) -> None:
        nonlocal done
        done += 1
        present = candidates[group]
        if present:
            best = choose(present)
            if not best.failed:
                kept.append(best)
                if on_observation is not None:
                    on_observation(best, done, total)
        if on_progress is not None:
            on_progress(done, total)

    def arrived(values: PointValues, _done: int, _total: int) -> None:
        group = values.scene.group
        if group not in waiting:
            return
        if not values.outside:
            observation = _observation(values, plan, quality_rule)
            candidates[group].append(observation)
            if values.errors:
                errors[(values.scene.order, values.scene.item_id)] = list(values.errors)
        waiting[group] -= 1
        if waiting[group] == 0:
            del waiting[group]
            close_group(group)

    # A reader that records unreadable files (CogStackReader) records this series' ones in it.
    record = {"skipped": series.skipped} if getattr(reader, "skipped_inputs", None) is not None else {}
    try:
        reader.read_point(lon, lat, plan.read, on_values=arrived, is_canceled=is_canceled, **record)
    except PointOutsideCoverage as error:
        series.outside = True
        series.warnings.append(str(error))
        return series
    if waiting:  # canceled: keep the dates that had values
        series.canceled = bool(is_canceled is not None and is_canceled())
        for group in list(waiting):
            if candidates[group]:
                close_group(group)
    series.observations = dedupe(kept)
    series.warnings.extend(_summarise({item: errors[(order, item)] for order, item in sorted(errors)}))
    return series


# ---- table output ----

def row_fields(bands: Sequence[str]) -> list[str]:
    """Columns of `series_to_rows`: point_id, datetime, item_id, the bands and indices, valid."""
    return ["point_id", "datetime", "item_id", *bands, "valid"]


def series_to_rows(series: TimeSeries, point_id: Any = "") -> list[dict[str, Any]]:
    """One row per observation: scaled values (None for no data), valid 1/0 (1 when there is no rule)."""
    rows = []
    for o in series.observations:
        row: dict[str, Any] = {"point_id": str(point_id), "datetime": iso(o.datetime), "item_id": o.item_id}
        for name in series.bands:
            value = o.values.get(name, NAN)
            row[name] = value if math.isfinite(value) else None
        row["valid"] = 1 if o.valid else 0
        rows.append(row)
    return rows


def write_csv(path: str | Path, series: Mapping[Any, TimeSeries] | Sequence[TimeSeries]) -> Path:
    """The rows of several series (point id -> series, or a list numbered from 1) in one CSV file."""
    if not isinstance(series, Mapping):
        series = {n: s for n, s in enumerate(series, start=1)}
    bands: list[str] = []
    for s in series.values():
        bands.extend(b for b in s.bands if b not in bands)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=row_fields(bands), restval="")
        writer.writeheader()
        for point_id, s in series.items():
            for row in series_to_rows(s, point_id):
                writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path
