"""Pixel values through time from a Zarr cube (local, http(s) or object store), as a `PixelReader`.

The cube is opened once (consolidated metadata, lazily, without dask) and kept for the next click;
a point read selects the nearest pixel in the cube's own CRS, as ``.sel(x=, y=, method="nearest")``
does, and loads only the chunks under it, every variable at once. Values are what CF decoding gives:
scale_factor/add_offset applied, _FillValue as NaN.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import numpy as np
from osgeo import osr

from ..stac.bands import BandNotFound
from ..stac.written_metadata import variable_common_names
from .reader import NAN, OnValues, PointOutsideCoverage, PointValues, Scene, iso
from .zarr_cube import ZarrDescription, ZarrError, open_zarr_dataset
from .zarr_description import describe_dataset


def _aware(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


class ZarrReader:
    """A `PixelReader` over the (time, y, x) variables of a Zarr cube.

    ``open_options`` go to `zarr_cube.open_zarr_dataset` (``s3``, ``credentials``, ``fetch``,
    ``signer``, ``auth_headers``, ``max_workers``); ``start`` and ``end`` (aware or UTC datetimes,
    inclusive) limit the timeline. Raises ZarrError for a cube without a time dimension or without
    x/y axes.
    """

    def __init__(self, url: str, *, start: datetime | None = None, end: datetime | None = None,
                 **open_options: Any) -> None:
        self.url = url.rstrip("/")
        self._lock = threading.Lock()
        self._dataset = open_zarr_dataset(self.url, **open_options)
        try:
            self.description: ZarrDescription = describe_dataset(self._dataset, self.url)
        except Exception:
            self._dataset.close()
            raise
        d = self.description
        if d.time_dim is None:
            self._dataset.close()
            raise ZarrError(f"{self.url} has no time dimension (its dimensions: "
                            f"{', '.join(f'{k}={v}' for k, v in d.dims.items()) or 'none'}): "
                            "a time series needs one")
        if d.x_dim is None or d.y_dim is None:
            self._dataset.close()
            raise ZarrError(f"{self.url} has no x/y (or lon/lat) axes: its dimensions are {', '.join(d.dims)}")
        self._variables = [v.name for v in d.variables if {d.time_dim, d.x_dim, d.y_dim} <= set(v.dims)]
        if not self._variables:
            self._dataset.close()
            raise ZarrError(f"{self.url} has no variable with dimensions ({d.time_dim}, {d.y_dim}, {d.x_dim})")
        start, end = (_aware(start), _aware(end))
        self._scenes = [Scene(datetime=when, item_id=iso(when), tile=None, group=iso(when), order=i)
                        for i, when in enumerate(d.times)
                        if (start is None or when >= start) and (end is None or when <= end)]
        self._to_cube = self._transformation(d.crs_wkt)
        xs = np.asarray(self._dataset[d.x_dim].values, dtype=float)
        ys = np.asarray(self._dataset[d.y_dim].values, dtype=float)
        half_x = abs(xs[1] - xs[0]) / 2 if xs.size > 1 else 0.5
        half_y = abs(ys[1] - ys[0]) / 2 if ys.size > 1 else 0.5
        self._x_range = (float(xs.min()) - half_x, float(xs.max()) + half_x)
        self._y_range = (float(ys.min()) - half_y, float(ys.max()) + half_y)

    def _transformation(self, wkt: str | None) -> osr.CoordinateTransformation | None:
        if wkt is None:
            raise ZarrError(f"{self.url} does not say its CRS (no grid_mapping, crs_wkt or _CRS), and its axes "
                            f"'{self.description.x_dim}', '{self.description.y_dim}' are not lon/lat")
        target = osr.SpatialReference()
        if target.ImportFromWkt(wkt) != 0:
            raise ZarrError(f"{self.url}: its CRS cannot be read: {wkt[:80]}...")
        source = osr.SpatialReference()
        source.ImportFromEPSG(4326)
        for srs in (source, target):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return None if source.IsSame(target) else osr.CoordinateTransformation(source, target)

    # ---- what the reader has ----

    def timeline(self) -> list[Scene]:
        return list(self._scenes)

    def bands(self) -> list[str]:
        return list(self._variables)

    def variable_attrs(self) -> dict[str, dict[str, Any]]:
        """CF attributes of each band (flag_values, units, ...), for quality rules and labels."""
        return {v.name: dict(v.attrs) for v in self.description.variables if v.name in self._variables}

    def common_names(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, common in variable_common_names(self.variable_attrs()).items():
            found.setdefault(common, name)
        return found

    def check_bands(self, names: Sequence[str]) -> None:
        for name in names:
            if name not in self._variables:
                raise BandNotFound(f"{self.url} has no variable '{name}' (it has: {', '.join(self._variables)})",
                                   list(self._variables))

    def cube_xy(self, lon: float, lat: float) -> tuple[float, float]:
        """(lon, lat) in the cube's CRS."""
        if self._to_cube is None:
            return lon, lat
        with self._lock:  # one OGR transformation object, not to be shared by threads at once
            x, y = self._to_cube.TransformPoint(lon, lat)[:2]
        return x, y

    def scenes_at(self, lon: float, lat: float) -> list[Scene]:
        x, y = self.cube_xy(lon, lat)
        if not (self._x_range[0] <= x <= self._x_range[1] and self._y_range[0] <= y <= self._y_range[1]):
            raise PointOutsideCoverage(lon, lat, len(self._scenes), self.description.bbox_lonlat)
        return list(self._scenes)

    # ---- reading ----

    def pixel(self, lon: float, lat: float) -> tuple[int, int]:
        """(column, row) of the pixel nearest to the point, as ``.sel(..., method="nearest")`` picks it."""
        d = self.description
        x, y = self.cube_xy(lon, lat)
        with self._lock:  # pandas indexes are not safe to query from two threads (two clicks) at once
            column = int(self._dataset.indexes[d.x_dim].get_indexer([x], method="nearest")[0])
            row = int(self._dataset.indexes[d.y_dim].get_indexer([y], method="nearest")[0])
        return column, row

    def _load(self, name: str, column: int, row: int) -> np.ndarray:
        # Integer selection only: pandas indexes are not safe to query from several threads at once.
        d = self.description
        selected = self._dataset[name].isel({d.x_dim: column, d.y_dim: row})
        return np.asarray(selected.transpose(d.time_dim).values, dtype=float)

    def read_point(
        self,
        lon: float,
        lat: float,
        bands: Sequence[str],
        *,
        on_values: OnValues | None = None,
        is_canceled: Callable[[], bool] | None = None,
    ) -> list[PointValues]:
        if not bands:
            raise ValueError("No bands to read")
        self.check_bands(bands)
        scenes = self.scenes_at(lon, lat)
        column, row = self.pixel(lon, lat)
        names = list(dict.fromkeys(bands))
        columns: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="cubescope-zarr") as pool:
            futures = {name: pool.submit(self._load, name, column, row) for name in names}
            for name, future in futures.items():
                try:
                    columns[name] = future.result()
                except (ZarrError, OSError, KeyError, ValueError, RuntimeError) as error:
                    errors[name] = f"{self.url} /{name}: {error}"
        out = []
        total = len(scenes)
        for done, scene in enumerate(scenes, start=1):
            if is_canceled is not None and is_canceled():
                break
            values = PointValues(scene, {name: float(columns[name][scene.order]) if name in columns else NAN
                                         for name in names})
            for name, message in errors.items():
                values.errors.append(message)
                values.failed_bands.add(name)
            out.append(values)
            if on_values is not None:
                on_values(values, done, total)
        return out

    def read_window(self, bbox: tuple[float, float, float, float], bands: Sequence[str], **options: Any) -> Any:
        raise NotImplementedError("ZarrReader.read_window: windows are read by the compositing engine")

    def dataset(self) -> Any:
        """The lazily opened xarray.Dataset (shared: do not close it)."""
        return self._dataset

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> ZarrReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_reader(url: str, **open_options: Any) -> ZarrReader:
    """A ZarrReader, with a ZarrError naming the store for anything that goes wrong opening it."""
    try:
        return ZarrReader(url, **open_options)
    except ZarrError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise ZarrError(f"Cannot open the Zarr cube {url}: {error}") from error


__all__ = ["ZarrError", "ZarrReader", "open_reader"]
