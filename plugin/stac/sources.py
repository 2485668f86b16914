"""Where data comes from: a STAC API, a static STAC catalog, a Zarr cube, or the Brazil Data Cube's point
services (WTSS time series, WLTS land-use trajectories), and the presets users expect.

A Source is what the connections list stores in QGIS settings (via `to_dict`), so it holds names and
ids only: credentials stay in QGIS's authentication manager, referenced by `authcfg`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .http import local_path
from .object_store import is_object_store_url
from .s3_options import S3Options

SIGNING_SCHEMES = ("", "planetary-computer", "bdc")


class SourceKind(str, Enum):
    STAC_API = "stac-api"
    STATIC = "static"
    ZARR = "zarr"
    WTSS = "wtss"
    """A Web Time Series Service (v2): its coverages are read point by point."""
    WLTS = "wlts"
    """A Web Land Trajectory Service: the land-use classes of a point through time."""


@dataclass(frozen=True)
class Source:
    """One connection in the dock's list."""

    name: str
    kind: SourceKind
    url: str
    """Landing page of an API, catalog.json (URL or local path) of a static catalog, the Zarr store, or the
    root of a WTSS or WLTS service."""
    authcfg: str = ""
    """Id of a QGIS authentication configuration (never the credentials themselves)."""
    signing: str = ""
    """How asset hrefs are signed before reading: "planetary-computer", "bdc" or ""."""
    s3: S3Options | None = None
    preset: bool = False
    """Shipped with the plugin (not editable, not saved)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty text, got {self.name!r}")
        if not isinstance(self.kind, SourceKind):
            object.__setattr__(self, "kind", _kind(self.kind))
        if not isinstance(self.url, str) or not self.url.strip():
            raise ValueError(f"url must be a non-empty URL or path, got {self.url!r}")
        if not isinstance(self.authcfg, str) or not re.fullmatch(r"[A-Za-z0-9]*", self.authcfg):
            raise ValueError(f"authcfg must be a QGIS authentication configuration id (letters and digits), "
                             f"got {self.authcfg!r}")
        if self.signing not in SIGNING_SCHEMES:
            raise ValueError(f"signing must be one of {', '.join(repr(s) for s in SIGNING_SCHEMES)}, "
                             f"got {self.signing!r}")
        if self.s3 is not None and not isinstance(self.s3, S3Options):
            raise ValueError(f"s3 must be S3 options, got {self.s3!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        if self.s3 is None:
            del data["s3"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        """The Source that `to_dict` wrote; ValueError naming the field for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"a source must be a mapping, got {type(data).__name__}")
        known = {"name", "kind", "url", "authcfg", "signing", "s3", "preset"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown source field(s): {', '.join(unknown)}")
        for required in ("name", "kind", "url"):
            if required not in data:
                raise ValueError(f"source field '{required}' is missing")
        s3 = data.get("s3")
        if s3 is not None:
            if not isinstance(s3, dict):
                raise ValueError(f"s3 must be a mapping, got {s3!r}")
            bad = sorted(set(s3) - {"endpoint", "region", "requester_pays", "https", "virtual_hosting"})
            if bad:
                raise ValueError(f"unknown s3 field(s): {', '.join(bad)}")
            s3 = S3Options(**s3)
        preset = data.get("preset", False)
        if not isinstance(preset, bool):
            raise ValueError(f"preset must be true or false, got {preset!r}")
        return cls(name=data["name"], kind=_kind(data["kind"]), url=data["url"],
                   authcfg=data.get("authcfg", "") or "", signing=data.get("signing", "") or "",
                   s3=s3, preset=preset)


def _kind(value: Any) -> SourceKind:
    try:
        return SourceKind(value)
    except ValueError:
        allowed = ", ".join(repr(k.value) for k in SourceKind)
        raise ValueError(f"kind must be one of {allowed}, got {value!r}") from None


PRESETS: tuple[Source, ...] = (
    Source("Element 84 Earth Search", SourceKind.STAC_API, "https://earth-search.aws.element84.com/v1",
           preset=True),
    Source("Microsoft Planetary Computer", SourceKind.STAC_API, "https://planetarycomputer.microsoft.com/api/stac/v1",
           signing="planetary-computer", preset=True),
    Source("Brazil Data Cube", SourceKind.STAC_API, "https://data.inpe.br/bdc/stac/v1/", signing="bdc", preset=True),
    Source("Digital Earth Africa", SourceKind.STAC_API, "https://explorer.digitalearth.africa/stac", preset=True),
)


def guess_kind(url: str) -> SourceKind:
    """What a URL or path the user typed most likely is; the add-connection dialog preselects it."""
    text = url.strip()
    trimmed = text.rstrip("/\\").lower()
    scheme = urlparse(text).scheme.lower()
    if trimmed.endswith((".zarr", ".zarr.zip")):
        return SourceKind.ZARR
    if trimmed.endswith(("catalog.json", "collection.json")):
        return SourceKind.STATIC
    service = re.search(r"/(wtss|wlts)(/|$)", trimmed)
    if scheme in ("http", "https") and service:
        return SourceKind.WTSS if service.group(1) == "wtss" else SourceKind.WLTS
    if scheme in ("s3", "gs", "az"):
        return SourceKind.ZARR  # object stores hold cubes; STAC APIs are served over http(s)
    path = local_path(text)
    looks_local = scheme == "file" or re.match(r"([/~.\\]|[A-Za-z]:)", text) is not None
    if path is not None and (looks_local or path.exists()):
        if path.is_dir() and any((path / marker).exists() for marker in (".zgroup", ".zarray", "zarr.json")):
            return SourceKind.ZARR
        return SourceKind.STATIC
    return SourceKind.STAC_API


def static_catalog_url(url: str) -> str:
    """The JSON file to open for a static source: a directory means its catalog.json (or collection.json)."""
    if is_object_store_url(url) and url.endswith("/"):
        return f"{url}catalog.json"  # a bucket prefix; listing it to look further would need more rights
    path = local_path(url)
    if path is None or not path.is_dir():
        return url
    for name in ("catalog.json", "collection.json"):
        if (path / name).is_file():
            return str(Path(path) / name)
    return str(Path(path) / "catalog.json")
