"""A Zarr cube described like a STAC collection: its variables are the bands, its time axis the dates.

Remote stores are read without fsspec, aiohttp or s3fs: HTTP goes through the plugin's ``Fetcher``
(QGIS's network stack or requests, so proxies, auth headers and signing apply and errors carry the
HTTP status), object stores through GDAL's ``/vsis3/``, ``/vsigs/``, ``/vsiaz/`` with the very options
that ``hrefs.gdal_source`` gives the layers. xarray and zarr are imported only when a cube is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..stac.hrefs import GdalSource, gdal_source, redact, zarr_gdal_path
from .zarr_compat import read_only_store, zarr_major

if TYPE_CHECKING:
    from ..stac.http import Fetcher
    from ..stac.s3_options import S3Options

_METADATA_KEYS = (".zmetadata", ".zgroup", ".zarray", "zarr.json")
"""What marks a Zarr store, v2 then v3 (whose ``zarr.json`` says whether it is a group or an array)."""
_X_NAMES = ("x", "lon", "longitude")
_Y_NAMES = ("y", "lat", "latitude")


class ZarrError(Exception):
    """A Zarr store that cannot be used as a cube; the message names the store and what is wrong."""


@dataclass(frozen=True)
class ZarrVariable:
    """One data variable of the cube (a band)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    """The stored data type (``uint16``), what GDAL reads, not xarray's decoded float."""
    attrs: dict[str, Any] = field(default_factory=dict, hash=False)
    """CF attributes: units, long_name, scale_factor, add_offset, _FillValue, flag_values..."""


@dataclass(frozen=True)
class ZarrDescription:
    """What the dock shows of a Zarr cube, and what layers and time series need to read it."""

    url: str
    variables: tuple[ZarrVariable, ...]
    """Data variables, without coordinates, grid mappings and cell bounds."""
    dims: dict[str, int] = field(hash=False)
    times: tuple[datetime, ...]
    """CF-decoded, aware UTC; empty when the cube has no time dimension."""
    crs_wkt: str | None
    bbox_lonlat: tuple[float, float, float, float] | None
    title: str = ""
    description: str = ""
    time_dim: str | None = None
    x_dim: str | None = None
    y_dim: str | None = None
    geotransform: tuple[float, float, float, float, float, float] | None = None
    """GDAL's geotransform of the pixel edges from regularly spaced x/y coordinates; None otherwise."""

    def variable(self, name: str) -> ZarrVariable:
        for variable in self.variables:
            if variable.name == name:
                return variable
        names = ", ".join(v.name for v in self.variables) or "none"
        raise ZarrError(f"{self.url} has no variable '{name}' (it has: {names})")

    def time_index(self, when: datetime) -> int:
        """Index of the time step nearest to ``when`` (naive datetimes are taken as UTC)."""
        if not self.times:
            raise ZarrError(f"{self.url} has no time dimension")
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return min(range(len(self.times)), key=lambda i: abs((self.times[i] - when).total_seconds()))


# --- stores ----------------------------------------------------------------------------------------

class _RemoteStore(Mapping):
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


def _http_reader(url: str, fetch: Fetcher, signer: Callable[[str], str] | None,
                 headers: Mapping[str, str] | None) -> Callable[[str], bytes | None]:
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


def _vsi_reader(url: str, source: GdalSource) -> tuple[Callable[[str], bytes | None], Callable[[str], list[str]]]:
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
def _default_fetcher() -> Fetcher:
    """One requests session for all cubes opened without a fetcher: connections are reused."""
    from ..stac.http import requests_fetcher

    return requests_fetcher()


# --- opening and describing ------------------------------------------------------------------------

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
        target = gdal_source(url).path
        path = Path(target)
        if not path.is_dir():
            raise ZarrError(f"{url}: no such directory")
        has = {key: (path / key).is_file() for key in _METADATA_KEYS}

        def root_metadata() -> bytes:
            return (path / "zarr.json").read_bytes()
    else:
        if url.startswith(("http://", "https://")):
            reader = _http_reader(url, fetch or _default_fetcher(), signer, auth_headers)
            remote = _RemoteStore(url, reader, None, max_workers)
        else:
            read, list_dir = _vsi_reader(url, gdal_source(url, s3=s3, credentials=credentials))
            remote = _RemoteStore(url, read, list_dir, max_workers)
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


