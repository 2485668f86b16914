"""Land-use and land-cover trajectories from a Web Land Trajectory Service (brazil-data-cube/wlts-spec).

The operations, as the specification names them: ``GET {service}/list_collections`` (``collections``:
names), ``GET {service}/describe_collection?collection_id=`` (``name``, ``description``,
``collection_type``, ``resolution_unit``, ``period``, ``classification_system``, ``spatial_extent``) and
``GET {service}/trajectory?collections=&longitude=&latitude=[&start_date=&end_date=]``, whose
``result.trajectory`` lists ``{class, collection, date}`` in date order.

The specification carries class names but no colours (those live in the classification system's
own service, LCCS): a class gets a colour from the words of its name (forest green, water blue...)
or else a fixed one of a palette chosen by its name, so a class keeps its colour across clicks,
collections and sessions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from ..stac.http import HttpError
from .reader import iso
from .wtss_reader import WtssError, parse_time, split_query


class WltsError(WtssError):
    """A WLTS answer that is not what the specification says (or an HTTP error): names the URL."""


#: Colours of classes whose name says what they are (first match wins, on the lower-case name).
KEYWORD_COLOURS = (
    (("mangrove",), "#00cf75"), (("wetland", "marsh", "swamp"), "#0096a0"),
    (("water", "river", "lake", "sea"), "#0064c8"), (("snow", "ice", "glacier"), "#d8e8f0"),
    (("deforest", "clear_cut", "clear cut", "clear-cut", "burn"), "#a0522d"),
    (("forest", "tree", "wood"), "#006400"), (("shrub", "savanna", "cerrado"), "#ffbb22"),
    (("pasture", "grass", "herbaceous", "meadow"), "#c8d86b"), (("crop", "agri", "soy", "farm"), "#f096ff"),
    (("urban", "built", "city", "artificial"), "#fa0000"), (("bare", "sparse", "rock", "sand", "mining"), "#b4b4b4"),
    (("moss", "lichen"), "#fae6a0"), (("cloud", "no data", "nodata", "no_data"), "#ffffff"),
)
#: Colours for the other classes (Okabe-Ito and friends), chosen by the class name's digest.
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999",
           "#882255", "#44aa99", "#117733", "#ddcc77")


def class_colour(name: str) -> str:
    """A stable "#rrggbb" for a class name."""
    lowered = name.casefold()
    for words, colour in KEYWORD_COLOURS:
        if any(word in lowered for word in words):
            return colour
    digest = hashlib.sha1(lowered.encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


@dataclass(frozen=True)
class WltsCollection:
    """What ``describe_collection`` says of one collection."""

    name: str
    description: str = ""
    collection_type: str = ""
    resolution_unit: str = ""
    """Time unit of the collection's steps ("Y", "M", "D"), "" when unknown."""
    resolution_value: float = 0.0
    period: tuple[str, str] = ("", "")
    classification_system: str = ""


@dataclass(frozen=True)
class TrajectoryStep:
    """The class of one collection at the point on one date."""

    date: datetime
    class_name: str
    collection: str
    end: datetime | None = None
    """Where the step ends on a time axis: the collection's next step, or one resolution after."""


@dataclass
class Trajectory:
    """The land-use classes of one point through time, in date order."""

    lon: float
    lat: float
    steps: list[TrajectoryStep] = field(default_factory=list)
    url: str = ""

    def classes(self) -> list[str]:
        """Class names in order of first appearance."""
        return list(dict.fromkeys(step.class_name for step in self.steps))

    def colours(self) -> dict[str, str]:
        return {name: class_colour(name) for name in self.classes()}

    def rows(self, point_id: Any = "") -> list[dict[str, Any]]:
        """One row per step: point_id, datetime, collection, class (for the CSV export)."""
        return [{"point_id": str(point_id), "datetime": iso(step.date), "collection": step.collection,
                 "class": step.class_name} for step in self.steps]


