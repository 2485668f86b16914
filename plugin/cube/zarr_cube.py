"""A Zarr cube described like a STAC collection: its variables are the bands, its time axis the dates.

Opens the store as a lazy ``xarray.Dataset``, describes it (`zarr_description`) and gives GDAL's source
for one date of a variable. Remote stores are read without fsspec, aiohttp or s3fs (`zarr_stores`):
HTTP goes through the plugin's ``Fetcher`` (QGIS's network stack or requests, so proxies, auth headers
and signing apply and errors carry the HTTP status), object stores through GDAL's ``/vsis3/``,
``/vsigs/``, ``/vsiaz/`` with the very options that ``hrefs.gdal_source`` gives the layers. xarray and
zarr are imported only when a cube is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..stac.hrefs import GdalSource, gdal_source, zarr_gdal_path
from ..stac.http import local_path
from .zarr_compat import read_only_store, zarr_major
from .zarr_description import ZarrDescription, ZarrError, ZarrVariable, describe_dataset
from .zarr_stores import RemoteStore, default_fetcher, http_reader, vsi_reader

if TYPE_CHECKING:
    from ..stac.http import Fetcher
    from ..stac.s3_options import S3Options

# The cube's description and its error are imported from here by the tasks, Processing and the engine.
__all__ = [
    "ZarrDescription",
    "ZarrError",
    "ZarrVariable",
    "describe_zarr",
    "layer_source",
    "open_zarr_dataset",
]

_METADATA_KEYS = (".zmetadata", ".zgroup", ".zarray", "zarr.json")
"""What marks a Zarr store, v2 then v3 (whose ``zarr.json`` says whether it is a group or an array)."""


def open_zarr_dataset(
    url: str,
    s3: S3Options | None = None,
    credentials: Mapping[str, str] | None = None,
    *,
    fetch: Fetcher | None = None,
    signer: Callable[[str], str] | None = None,
    auth_headers: Mapping[str, str] | None = None,
    chunks: Any = None,
    max_workers: int = 8,
) -> Any:
    """The cube as a lazy ``xarray.Dataset`` (consolidated metadata when the store has it).

    Zarr v2 stores, and v3 ones (``zarr.json``) where zarr-python 3 is installed.
    ``chunks=None`` reads without dask (only the chunks a selection touches); pass ``{}`` or a dict
    for dask arrays. HTTP uses ``fetch`` (default: requests); s3://, gs://, az:// use GDAL.
    """
    import xarray

    url = url.rstrip("/")
    target: Any
    if "://" not in url or url.startswith("file://"):
        # The store's own folder (gdal_source would read a path inside a store as one of its arrays).
        path = local_path(url) or Path(url)
        target = str(path)
        if not path.is_dir():
            raise ZarrError(f"{url}: no such directory")
        has = {key: (path / key).is_file() for key in _METADATA_KEYS}

        def root_metadata() -> bytes:
            return (path / "zarr.json").read_bytes()
    else:
        if url.startswith(("http://", "https://")):
            reader = http_reader(url, fetch or default_fetcher(), signer, auth_headers)
            remote = RemoteStore(url, reader, None, max_workers)
        else:
            read, list_dir = vsi_reader(url, gdal_source(url, s3=s3, credentials=credentials))
            remote = RemoteStore(url, read, list_dir, max_workers)
        has = {".zmetadata": ".zmetadata" in remote}
        if not has[".zmetadata"]:
            has.update({key: key in remote for key in (".zgroup", ".zarray")})
        if not any(has.values()):
            has["zarr.json"] = "zarr.json" in remote

        def root_metadata() -> bytes:
            return remote["zarr.json"]
        target = read_only_store(remote, max_workers)
    if has.get(".zarray") and not has.get(".zgroup") and not has.get(".zmetadata"):
        raise ZarrError(f"{url} is a single Zarr array, not a group of variables: open its parent")
    if not any(has.values()):
        raise ZarrError(f"{url} is not a Zarr store (no .zmetadata, .zgroup, .zarray or zarr.json)")
    consolidated = bool(has.get(".zmetadata"))
    if not (consolidated or has.get(".zgroup")):
        consolidated = _v3_consolidated(url, root_metadata())
    try:
        return xarray.open_zarr(target, consolidated=consolidated, chunks=chunks)
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise ZarrError(f"Cannot open the Zarr store {url}: {error}") from error


def _v3_consolidated(url: str, metadata: bytes) -> bool:
    """Whether a Zarr v3 group holds consolidated metadata in its ``zarr.json``; a v3 array, or a v3 store
    where zarr-python 2 is installed, is refused with what to do."""
    try:
        node = json.loads(metadata)
    except ValueError as error:
        raise ZarrError(f"{url}/zarr.json is not valid JSON: {error}") from error
    if not isinstance(node, dict) or node.get("zarr_format") != 3:
        raise ZarrError(f"{url}/zarr.json does not describe a Zarr v3 group (zarr_format: "
                        f"{node.get('zarr_format') if isinstance(node, dict) else None})")
    if node.get("node_type") == "array":
        raise ZarrError(f"{url} is a single Zarr array, not a group of variables: open its parent")
    if zarr_major() < 3:
        import zarr

        raise ZarrError(f"{url} is a Zarr v3 store (zarr.json); reading it needs zarr-python 3, and this Python has "
                        f"zarr {zarr.__version__}: update zarr, or give a Zarr v2 copy of the cube")
    return bool(node.get("consolidated_metadata"))


def describe_zarr(
    url: str,
    s3: S3Options | None = None,
    credentials: Mapping[str, str] | None = None,
    **open_options: Any,
) -> ZarrDescription:
    """Variables, dimensions, time steps, CRS and extent of a cube; ``open_options`` as for opening."""
    dataset = open_zarr_dataset(url, s3, credentials, **open_options)
    try:
        return describe_dataset(dataset, url.rstrip("/"))
    finally:
        dataset.close()


def layer_source(
    description: ZarrDescription,
    variable: str,
    time_index: int | None = None,
    *,
    s3: S3Options | None = None,
    credentials: Mapping[str, str] | None = None,
    auth_headers: Mapping[str, str] | None = None,
) -> GdalSource:
    """GDAL's ``ZARR:"...":/variable:index`` for one date of a variable, checked against the cube first."""
    var = description.variable(variable)
    if len(var.dims) > 3 or len(var.dims) < 2:
        raise ZarrError(f"'{variable}' of {description.url} has {len(var.dims)} dimensions {var.dims}: "
                        "only 2-D and 3-D (time, y, x) variables can be shown as layers")
    if len(var.dims) == 3:
        if time_index is None:
            raise ZarrError(f"'{variable}' of {description.url} has a dimension '{var.dims[0]}': "
                            f"give an index between 0 and {var.shape[0] - 1}")
        if not 0 <= time_index < var.shape[0]:
            raise ZarrError(f"Index {time_index} is outside '{var.dims[0]}' of '{variable}' (0..{var.shape[0] - 1})")
    elif time_index is not None:
        raise ZarrError(f"'{variable}' of {description.url} has no time dimension")
    return zarr_gdal_path(description.url, variable, time_index, s3=s3, credentials=credentials,
                          auth_headers=auth_headers)
