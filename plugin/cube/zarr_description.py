"""What a Zarr cube holds, as the dock, the layers and the time series see it: its variables (the
bands), dimensions, CF-decoded time steps, CRS, lon/lat extent and geotransform.

`describe_dataset` reads them from an open ``xarray.Dataset``'s CF metadata; `zarr_cube` opens the
store. numpy and GDAL's osr are imported only when a cube is described.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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
