"""Pixel values through time from a Web Time Series Service (WTSS v2, brazil-data-cube/wtss-spec), as a
`PixelReader`.

The service's three operations, as the v2 specification names them:

- ``list_coverages``: ``GET {service}/``, a landing page whose ``links`` with ``rel: data`` are the
  coverages (``title``, ``href``);
- ``describe_coverage``: ``GET {service}/{coverage}``, with ``timeline`` and ``bands`` (``name``,
  ``common_name``, ``scale``, ``nodata``, ``data_type``, ...) and the ``extent`` polygon;
- ``time_series``: ``POST {service}/{coverage}/timeseries`` with ``geom`` (a GeoJSON point),
  ``attributes``, ``start_datetime`` and ``end_datetime``; the answer's ``results[0].timeseries`` holds
  ``timeline`` and ``values`` (attribute -> list).

Values are asked unscaled (``applyAttributeScale: false``) so that no data can be told apart: a
band's ``nodata`` becomes NaN here, and the rest is multiplied by ``scale`` (and shifted by ``offset``
when a band has one, as STAC ``raster:bands`` write it; the specification's example shows only
``scale``). The quality attribute (``scl``, ``CMASK``, ``Fmask4``...) is a band like the others, so the
time-series engine masks a WTSS series as it does a STAC one.

No sockets here: every request goes through the injected `Fetcher` (QGIS's network stack in the
plugin, `requests` in Processing and the tests); its HttpError names the method, URL and status.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlparse

from ..stac.bands import BandNotFound
from ..stac.http import Fetcher, HttpError
from .reader import NAN, OnValues, PointOutsideCoverage, PointValues, ReaderError, Scene, iso

#: Pages of one time series followed at most (the specification's ``nextURL``).
MAX_PAGES = 50


class WtssError(ReaderError, ValueError):
    """The service answered, but not as the WTSS specification says (or with an HTTP error): names the URL."""


@dataclass(frozen=True)
class WtssAttribute:
    """One band of a coverage, as ``describe_coverage`` lists it."""

    name: str
    common_name: str = ""
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    data_type: str = ""
    min_value: float | None = None
    max_value: float | None = None

    def physical(self, raw: Any) -> float:
        """The value a user reads: NaN for null or no data, else raw * scale + offset."""
        if raw is None or isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return NAN
        value = float(raw)
        if not math.isfinite(value) or (self.nodata is not None and value == self.nodata):
            return NAN
        return value * self.scale + self.offset


@dataclass(frozen=True)
class WtssCoverage:
    """What ``describe_coverage`` says of one coverage."""

    name: str
    url: str
    """The coverage's own URL (``{service}/{name}``): ``timeseries`` is below it."""
    title: str
    description: str
    timeline: tuple[datetime, ...]
    """Dates, ascending, aware UTC."""
    attributes: tuple[WtssAttribute, ...]
    extent: dict | None = None
    """GeoJSON polygon in lon/lat, or None when the service gives none."""

    def attribute(self, name: str) -> WtssAttribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    def bbox(self) -> tuple[float, float, float, float] | None:
        rings = _rings(self.extent)
        points = [p for ring in rings for p in ring]
        if not points:
            return None
        return (min(p[0] for p in points), min(p[1] for p in points),
                max(p[0] for p in points), max(p[1] for p in points))

    def contains(self, lon: float, lat: float) -> bool:
        """Inside the extent polygon (True when the service gives no extent)."""
        rings = _rings(self.extent)
        if not rings:
            return True
        return any(_inside(ring, lon, lat) for ring in rings)


def parse_time(text: Any, where: str = "") -> datetime:
    """A WTSS or WLTS date ("2023-03-05", "2023-03-05T09:20:29Z", "2023-03", "2023") as aware UTC."""
    if not isinstance(text, str) or not text.strip():
        raise WtssError(f"{where}: {text!r} is not a date")
    value = text.strip()
    if len(value) == 4 and value.isdigit():
        value = f"{value}-01-01"
    elif len(value) == 7 and value[4] == "-":
        value = f"{value}-01"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WtssError(f"{where}: {text!r} is not an ISO 8601 date") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _rings(geometry: Any) -> list[list[tuple[float, float]]]:
    """Outer rings of a GeoJSON Polygon or MultiPolygon; [] for anything else."""
    if not isinstance(geometry, Mapping):
        return []
    kind, coordinates = geometry.get("type"), geometry.get("coordinates") or []
    polygons = [coordinates] if kind == "Polygon" else coordinates if kind == "MultiPolygon" else []
    rings = []
    for polygon in polygons:
        if polygon and isinstance(polygon[0], list):
            ring = [(float(p[0]), float(p[1])) for p in polygon[0] if isinstance(p, list) and len(p) >= 2]
            if len(ring) >= 3:
                rings.append(ring)
    return rings


