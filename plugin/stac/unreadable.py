"""One policy for inputs that cannot be read: what went wrong, said in the user's words, and a record
of every input a run left out.

Every reader (point time series, composites, statistics, cubes, minicubes, chips) skips an
observation it cannot read and finishes with the rest, unless the user asked to stop at the first
bad input. What it skipped is reported by URL and cause ("HTTP 404 (not found)", "not a GeoTIFF: GDAL
reads it as PNG", "truncated or corrupt"), and the output's metadata counts it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: GDAL drivers that read what an asset of type GeoTIFF (or a .tif/.tiff href) promises.
GEOTIFF_DRIVERS = frozenset({"GTiff", "COG"})

_HTTP_STATUS = re.compile(r"(?:HTTP (?:response )?code|HTTP error code|status(?: code)?)\s*[:=]?\s*(\d{3})", re.I)
_STATUS_WORDS = {400: "bad request", 401: "not authorised", 403: "refused", 404: "not found", 410: "gone",
                 416: "range not satisfiable", 429: "too many requests", 500: "server error",
                 502: "bad gateway", 503: "unavailable", 504: "gateway timeout"}
_TRUNCATED = re.compile(r"TIFFFillTile|TIFFReadEncoded|TIFFReadDirectory|IReadBlock failed|"
                        r"Read error|truncat|short read|unexpected end|cannot read|ReadBlock", re.I)
_MISSING = re.compile(r"does not exist in the file system|No such file", re.I)
_NOT_RECOGNISED = re.compile(r"not recognized as (?:being in )?a supported file format|not a TIFF", re.I)


class UnreadableInputError(OSError):
    """One input (a file, an asset) could not be read; ``cause`` says why in a few words."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"{url}: {cause}")
        self.url, self.cause = url, cause


def cause_of(message: str) -> str:
    """A GDAL or HTTP error message reduced to what a user needs: the HTTP status with its meaning, "not
    a GeoTIFF", "truncated or corrupt", or the message itself when none of these fits."""
    text = " ".join(str(message).split())
    status = _HTTP_STATUS.search(text)
    if status:
        code = int(status.group(1))
        return f"HTTP {code} ({_STATUS_WORDS.get(code, 'error')})"
    if _MISSING.search(text):
        return "not found"
    if _NOT_RECOGNISED.search(text):
        return "not a raster GDAL recognises (not a GeoTIFF)"
    if _TRUNCATED.search(text):
        # GDAL repeats the path and nests its reasons ("Cannot read f: f, band 1: IReadBlock failed at X
        # offset 0, Y offset 1: TIFFReadEncodedTile() failed."): keep the first reason, it says where.
        parts = [part.strip() for part in re.split(r";\s|:\s", text)]
        reason = next((part for part in parts if _TRUNCATED.search(part)), "")
        return f"truncated or corrupt ({reason[:120]})" if reason else "truncated or corrupt"
    return text[:200] or "unreadable"


def display_url(path: str) -> str:
    """The URL (or file) a GDAL path reads, as a user knows it, without its query string: a signed
    URL's query is a credential (SAS token, S3 signature) and never goes into a message or a log."""
    text = path
    if text.startswith("/vsicurl/"):
        text = text[len("/vsicurl/"):]
    elif text.startswith("/vsicurl?"):
        for option in text[len("/vsicurl?"):].split("&"):
            name, _, value = option.partition("=")
            if name == "url":
                text = unquote(value)
                break
    elif text.startswith("/vsis3/"):
        text = "s3://" + text[len("/vsis3/"):]
    return text.split("?", 1)[0]


def expects_geotiff(url: str, media_type: str = "") -> bool:
    """Whether the asset promises a GeoTIFF: its media type says so, or (without one) its name ends
    in .tif/.tiff. GDAL paths (/vsicurl/..., /vsis3/...) are judged by the file name they end with."""
    kind = media_type.lower()
    if kind:
        return "tiff" in kind
    path = display_url(url)
    path = urlsplit(path).path if "://" in path else path
    return path.lower().endswith((".tif", ".tiff"))


def check_format(url: str, driver: str, media_type: str = "") -> None:
    """Raise UnreadableInputError when a file that promises a GeoTIFF is something else: a PNG named
    red.tif would otherwise be read without its georeferencing, or dropped without a word."""
    if driver and driver not in GEOTIFF_DRIVERS and expects_geotiff(url, media_type):
        raise UnreadableInputError(display_url(url), f"not a GeoTIFF: GDAL reads it as {driver}")


@dataclass(frozen=True)
class Skipped:
    """An input a run left out, with why."""

    url: str
    cause: str


class SkippedInputs:
    """The inputs a run left out, each once, in the order met; safe to add to from many threads."""

    def __init__(self, items: Iterable[Skipped] = ()) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, Skipped] = {}
        for item in items:
            self.add(item.url, item.cause)

    def add(self, url: str, cause: str) -> None:
        with self._lock:
            self._by_url.setdefault(url, Skipped(url, cause))

    def extend(self, others: Iterable[Skipped]) -> None:
        for item in others:
            self.add(item.url, item.cause)

    def __len__(self) -> int:
        return len(self._by_url)

    def contains(self, url: str) -> bool:
        return url in self._by_url

    def __iter__(self):
        with self._lock:
            return iter(list(self._by_url.values()))

    def lines(self, limit: int = 20) -> list[str]:
        """One line per skipped input ("<url>: <cause>"), at most ``limit`` and a count of the rest."""
        items = list(self)
        shown = [f"{item.url}: {item.cause}" for item in items[:limit]]
        if len(items) > limit:
            shown.append(f"… and {len(items) - limit} more")
        return shown

    def summary(self) -> str:
        """"2 inputs could not be read and were left out" (empty when none were)."""
        count = len(self)
        if not count:
            return ""
        if count == 1:
            return "1 input could not be read and was left out"
        return f"{count} inputs could not be read and were left out"

    def metadata(self) -> Mapping[str, str]:
        """What the output's metadata records: the count, and the inputs themselves (the first 50)."""
        items = list(self)
        meta = {"CUBESCOPE_SKIPPED_INPUTS": str(len(items))}
        if items:
            meta["CUBESCOPE_SKIPPED"] = "\n".join(f"{item.url}: {item.cause}" for item in items[:50])
        return meta


class StopAtFirstBadInputError(UnreadableInputError):
    """Raised instead of skipping when the user asked a run to fail at the first unreadable input."""

    def __str__(self) -> str:
        return f"Stopped at the first input that cannot be read (as asked): {self.url}: {self.cause}"
