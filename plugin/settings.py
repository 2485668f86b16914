"""Cubescope's connections and options in QGIS settings. Credentials never: only authcfg ids."""

from __future__ import annotations

import json

from qgis.core import QgsSettings

from .stac.paging import DEFAULT_MAX_PAGES, DEFAULT_TIME_LIMIT_S, PagingLimits
from .stac.sources import PRESETS, Source

PREFIX = "cubescope"
CONNECTIONS = f"{PREFIX}/connections"


def user_sources() -> list[Source]:
    """Connections the user added, in the order they were added; unreadable entries are skipped."""
    settings = QgsSettings()
    sources = []
    raw = settings.value(CONNECTIONS, "[]", type=str)
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        entries = []
    for entry in entries:
        try:
            sources.append(Source.from_dict(entry))
        except (ValueError, TypeError, KeyError):
            continue
    return sources


def all_sources() -> list[Source]:
    """Presets first, then the user's connections."""
    return list(PRESETS) + user_sources()


def save_user_sources(sources: list[Source]) -> None:
    QgsSettings().setValue(CONNECTIONS, json.dumps([s.to_dict() for s in sources if not s.preset]))


def upsert_source(source: Source, replace: str | None = None) -> None:
    """Add ``source``, or replace the connection named ``replace`` (an edit that may rename it)."""
    sources = [s for s in user_sources() if s.name not in {source.name, replace}]
    save_user_sources([*sources, source])


def remove_source(name: str) -> None:
    save_user_sources([s for s in user_sources() if s.name != name])


def last_source_name() -> str:
    return QgsSettings().value(f"{PREFIX}/lastSource", "", type=str)


def set_last_source_name(name: str) -> None:
    QgsSettings().setValue(f"{PREFIX}/lastSource", name)


def dask_scheduler() -> str:
    return QgsSettings().value(f"{PREFIX}/daskScheduler", "", type=str)


def paging_limits() -> PagingLimits:
    """The dock's page cap and time budget for searches; the defaults where unset or unusable."""
    settings = QgsSettings()
    try:
        return PagingLimits(settings.value(f"{PREFIX}/search/maxPages", DEFAULT_MAX_PAGES, type=int),
                            settings.value(f"{PREFIX}/search/timeLimitS", DEFAULT_TIME_LIMIT_S, type=float))
    except (ValueError, TypeError):
        return PagingLimits()


def set_paging_limits(limits: PagingLimits) -> None:
    settings = QgsSettings()
    settings.setValue(f"{PREFIX}/search/maxPages", limits.max_pages)
    settings.setValue(f"{PREFIX}/search/timeLimitS", limits.time_limit_s)
