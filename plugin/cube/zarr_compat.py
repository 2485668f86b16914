"""What differs between zarr-python 2 and 3, in one place; the rest of the plugin uses their common API.

The locks install zarr 2.18 where QGIS runs on Python 3.11 and numpy 1 (Debian 12) and zarr 3 on
Debian 13 and sid (zarr 2 does not install on Python 3.14). Both have ``zarr.open_group``,
``Group.create`` / ``Group.full`` (keyword arguments), ``Array.append`` and ``zarr.consolidate_metadata``;
they differ in:

- the stores they take: zarr 2 a mapping of keys to bytes (``KVStore``), zarr 3 an asynchronous
  ``zarr.abc.store.Store``; :func:`read_only_store` gives either over the same mapping;
- the format of new stores: zarr 3 writes Zarr v3 unless told otherwise. Everything the plugin writes
  stays Zarr v2 (:func:`v2_format`): GDAL before 3.11 (3.6 in Debian 12, 3.10 in Debian 13), which
  shows the cubes as layers, cannot decode the v3 zarr-python 3 writes ("Unsupported codec: bytes"),
  and the tools of the people the cubes are shared with (zarr 2, older GDAL and R) read v2;
- skipping chunks that hold only the fill value: a keyword in zarr 2, an array ``config`` in zarr 3.

Nothing here imports QGIS; zarr is imported only when a function is called.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def zarr_major() -> int:
    """The installed zarr-python's major version (2 or 3)."""
    import zarr

    return int(str(zarr.__version__).split(".", 1)[0])


def v2_format() -> dict[str, Any]:
    """Keyword arguments that make ``zarr.open_group(..., mode="w")`` and xarray's ``to_zarr`` write
    Zarr v2 under zarr 3 too (zarr 2 writes nothing else, and xarray before 2024.10 has no such keyword)."""
    return {"zarr_format": 2} if zarr_major() >= 3 else {}


def skip_empty_chunks() -> dict[str, Any]:
    """Keyword arguments of ``Group.full`` / ``Group.create`` so that chunks holding only the fill value
    are not written (zarr 3 does so by default and deprecates zarr 2's keyword)."""
    if zarr_major() >= 3:
        return {"config": {"write_empty_chunks": False}}
    return {"write_empty_chunks": False}


def read_only_store(mapping: Mapping[str, bytes], max_workers: int) -> Any:
    """A read-only zarr store over ``mapping`` for the installed zarr.

    The mapping answers ``get(key)`` (None for a missing key: a missing chunk holds the fill value),
    ``getitems(keys)`` (many keys at once, in threads) and ``listdir(prefix)`` (the names under a
    prefix, or an exception saying why it cannot list). Its errors reach the caller unchanged.
    """
    if zarr_major() >= 3:
        return _zarr3_store(mapping, max_workers)
    from zarr.storage import KVStore

    class _Store(KVStore):
        def getitems(self, keys: Any, **_kwargs: Any) -> dict[str, bytes]:
            return self._mutable_mapping.getitems(keys)

        def listdir(self, path: str = "") -> list[str]:
            return self._mutable_mapping.listdir(path)

    return _Store(mapping)


def _byte_range(data: bytes, request: Any) -> bytes:
    """The part of ``data`` a zarr 3 ``ByteRequest`` asks for (the whole object was read)."""
    if request is None:
        return data
    if hasattr(request, "suffix"):
        return data[-request.suffix:] if request.suffix else b""
    if hasattr(request, "offset"):
        return data[request.offset:]
    return data[request.start:request.end]


def _zarr3_store(mapping: Mapping[str, bytes], max_workers: int) -> Any:
    """zarr 3 calls a store's coroutines concurrently on its own event loop; the mapping blocks, so
    each call runs in a pool of ``max_workers`` threads, which keeps chunk reads parallel."""
    from zarr.abc.store import Store

    class _ReadOnlyStore(Store):
        supports_writes = False
        supports_deletes = False
        supports_listing = True

        def __init__(self) -> None:
            super().__init__(read_only=True)
            self.mapping = mapping
            self._pool = ThreadPoolExecutor(max(1, max_workers), thread_name_prefix="zarr")

        def __eq__(self, other: object) -> bool:
            return isinstance(other, _ReadOnlyStore) and other.mapping is self.mapping

        def __hash__(self) -> int:
            return id(self.mapping)

        async def _call(self, function: Any, *args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            data = await self._call(self.mapping.get, key)
            return None if data is None else prototype.buffer.from_bytes(_byte_range(data, byte_range))

        async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:
            return list(await asyncio.gather(*(self.get(key, prototype, part) for key, part in key_ranges)))

        async def exists(self, key: str) -> bool:
            return await self._call(self.mapping.get, key) is not None

        async def set(self, key: str, value: Any) -> None:
            self._check_writable()

        async def delete(self, key: str) -> None:
            self._check_writable()

        async def list_dir(self, prefix: str) -> AsyncIterator[str]:
            for name in await self._call(self.mapping.listdir, prefix.rstrip("/")):
                yield name

        def list(self) -> AsyncIterator[str]:
            return self.list_prefix("")

        def list_prefix(self, prefix: str) -> AsyncIterator[str]:  # reading lists one folder at a time
            raise NotImplementedError("a remote store is listed one folder at a time (list_dir)")

        def close(self) -> None:
            super().close()
            self._pool.shutdown(wait=False)

    return _ReadOnlyStore()
