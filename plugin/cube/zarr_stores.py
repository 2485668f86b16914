"""Remote Zarr stores without fsspec, aiohttp or s3fs: key -> bytes over the plugin's ``Fetcher`` (HTTP)
or GDAL's ``/vsis3/``, ``/vsigs/``, ``/vsiaz/`` (object stores), many chunks at once in threads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING

from ..stac.hrefs import GdalSource, redact
from .zarr_description import ZarrError

if TYPE_CHECKING:
    from ..stac.http import Fetcher


class RemoteStore(Mapping):
    """Read-only key -> bytes access to a remote store; reads many chunks at once in threads."""

    def __init__(self, url: str, read: Callable[[str], bytes | None],
                 list_dir: Callable[[str], list[str]] | None, max_workers: int) -> None:
        self.url = url
        self._read = read
        self._list_dir = list_dir
        self._max_workers = max(1, max_workers)
        self._metadata: dict[str, bytes | None] = {}
        """.zmetadata, .zgroup, .zattrs, .zarray, zarr.json: small, asked for more than once, fetched once."""

    def _get(self, key: str) -> bytes | None:
        name = key.rsplit("/", 1)[-1]
        if not (name.startswith(".z") or name == "zarr.json"):
            return self._read(key)
        if key not in self._metadata:
            self._metadata[key] = self._read(key)
        return self._metadata[key]

    def __getitem__(self, key: str) -> bytes:
        data = self._get(key)
        if data is None:
            raise KeyError(key)
        return data

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._get(key) is not None

    def getitems(self, keys: list[str]) -> dict[str, bytes]:
        keys = list(keys)
        if len(keys) <= 1 or self._max_workers == 1:
            found = [self._get(k) for k in keys]
        else:
            with ThreadPoolExecutor(min(self._max_workers, len(keys)), thread_name_prefix="zarr") as pool:
                found = list(pool.map(self._get, keys))
        return {k: v for k, v in zip(keys, found) if v is not None}

    def listdir(self, path: str = "") -> list[str]:
        if self._list_dir is None:
            raise ZarrError(f"{self.url} has no consolidated metadata (.zmetadata, or consolidated_metadata in "
                            "zarr.json), and its variables cannot be listed over plain HTTP: consolidate the store "
                            "(zarr.consolidate_metadata)")
        return self._list_dir(path)

    def __iter__(self) -> Iterator[str]:  # the top level only: zarr lists through listdir()
        return iter(self.listdir(""))

    def __len__(self) -> int:
        return len(self.listdir(""))


def http_reader(url: str, fetch: Fetcher, signer: Callable[[str], str] | None,
                 headers: Mapping[str, str] | None) -> Callable[[str], bytes | None]:
    """Reads a key over HTTP, signed when the catalog signs; a missing key (404/410) reads as None."""
    from ..stac.http import HttpError

    def read(key: str) -> bytes | None:
        plain = f"{url}/{key}"
        signed = signer(plain) if signer is not None else plain
        try:
            return fetch("GET", signed, headers=dict(headers or {})).content
        except HttpError as error:
            if error.status in (404, 410):
                return None  # a missing chunk is legal: it holds the fill value
            raise ZarrError(str(error).replace(signed, redact(signed))) from error
    return read


def vsi_reader(url: str, source: GdalSource) -> tuple[Callable[[str], bytes | None], Callable[[str], list[str]]]:
    """Reads and lists keys through GDAL's /vsi paths, with the object store's options of ``source``."""
    from ..stac.gdal_env import GdalOpenError, list_vsi_dir, read_vsi_file

    def read(key: str) -> bytes | None:
        try:
            return read_vsi_file(f"{source.path}/{key}", source.config, f"{url}/{key}")
        except GdalOpenError as error:
            raise ZarrError(str(error)) from error

    def list_dir(prefix: str) -> list[str]:
        return list_vsi_dir(f"{source.path}/{prefix}".rstrip("/"), source.config)
    return read, list_dir


@lru_cache(maxsize=1)
def default_fetcher() -> Fetcher:
    """One requests session for all cubes opened without a fetcher: connections are reused."""
    from ..stac.http import requests_fetcher

    return requests_fetcher()