# --- reading CF metadata -----------------------------------------------------------------------------

def _find_dim(dataset: Any, names: tuple[str, ...], axis: str, standard_names: tuple[str, ...]) -> str | None:
    for dim in dataset.dims:
        coord = dataset.coords.get(dim)
        attrs = coord.attrs if coord is not None else {}
        if str(dim).lower() in names or attrs.get("axis") == axis or attrs.get("standard_name") in standard_names:
            return str(dim)
    return None


def _time_dim(dataset: Any) -> str | None:
    for dim in dataset.dims:
        coord = dataset.coords.get(dim)
        if coord is not None and (coord.dtype.kind == "M" or coord.attrs.get("standard_name") == "time"
                                  or coord.attrs.get("axis") == "T" or str(dim).lower() in ("time", "t")):
            return str(dim)
    return None


def _as_utc(value: Any) -> datetime:
    """A numpy datetime64 or cftime date as an aware UTC datetime (CF times are UTC unless stated)."""
    import numpy as np

    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    getattr(value, "microsecond", 0), tzinfo=timezone.utc)


def _times(dataset: Any, time_dim: str | None, url: str) -> tuple[datetime, ...]:
    if time_dim is None or time_dim not in dataset.coords:
        return ()
    values = dataset[time_dim].values
    if values.dtype.kind not in "MO":
        units = dataset[time_dim].attrs.get("units") or dataset[time_dim].encoding.get("units", "?")
        raise ZarrError(f"The time axis '{time_dim}' of {url} could not be decoded (units: {units})")
    return tuple(_as_utc(v) for v in values)


def _wkt_of(attrs: Mapping[str, Any]) -> str | None:
    crs = attrs.get("_CRS")  # GDAL's own Zarr convention
    if isinstance(crs, dict) and crs.get("wkt"):
        return str(crs["wkt"])
    for key in ("crs_wkt", "spatial_ref"):
        if isinstance(attrs.get(key), str) and attrs[key].strip():
            return attrs[key]
    return None


def _crs_wkt(dataset: Any, names: list[str], x_dim: str | None, y_dim: str | None) -> str | None:
    """grid_mapping variable, GDAL's ``_CRS``, global attributes, else EPSG:4326 for lat/lon axes."""
    for name in names:
        var = dataset[name]
        mapping = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if mapping and mapping in dataset.variables:
            wkt = _wkt_of(dataset[mapping].attrs)
            if wkt:
                return wkt
        wkt = _wkt_of(var.attrs)
        if wkt:
            return wkt
    wkt = _wkt_of(dataset.attrs)
    if wkt:
        return wkt
    from osgeo import osr

    epsg = dataset.attrs.get("proj_epsg") or dataset.attrs.get("epsg")
    if not epsg and x_dim and y_dim and x_dim.lower() in _X_NAMES[1:] and y_dim.lower() in _Y_NAMES[1:]:
        epsg = 4326
    if not epsg:
        return None
    srs = osr.SpatialReference()
    if srs.ImportFromEPSG(int(epsg)) != 0:
        return None
    return srs.ExportToWkt()