def _step_end(start: datetime, unit: str, value: float) -> datetime | None:
    amount = max(1, int(value or 1))
    try:
        if unit.upper().startswith("Y"):
            return start.replace(year=start.year + amount)
        if unit.upper().startswith("M"):
            months = start.month - 1 + amount
            return start.replace(year=start.year + months // 12, month=months % 12 + 1)
    except ValueError:  # 29 February
        return start.replace(day=28, year=start.year + amount)
    return None


class WltsClient:
    """The WLTS operations on one service (its root URL; a query in it goes with every request) through
    ``fetch`` (see `stac.http.Fetcher`)."""

    def __init__(self, url: str, fetch: Any, *, timeout_s: float = 60.0) -> None:
        self.url, self.params = split_query(url)  # BDC's ?access_token=... goes with every request
        self.fetch = fetch
        self.timeout_s = timeout_s
        self._described: dict[str, WltsCollection] = {}

    def _get(self, operation: str, **params: Any) -> dict:
        query = {**self.params, **{k: v for k, v in params.items() if v not in (None, "")}}
        url = f"{self.url}/{operation}" + (f"?{urlencode(query)}" if query else "")
        document = self.fetch("GET", url, timeout_s=self.timeout_s).json()
        if not isinstance(document, dict):
            raise WltsError(f"GET {url}: the answer is not a JSON object")
        return document

    def version(self) -> str:
        return str(self._get("").get("wlts_version", ""))

    def list_collections(self) -> list[str]:
        names = self._get("list_collections").get("collections")
        if not isinstance(names, list):
            raise WltsError(f"GET {self.url}/list_collections: no 'collections' list (is this a WLTS service?)")
        return [str(n) for n in names]

    def describe_collection(self, name: str) -> WltsCollection:
        if name in self._described:
            return self._described[name]
        document = self._get("describe_collection", collection_id=name)
        # the specification's resolution_unit; the reference server's temporal_resolution
        resolution = document.get("resolution_unit") or document.get("temporal_resolution") or {}
        period = document.get("period") or {}
        system = document.get("classification_system") or {}
        described = WltsCollection(
            name=str(document.get("name") or name), description=str(document.get("description") or ""),
            collection_type=str(document.get("collection_type") or ""),
            resolution_unit=str(resolution.get("unit") or "") if isinstance(resolution, dict) else "",
            resolution_value=float(resolution.get("value") or 0) if isinstance(resolution, dict) else 0.0,
            period=(str(period.get("start_date") or ""), str(period.get("end_date") or ""))
            if isinstance(period, dict) else ("", ""),
            classification_system=str(system.get("classification_system_name") or system.get("name") or "")
            if isinstance(system, dict) else "")
        self._described[name] = described
        return described

    def trajectory(self, lon: float, lat: float, collections: Sequence[str], start: str = "",
                   end: str = "") -> Trajectory:
        """The classes at (lon, lat) in ``collections`` (names), optionally between two dates (YYYY-MM-DD)."""
        if not collections:
            raise ValueError("No WLTS collection given")
        document = self._get("trajectory", collections=",".join(collections), longitude=lon, latitude=lat,
                             start_date=start, end_date=end)
        where = f"GET {self.url}/trajectory"
        result = document.get("result", document)
        entries = result.get("trajectory") if isinstance(result, dict) else None
        if not isinstance(entries, list):
            raise WltsError(f"{where}: no 'result.trajectory' in the answer")
        steps = []
        for entry in entries:
            if not isinstance(entry, dict) or "class" not in entry or "date" not in entry:
                raise WltsError(f"{where}: a step without 'class' and 'date': {entry!r}")
            steps.append(TrajectoryStep(parse_time(str(entry["date"]), where), str(entry["class"]),
                                        str(entry.get("collection") or "")))
        steps.sort(key=lambda s: (s.date, s.collection))
        return Trajectory(lon, lat, self._with_ends(steps), url=self.url)

    def _with_ends(self, steps: list[TrajectoryStep]) -> list[TrajectoryStep]:
        out = []
        for number, step in enumerate(steps):
            following = next((s.date for s in steps[number + 1:] if s.collection == step.collection), None)
            if following is None and step.collection:
                try:
                    described = self.describe_collection(step.collection)
                except (WtssError, HttpError):
                    described = None
                if described is not None:
                    following = _step_end(step.date, described.resolution_unit, described.resolution_value)
            out.append(TrajectoryStep(step.date, step.class_name, step.collection, following))
        return out


__all__ = ["Trajectory", "TrajectoryStep", "WltsClient", "WltsCollection", "WltsError", "class_colour"]
