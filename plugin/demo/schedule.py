"""Acquisition calendars and sun geometry.

Sentinel-2 dates are irregular like a real cloud-filtered archive (gaps of 5 to 25 days, all
multiples of the 5-day S2A/S2B revisit, so the platform alternates as it really does).
Sentinel-1 follows the strict 12-day repeat of S1A alone (S1B failed in December 2021).
Both calendars are fixed, not seeded, so documentation and tests can name dates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .landscape import LAT0, LON0

#: Gaps in days between consecutive Sentinel-2 acquisitions from S2_FIRST.
_S2_GAPS = (10, 15, 10, 20, 10, 15, 5, 15, 10, 20, 15, 10, 15, 20, 10, 15, 10, 25, 15,
            20, 15, 10, 15, 10, 20, 15, 10, 15, 15, 10, 20, 15, 10, 15, 10, 15)
S2_FIRST = date(2023, 3, 5)
S2_LAST = date(2024, 7, 31)
S1_FIRST = date(2023, 3, 3)
S1_LAST = date(2024, 7, 31)
S1_REPEAT_DAYS = 12
S2_RELATIVE_ORBIT = 93
S1_RELATIVE_ORBIT = 131
#: Reference S2A date: dates a multiple of 10 days away are S2A, the others S2B.
_S2A_REFERENCE = date(2023, 3, 5)


@dataclass(frozen=True)
class Acquisition:
    """One acquisition shared by both tiles (same orbit, same datatake)."""

    index: int  #: position in the calendar
    datetime: datetime  #: sensing time, UTC
    platform: str  #: e.g. ``sentinel-2a``

    @property
    def day(self) -> date:
        return self.datetime.date()

    @property
    def iso(self) -> str:
        """ISO 8601 with a ``Z``, as STAC items carry it."""
        return self.datetime.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def compact(self) -> str:
        """``YYYYMMDDTHHMMSS`` as in product names."""
        return self.datetime.strftime("%Y%m%dT%H%M%S")


def s2_acquisitions() -> tuple[Acquisition, ...]:
    days = [S2_FIRST]
    for gap in _S2_GAPS:
        nxt = days[-1] + timedelta(days=gap)
        if nxt > S2_LAST:
            break
        days.append(nxt)
    out = []
    for i, d in enumerate(days):
        s2a = ((d - _S2A_REFERENCE).days // 5) % 2 == 0
        t = datetime(d.year, d.month, d.day, 9, 20, 29 if s2a else 31, tzinfo=timezone.utc)
        out.append(Acquisition(i, t, "sentinel-2a" if s2a else "sentinel-2b"))
    return tuple(out)


def s1_acquisitions() -> tuple[Acquisition, ...]:
    out = []
    d = S1_FIRST
    while d <= S1_LAST:
        t = datetime(d.year, d.month, d.day, 16, 15, 12, tzinfo=timezone.utc)
        out.append(Acquisition(len(out), t, "sentinel-1a"))
        d += timedelta(days=S1_REPEAT_DAYS)
    return tuple(out)


def sun_position(when: datetime, lon: float = LON0, lat: float = LAT0) -> tuple[float, float]:
    """(azimuth, elevation) of the sun in degrees (NOAA approximation, ~0.1° accurate)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqtime + 4 * lon
    ha = math.radians(tst / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi)))
    return (az + 180.0) % 360.0, 90.0 - math.degrees(zen)
