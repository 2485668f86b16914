"""Regular timelines: periods of N days, weeks or months, continuous or restarting every year.

A regular cube turns irregular acquisitions into one composite per period. Periods are either
*continuous* (every step from the start date on) or *cyclic*: restarting on January 1 of every
year, as the Brazil Data Cube's 16-day cubes do (23 periods a year, the last one ending on
December 31). Each period ends one second before the next one starts; the timeline is cut to the
requested start and end, so no data outside them is used.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ...analysis.engine.analysis_request import Period

_STEP = re.compile(r"^P(\d+)([DWMY])$")
_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Step:
    """The length of a period: a number of days or of calendar months."""

    days: int = 0
    months: int = 0

    def __post_init__(self) -> None:
        if (self.days > 0) == (self.months > 0) or self.days < 0 or self.months < 0:
            raise ValueError(f"A step is a positive number of days or of months, got {self!r}")

    @property
    def text(self) -> str:
        """ISO 8601 duration ("P16D", "P1M")."""
        return f"P{self.days}D" if self.days else f"P{self.months}M"

    def after(self, when: datetime, count: int = 1) -> datetime:
        """``when`` plus ``count`` steps (months keep the day of month, clamped to the month's length)."""
        if self.days:
            return when + timedelta(days=self.days * count)
        month0 = when.month - 1 + self.months * count
        year, month = when.year + month0 // 12, month0 % 12 + 1
        return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


def parse_step(text: str) -> Step:
    """``P16D``, ``P8D``, ``P2W``, ``P1M``, ``P3M``, ``P1Y`` (ISO 8601 durations of one unit)."""
    match = _STEP.match(str(text).strip().upper())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"Cannot read the period '{text}': give an ISO 8601 duration such as P16D, P8D, "
                         "P2W or P1M")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "D":
        return Step(days=count)
    if unit == "W":
        return Step(days=7 * count)
    return Step(months=count * (12 if unit == "Y" else 1))


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def regular_periods(start: datetime, end: datetime, step: Step | str, cyclic: bool = False) -> list[Period]:
    """The periods of the timeline between ``start`` and ``end`` (inclusive; naive datetimes are UTC).

    Continuous: the first period starts at ``start``. Cyclic: the periods of each year start on
    January 1 and every step after it, the last one ending on December 31; the periods overlapping
    [start, end] are kept. Either way the first and last periods are cut to [start, end].
    """
    step = parse_step(step) if isinstance(step, str) else step
    start, end = _utc(start), _utc(end)
    if start > end:
        raise ValueError(f"The timeline starts ({start:%Y-%m-%d}) after it ends ({end:%Y-%m-%d})")
    bounds = _cyclic_bounds(start, end, step) if cyclic else _continuous_bounds(start, end, step)
    periods = []
    for first, following in bounds:
        period_start, period_end = max(first, start), min(following - _ONE_SECOND, end)
        if period_start <= period_end:
            periods.append(Period(period_start, period_end))
    return periods


def _continuous_bounds(start: datetime, end: datetime, step: Step) -> list[tuple[datetime, datetime]]:
    bounds, count = [], 0
    while True:
        first = step.after(start, count)
        if first > end:
            return bounds
        bounds.append((first, step.after(start, count + 1)))
        count += 1


def _cyclic_bounds(start: datetime, end: datetime, step: Step) -> list[tuple[datetime, datetime]]:
    bounds = []
    for year in range(start.year, end.year + 1):
        january = datetime(year, 1, 1, tzinfo=timezone.utc)
        next_year = datetime(year + 1, 1, 1, tzinfo=timezone.utc)
        count = 0
        while (first := step.after(january, count)) < next_year:
            following = min(step.after(january, count + 1), next_year)
            if following > start and first <= end:
                bounds.append((first, following))
            count += 1
    return bounds