def _inside(ring: list[tuple[float, float]], x: float, y: float) -> bool:
    """Point in polygon (even-odd), a point on the boundary counting as inside."""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2):
            cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
            if abs(cross) < 1e-12:
                return True
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _number(value: Any, default: float | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def split_query(url: str) -> tuple[str, dict[str, str]]:
    """(the URL without its query, the query's parameters): a service URL's query (BDC's
    ``?access_token=...``) goes with every request made below it."""
    base, _, query = url.strip().partition("?")
    return base.rstrip("/"), dict(parse_qsl(query, keep_blank_values=True))


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` as its query, unless it has one already (a link the service gave)."""
    if not params or "?" in url:
        return url
    return f"{url}?{urlencode(params)}"


class WtssClient:
    """The three WTSS operations on one service (its root URL; a query in it goes with every request)
    through ``fetch``."""

    def __init__(self, url: str, fetch: Fetcher, *, timeout_s: float = 60.0) -> None:
        self.url, self.params = split_query(url)
        self.fetch = fetch
        self.timeout_s = timeout_s
        self._hrefs: dict[str, str] = {}

    def _get(self, url: str) -> Any:
        document = self.fetch("GET", with_query(url, self.params), timeout_s=self.timeout_s).json()
        if not isinstance(document, dict):
            raise WtssError(f"GET {url}: the answer is not a JSON object")
        return document

    def landing(self) -> dict:
        return self._get(f"{self.url}/")

    def list_coverages(self) -> list[str]:
        """Coverage names, as the landing page links them (``rel: data``)."""
        document = self.landing()
        links = document.get("links")
        if not isinstance(links, list):
            raise WtssError(f"GET {self.url}/: no 'links' (is this a WTSS v2 service? it answers with "
                            f"{', '.join(sorted(document)) or 'an empty object'})")
        names = []
        for link in links:
            if isinstance(link, dict) and link.get("rel") == "data" and isinstance(link.get("href"), str):
                href = link["href"].rstrip("/")
                name = urlparse(href).path.rsplit("/", 1)[-1] or str(link.get("title", ""))
                self._hrefs[name] = href
                names.append(name)
        return names

    def coverage_url(self, name: str) -> str:
        return self._hrefs.get(name) or f"{self.url}/{quote(name, safe='')}"

    def describe_coverage(self, name: str) -> WtssCoverage:
        url = self.coverage_url(name)
        document = self._get(url)
        bands = document.get("bands")
        if not isinstance(bands, list) or not bands:
            raise WtssError(f"GET {url}: the coverage lists no 'bands'")
        attributes = []
        for band in bands:
            if not isinstance(band, dict) or not isinstance(band.get("name"), str):
                raise WtssError(f"GET {url}: a band without a name: {band!r}")
            attributes.append(WtssAttribute(
                name=band["name"], common_name=str(band.get("common_name") or ""),
                scale=_number(band.get("scale"), 1.0), offset=_number(band.get("offset"), 0.0),
                nodata=_number(band.get("nodata"), None), data_type=str(band.get("data_type") or ""),
                min_value=_number(band.get("min_value"), None), max_value=_number(band.get("max_value"), None)))
        timeline = document.get("timeline")
        if not isinstance(timeline, list):
            raise WtssError(f"GET {url}: the coverage has no 'timeline'")
        dates = sorted({parse_time(t, f"GET {url}") for t in timeline})
        extent = document.get("extent") if isinstance(document.get("extent"), dict) else None
        return WtssCoverage(
            name=name, url=url,  # the name the service's URLs use (the document's "name" may lack a version)
            title=str(document.get("title") or document.get("fullname") or name),
            description=str(document.get("description") or ""), timeline=tuple(dates),
            attributes=tuple(attributes), extent=extent)

    def time_series(self, coverage: str, attributes: Sequence[str], lon: float, lat: float,
                    start: datetime | None = None,
                    end: datetime | None = None) -> tuple[list[datetime], dict[str, list]]:
        """(timeline, attribute -> raw values) of the pixel at (lon, lat); pages are followed."""
        url = f"{self.coverage_url(coverage)}/timeseries"
        body: dict[str, Any] = {"geom": {"type": "Point", "coordinates": [lon, lat]},
                                "attributes": list(attributes), "applyAttributeScale": False,
                                "pixelCollisionType": "center"}
        if start is not None:
            body["start_datetime"] = iso(start)
        if end is not None:
            body["end_datetime"] = iso(end)
        timeline: list[datetime] = []
        values: dict[str, list] = {name: [] for name in attributes}
        method, target, payload = "POST", url, body
        for _page in range(MAX_PAGES):
            document = self.fetch(method, with_query(target, self.params), json_body=payload,
                                  timeout_s=self.timeout_s).json()
            dates, page = _one_series(document, f"{method} {target}", attributes)
            timeline.extend(dates)
            for name in attributes:
                values[name].extend(page[name])
            request = (document.get("query") or {}).get("request") if isinstance(document, dict) else None
            following = request.get("nextURL") if isinstance(request, dict) and not request.get("completed") else None
            if not following:
                return timeline, values
            method, target, payload = "GET", str(following), None
        raise WtssError(f"POST {url}: more than {MAX_PAGES} pages")


def _one_series(document: Any, where: str, attributes: Sequence[str]) -> tuple[list[datetime], dict[str, list]]:
    """The first pixel's (timeline, values) of a time_series answer."""
    if not isinstance(document, dict):
        raise WtssError(f"{where}: the answer is not a JSON object")
    results = document.get("results", document.get("result"))
    first = results[0] if isinstance(results, list) and results else results
    series = first.get("timeseries", first.get("time_series")) if isinstance(first, dict) else None
    if not isinstance(series, dict) or not isinstance(series.get("timeline"), list):
        raise WtssError(f"{where}: no 'results[0].timeseries' with a 'timeline' in the answer")
    dates = [parse_time(t, where) for t in series["timeline"]]
    values = series.get("values") or {}
    out = {}
    for name in attributes:
        column = values.get(name)
        if not isinstance(column, list) or len(column) != len(dates):
            raise WtssError(f"{where}: attribute '{name}' has {len(column) if isinstance(column, list) else 'no'} "
                            f"values for {len(dates)} dates")
        out[name] = column
    return dates, out


class WtssReader:
    """A `PixelReader` over one WTSS coverage; ``start``/``end`` (inclusive) limit its timeline."""

    def __init__(self, url: str, coverage: str, fetch: Fetcher, *, start: datetime | None = None,
                 end: datetime | None = None, client: WtssClient | None = None) -> None:
        self.client = client or WtssClient(url, fetch)
        self.url = self.client.url
        try:
            self.coverage = self.client.describe_coverage(coverage)
        except HttpError as error:
            raise WtssError(f"Cannot describe the WTSS coverage '{coverage}': {error}") from error
        start = start.replace(tzinfo=timezone.utc) if start is not None and start.tzinfo is None else start
        end = end.replace(tzinfo=timezone.utc) if end is not None and end.tzinfo is None else end
        dates = [d for d in self.coverage.timeline
                 if (start is None or d >= start) and (end is None or d <= end)]
        self._scenes = [Scene(datetime=d, item_id=iso(d), tile=None, group=iso(d), order=i)
                        for i, d in enumerate(dates)]

    def use_fetcher(self, fetch: Fetcher) -> None:
        """Send the next requests through ``fetch`` (the dock gives each click's task its own)."""
        self.client.fetch = fetch

    def timeline(self) -> list[Scene]:
        return list(self._scenes)

    def bands(self) -> list[str]:
        return [a.name for a in self.coverage.attributes]

    def common_names(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for attribute in self.coverage.attributes:
            for key in (attribute.common_name, attribute.name):
                if key:
                    found.setdefault(key.casefold(), attribute.name)
        return found

    def band_attrs(self) -> dict[str, dict[str, Any]]:
        """Band name -> what is known of it, for `quality.rule_for_bands`."""
        return {a.name: {"common_name": a.common_name} for a in self.coverage.attributes}

    def check_bands(self, names: Sequence[str]) -> None:
        known = self.bands()
        for name in names:
            if name not in known:
                raise BandNotFound(f"The WTSS coverage '{self.coverage.name}' has no attribute '{name}' "
                                   f"(it has: {', '.join(known)})", known)

    def scenes_at(self, lon: float, lat: float) -> list[Scene]:
        if not self.coverage.contains(lon, lat):
            raise PointOutsideCoverage(lon, lat, len(self._scenes), self.coverage.bbox())
        return list(self._scenes)

    def read_point(self, lon: float, lat: float, bands: Sequence[str], *, on_values: OnValues | None = None,
                   is_canceled: Callable[[], bool] | None = None) -> list[PointValues]:
        if not bands:
            raise ValueError("No bands to read")
        names = list(dict.fromkeys(bands))
        self.check_bands(names)
        scenes = self.scenes_at(lon, lat)
        if not scenes:
            return []
        try:
            dates, raw = self.client.time_series(self.coverage.name, names, lon, lat,
                                                 scenes[0].datetime, scenes[-1].datetime)
        except HttpError as error:
            raise WtssError(str(error)) from error
        by_time = {d: k for k, d in enumerate(dates)}
        by_day = {d.date(): k for k, d in enumerate(dates)}
        out = []
        for done, scene in enumerate(scenes, start=1):
            if is_canceled is not None and is_canceled():
                break
            k = by_time.get(scene.datetime, by_day.get(scene.datetime.date()))
            values = PointValues(scene, {name: NAN for name in names})
            if k is None:
                values.outside = True  # the service has no value of this date at this pixel
            else:
                for name in names:
                    values.values[name] = self.coverage.attribute(name).physical(raw[name][k])
            out.append(values)
            if on_values is not None:
                on_values(values, done, len(scenes))
        return [v for v in out if not v.outside]

    def read_window(self, bbox: tuple[float, float, float, float], bands: Sequence[str], **options: Any) -> Any:
        raise NotImplementedError("A WTSS coverage is read point by point")

    def close(self) -> None:
        """Nothing is kept open: each click is one request."""

    def __enter__(self) -> WtssReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["WtssAttribute", "WtssClient", "WtssCoverage", "WtssError", "WtssReader", "parse_time"]
