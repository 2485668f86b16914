"""Dates from Qt widgets and Processing parameters as the aware UTC datetimes the pure code expects."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_day(value, end_of_day: bool = False) -> datetime | None:
    """The day of a QDateTime/QDate at 00:00:00 (or 23:59:59) UTC; None for a null or invalid value."""
    if value is None or not value.isValid():
        return None
    date = value.date() if hasattr(value, "date") else value
    hms = (23, 59, 59) if end_of_day else (0, 0, 0)
    return datetime(date.year(), date.month(), date.day(), *hms, tzinfo=timezone.utc)