def _bbox_lonlat(dataset: Any, x_dim: str | None, y_dim: str | None, wkt: str | None):
    """Extent of the pixel edges in lon/lat, following the densified edges of projected grids."""
    import numpy as np
    from osgeo import osr

    if not (x_dim and y_dim and wkt and x_dim in dataset.coords and y_dim in dataset.coords):
        return None
    bounds = []
    for dim in (x_dim, y_dim):
        values = np.asarray(dataset[dim].values, dtype=float)
        half = abs(values[1] - values[0]) / 2 if values.size > 1 else 0.0
        bounds.append((float(np.nanmin(values)) - half, float(np.nanmax(values)) + half))
    (x0, x1), (y0, y1) = bounds
    source, target = osr.SpatialReference(), osr.SpatialReference()
    if source.ImportFromWkt(wkt) != 0:
        return None
    if source.IsGeographic():
        return (x0, y0, x1, y1)
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    steps = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([x0 + (x1 - x0) * steps, np.full(21, x1), x1 - (x1 - x0) * steps, np.full(21, x0)])
    ys = np.concatenate([np.full(21, y0), y0 + (y1 - y0) * steps, np.full(21, y1), y1 - (y1 - y0) * steps])
    points = osr.CoordinateTransformation(source, target).TransformPoints(list(zip(xs.tolist(), ys.tolist())))
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return (min(lons), min(lats), max(lons), max(lats))


def _geotransform(dataset: Any, x_dim: str | None, y_dim: str | None
                  ) -> tuple[float, float, float, float, float, float] | None:
    """(x0, dx, 0, y0, 0, dy) of the pixel edges when x and y are regularly spaced (what GDAL also finds)."""
    import numpy as np

    if not (x_dim and y_dim and x_dim in dataset.coords and y_dim in dataset.coords):
        return None
    steps = []
    for dim in (x_dim, y_dim):
        values = np.asarray(dataset[dim].values, dtype=float)
        if values.ndim != 1 or values.size < 2:
            return None
        step = (values[-1] - values[0]) / (values.size - 1)
        if step == 0 or not np.allclose(np.diff(values), step, rtol=1e-6, atol=abs(step) * 1e-6):
            return None
        step = float(f"{step:.12g}")  # 0.0025, not the 0.0025000000000000022 of a float sum
        steps.append((float(values[0]) - step / 2, step))
    (x0, dx), (y0, dy) = steps
    return (x0, dx, 0.0, y0, 0.0, dy)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values, so attributes can go to JSON and Qt."""
    return value.tolist() if hasattr(value, "tolist") else value


def _variable(var: Any, name: str) -> ZarrVariable:
    attrs = {k: _plain(v) for k, v in var.attrs.items() if k != "_CRS"}
    for key in ("scale_factor", "add_offset", "_FillValue", "missing_value", "units"):
        if key in var.encoding and key not in attrs:
            attrs[key] = _plain(var.encoding[key])
    dtype = var.encoding.get("dtype", var.dtype)
    return ZarrVariable(name, tuple(str(d) for d in var.dims), tuple(int(n) for n in var.shape), str(dtype), attrs)


def describe_dataset(dataset: Any, url: str) -> ZarrDescription:
    skip = set()
    for var in dataset.variables.values():
        for key in ("grid_mapping", "bounds"):
            ref = var.attrs.get(key) or var.encoding.get(key)
            if isinstance(ref, str):
                skip.add(ref)
    names = [str(n) for n, v in dataset.data_vars.items()
             if n not in skip and v.ndim > 0 and "grid_mapping_name" not in v.attrs]
    x_dim = _find_dim(dataset, _X_NAMES, "X", ("projection_x_coordinate", "longitude"))
    y_dim = _find_dim(dataset, _Y_NAMES, "Y", ("projection_y_coordinate", "latitude"))
    time_dim = _time_dim(dataset)
    wkt = _crs_wkt(dataset, names, x_dim, y_dim)
    attrs = dataset.attrs
    return ZarrDescription(
        url=url,
        variables=tuple(_variable(dataset[n], n) for n in names),
        dims={str(k): int(v) for k, v in dataset.sizes.items()},
        times=_times(dataset, time_dim, url),
        crs_wkt=wkt,
        bbox_lonlat=_bbox_lonlat(dataset, x_dim, y_dim, wkt),
        title=str(attrs.get("title", "")),
        description=str(attrs.get("summary") or attrs.get("description") or attrs.get("comment") or ""),
        time_dim=time_dim,
        x_dim=x_dim,
        y_dim=y_dim,
        geotransform=_geotransform(dataset, x_dim, y_dim),
    )
