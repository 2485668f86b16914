"""Where a regular cube is written: a Zarr v2 store (CF) or COGs plus a static STAC catalog."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from ...analysis.engine.analysis_request import Period
from ...analysis.engine.cog_writer import CogWriter, WriteError
from ...analysis.engine.grid import OutputGrid, transform_bounds
from ...analysis.engine.pipeline import JobPlan, output_metadata
from ...analysis.ops.blocks import CLEAROB, PROVENANCE, TOTALOB
from ...cube.zarr_compat import skip_empty_chunks, v2_format
from ...stac.written_metadata import EXTENSIONS as _EXTENSIONS
from ...stac.written_metadata import ITEM_ASSETS as _ITEM_ASSETS
from ...stac.written_metadata import common_name, polygon, projection
from ...stac.written_metadata import epsg as _epsg
from ...stac.written_metadata import iso as _iso
from .model import CHUNK_XY, EPOCH, PROGRESS_FILE, TIME_UNITS, CubeError, CubeRequest, collection_id


def _write_json(path: Path, content: Any) -> None:
    """Write JSON atomically (a temporary file renamed onto ``path``)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(content, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(temporary, path)


def _crs_wkt(crs: str, version: str = "WKT2_2018") -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.SetFromUserInput(crs) != 0:
        raise CubeError(f"Unknown CRS {crs!r}")
    return srs.ExportToWkt([f"FORMAT={version}"])


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _array(group: Any, name: str, values: np.ndarray, chunks: tuple[int, ...] | None = None) -> Any:
    """A new array of ``group`` holding ``values`` (``Group.create`` and ``[...] =``: the same in zarr 2 and 3)."""
    array = group.create(name, shape=values.shape, dtype=values.dtype, chunks=chunks or values.shape, fill_value=0)
    array[...] = values
    return array


class Sink:
    """Where the periods go; the build calls open, then begin/write/finish_period per period, then finish."""

    def __init__(self, cube: CubeRequest, grid: OutputGrid, names: Sequence[str], periods: Sequence[Period],
                 fingerprint: dict) -> None:
        self.cube, self.grid, self.names, self.periods = cube, grid, tuple(names), list(periods)
        self.fingerprint = fingerprint
        self.path = cube.output
        self.number = -1
        #: The current period's inputs left out (SkippedInputs.metadata()), set before finish_period.
        self.skipped_metadata: dict[str, str] = {}

    @property
    def progress_file(self) -> Path:
        return self.path / PROGRESS_FILE

    def _resume(self) -> set[int] | None:
        """Periods already written, or None for an output to create (refused if it holds something else)."""
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            raise CubeError(f"The output {self.path} is a file; give a folder (or a .zarr path) that does not exist")
        if not self.progress_file.is_file():
            if any(self.path.iterdir()):
                raise CubeError(f"The output {self.path} exists and is not a Cubescope cube build; give a new "
                                "folder or .zarr path")
            return None
        record = json.loads(self.progress_file.read_text(encoding="utf-8"))
        if record.get("fingerprint") != self.fingerprint:
            old = record.get("fingerprint") or {}
            changed = sorted(k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k))
            raise CubeError(f"The output {self.path} holds another cube (different {', '.join(changed)}): give a "
                            "new output to build this one, or delete it")
        return set(record.get("done", []))

    def record(self, done: set[int], complete: bool = False) -> None:
        _write_json(self.progress_file, {"fingerprint": self.fingerprint, "done": sorted(done),
                                         "complete": complete or len(done) == len(self.periods)})

    def open(self) -> set[int]:
        raise NotImplementedError

    def begin(self, number: int, job: JobPlan | None) -> None:
        self.number = number

    def write(self, block: np.ndarray, row: int, col: int) -> None:
        raise NotImplementedError

    def finish_period(self, number: int, job: JobPlan | None, progress: Callable[[float], None],
                      canceled: Callable[[], bool]) -> None:
        """Everything of the period is on disk when this returns."""

    def abort_period(self) -> None:
        """Drop what the current period left (a partial Zarr slice is simply written again)."""

    def finish(self) -> Path:
        return self.path

    def close(self) -> None:
        """Release threads (after finish, or after a failure)."""

    def attrs(self) -> dict[str, Any]:
        request = self.cube.request
        return {
            "title": f"{request.collection} {request.method} composites every {self.cube.step}"
                     f"{' (cyclic, restarting every January 1)' if self.cube.cyclic else ''}",
            "source": f"Cubescope regular cube builder; {request.connection.url}",
            "cubescope_collection": request.collection, "cubescope_method": request.method,
            "cubescope_bands": ",".join(request.bands), "cubescope_step": self.cube.step,
            "cubescope_cyclic": self.cube.cyclic,
            "cubescope_periods": [p.label for p in self.periods],
        }


class ZarrSink(Sink):
    """(time, y, x) float32 variables pre-created with NaN; each period written into its slice."""

    def open(self) -> set[int]:
        done = self._resume()
        if done is None:
            self._create()
            done = set()
        import zarr

        group = zarr.open_group(str(self.path), mode="r+")
        self.arrays = [group[_file_name(name)] for name in self.names]
        self.chunks = self.arrays[0].chunks[1:]
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cubescope-zarr")
        self.pending: list[Future] = []
        return done

    def _create(self) -> None:
        import numcodecs
        import zarr

        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        grid, periods = self.grid, self.periods
        height, width, count = grid.height, grid.width, len(periods)
        chunks = (count, min(CHUNK_XY, height), min(CHUNK_XY, width))
        try:
            # Zarr v2 under zarr 3 too: GDAL before 3.11 (Debian 12 and 13) and zarr 2 read no other (zarr_compat).
            group = zarr.open_group(str(staging), mode="w", **v2_format())
            group.attrs.update({**self.attrs(), **_cf_global(self.grid, periods, chunks)})
            seconds = [int((p.start - EPOCH).total_seconds()) for p in periods]
            bounds = [[int((p.start - EPOCH).total_seconds()), int((p.end - EPOCH).total_seconds())]
                      for p in periods]
            time = _array(group, "time", np.array(seconds, dtype=np.int64), (count,))
            time.attrs.update({"_ARRAY_DIMENSIONS": ["time"], "standard_name": "time", "axis": "T",
                               "long_name": "start of the period", "units": TIME_UNITS,
                               "calendar": "proleptic_gregorian", "bounds": "time_bnds"})
            time_bounds = _array(group, "time_bnds", np.array(bounds, dtype=np.int64), (count, 2))
            time_bounds.attrs.update({"_ARRAY_DIMENSIONS": ["time", "nv"], "units": TIME_UNITS,
                                      "calendar": "proleptic_gregorian"})
            x0, res, _, y1, _, _ = grid.geotransform
            for axis, values in (("x", x0 + (np.arange(width) + 0.5) * res),
                                 ("y", y1 - (np.arange(height) + 0.5) * res)):
                array = _array(group, axis, values.astype(np.float64), (len(values),))
                array.attrs.update({"_ARRAY_DIMENSIONS": [axis], **_axis_attrs(grid.crs, axis)})
            mapping = _array(group, "spatial_ref", np.array(0, dtype=np.int32))
            mapping.attrs.update({"_ARRAY_DIMENSIONS": [], **_grid_mapping(grid)})
            gdal_crs = {"wkt": _crs_wkt(grid.crs)}
            if _epsg(grid.crs):
                gdal_crs["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{_epsg(grid.crs)}"
            compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
            method = self.cube.request.method
            for name in self.names:
                array = group.full(name=_file_name(name), fill_value=np.nan, shape=(count, height, width),
                                   chunks=chunks, dtype="<f4", compressor=compressor, **skip_empty_chunks())
                array.attrs.update({"_ARRAY_DIMENSIONS": ["time", "y", "x"], "long_name": _long_name(name, method),
                                    "grid_mapping": "spatial_ref", "coordinates": "spatial_ref",
                                    "cell_methods": f"time: {self.cube.request.method}", "_CRS": gdal_crs})
            zarr.consolidate_metadata(str(staging))
            _write_json(staging / PROGRESS_FILE, {"fingerprint": self.fingerprint, "done": [], "complete": False})
            if self.path.is_dir():
                self.path.rmdir()  # an empty folder (as Processing may create)
            os.replace(staging, self.path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def write(self, block: np.ndarray, row: int, col: int) -> None:
        """Queue the block's chunks: each is read, updated in its period and compressed in a thread
        (chunks never overlap, so the writes are independent), while the next blocks compute."""
        height, width = block.shape[1:]
        step_y, step_x = self.chunks
        for array, data in zip(self.arrays, block):
            for y in range(0, height, step_y):
                for x in range(0, width, step_x):
                    window = (self.number, slice(row + y, row + min(y + step_y, height)),
                              slice(col + x, col + min(x + step_x, width)))
                    self.pending.append(self.pool.submit(array.__setitem__, window,
                                                         data[y:y + step_y, x:x + step_x]))
        self._wait(limit=64 * (os.cpu_count() or 2))

    def _wait(self, limit: int = 0) -> None:
        while len(self.pending) > limit:
            future = self.pending.pop(0)
            try:
                future.result()
            except OSError as error:
                self.abort_period()
                raise WriteError(f"Cannot write to {self.path}: {error}") from error

    def finish_period(self, number: int, job: JobPlan | None, progress: Callable[[float], None],
                      canceled: Callable[[], bool]) -> None:
        self._wait()

    def abort_period(self) -> None:
        for future in self.pending:
            future.cancel()
        wait(self.pending)
        self.pending = []

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _long_name(name: str, method: str) -> str:
    if name == CLEAROB:
        return "clear observations in the period"
    if name == TOTALOB:
        return "observations with data in the period"
    if name == PROVENANCE:
        return "day of year of the chosen observation"
    return f"{name} {method}"


def _cf_global(grid: OutputGrid, periods: Sequence[Period], chunks: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "Conventions": "CF-1.8",
        "time_coverage_start": _iso(periods[0].start), "time_coverage_end": _iso(periods[-1].end),
        "chunking": {"time": chunks[0], "y": chunks[1], "x": chunks[2]},
        "chunking_note": "each chunk holds every period of 256 x 256 px: a pixel's time series is one chunk "
                         "read per variable",
        "proj_crs": grid.crs if _epsg(grid.crs) else "", "resolution": grid.resolution,
    }


def _axis_attrs(crs: str, axis: str) -> dict[str, Any]:
    from pyproj import CRS

    if CRS.from_user_input(crs).is_geographic:
        return ({"standard_name": "longitude", "units": "degrees_east", "axis": "X"} if axis == "x"
                else {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"})
    return {"standard_name": f"projection_{axis}_coordinate", "long_name": f"{axis} coordinate of projection",
            "units": "m", "axis": axis.upper()}


def _grid_mapping(grid: OutputGrid) -> dict[str, Any]:
    """CF grid mapping (pyproj's), with the WKT and geotransform GDAL and rioxarray read."""
    from pyproj import CRS

    attrs = {k: v for k, v in CRS.from_user_input(grid.crs).to_cf().items() if v is not None}
    wkt = _crs_wkt(grid.crs)
    attrs.update({"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": " ".join(repr(v) for v in grid.geotransform)})
    return attrs


class StacSink(Sink):
    """One COG per band per period, and a static catalog rewritten after each period."""

    def open(self) -> set[int]:
        done = self._resume()
        self.path.mkdir(parents=True, exist_ok=True)
        self.collection = collection_id(self.cube)
        self.writers: list[CogWriter] = []
        if done is None:
            done = set()
            self.record(done)
        self.done = done
        self._write_catalog()
        return done

    def item_id(self, number: int) -> str:
        return f"{self.collection}_{self.periods[number].start:%Y-%m-%d}"

    def folder(self, number: int) -> Path:
        return self.path / self.collection / self.item_id(number)

    def begin(self, number: int, job: JobPlan | None) -> None:
        super().begin(number, job)
        folder = self.folder(number)
        folder.mkdir(parents=True, exist_ok=True)
        metadata = output_metadata(job) if job is not None else {"CUBESCOPE_PERIOD": self.periods[number].label,
                                                             "CUBESCOPE_ITEMS": "0"}
        self.writers = [CogWriter(folder / f"{_file_name(name)}.tif", self.grid, [name], metadata,
                                  overview_resampling="NEAREST" if name == PROVENANCE else "AVERAGE")
                        for name in self.names]

    def write(self, block: np.ndarray, row: int, col: int) -> None:
        for number, writer in enumerate(self.writers):
            writer.write(block[number:number + 1], row, col)

    def finish_period(self, number: int, job: JobPlan | None, progress: Callable[[float], None],
                      canceled: Callable[[], bool]) -> None:
        for writer in self.writers:
            writer.add_metadata(self.skipped_metadata)
        for count, writer in enumerate(self.writers):
            writer.finish(lambda f, c=count: progress((c + f) / len(self.writers)), canceled)
        self.writers = []
        _write_json(self.folder(number) / f"{self.item_id(number)}.json", self._item(number, job))
        self.done = self.done | {number}
        self._write_catalog()

    def abort_period(self) -> None:
        for writer in self.writers:  # the period's bands already copied go too: its files are all or none
            if writer.finished:
                writer.target.unlink(missing_ok=True)
            else:
                writer.abort()
        self.writers = []

    def _bbox(self) -> list[float]:
        west, south, east, north = transform_bounds(self.grid.bounds, self.grid.crs, "EPSG:4326")
        return [round(v, 7) for v in (west, south, east, north)]

    def _projection(self) -> dict[str, Any]:
        crs = self.grid.crs if _epsg(self.grid.crs) else _crs_wkt(self.grid.crs)
        return projection(crs, self.grid.geotransform, (self.grid.height, self.grid.width))

    def _asset(self, name: str) -> dict[str, Any]:
        asset: dict[str, Any] = {
            "type": "image/tiff; application=geotiff; profile=cloud-optimized", "title": name, "roles": ["data"],
            "raster:bands": [{"data_type": "float32", "nodata": "nan", "spatial_resolution": self.grid.resolution}]}
        common = common_name(name)
        if common:
            asset["eo:bands"] = [{"name": name, "common_name": common}]
        return asset

    def _item(self, number: int, job: JobPlan | None) -> dict[str, Any]:
        period = self.periods[number]
        west, south, east, north = self._bbox()
        dates = [f"{s.day:%Y-%m-%d}" for s in job.periods[0].slices] if job is not None else []
        return {
            "type": "Feature", "stac_version": "1.0.0", "stac_extensions": _EXTENSIONS,
            "id": self.item_id(number), "collection": self.collection, "bbox": [west, south, east, north],
            "geometry": polygon((west, south, east, north)),
            "properties": {"datetime": _iso(period.start), "start_datetime": _iso(period.start),
                           "end_datetime": _iso(period.end), "cubescope:method": self.cube.request.method,
                           "cubescope:dates": dates, **self._projection()},
            "assets": {name: {"href": f"./{_file_name(name)}.tif", **self._asset(name)} for name in self.names},
            "links": [{"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                      {"rel": "collection", "href": "../collection.json", "type": "application/json"}],
        }

    def _write_catalog(self) -> None:
        request = self.cube.request
        attrs = self.attrs()
        items = [{"rel": "item", "href": f"./{self.item_id(n)}/{self.item_id(n)}.json", "type": "application/json"}
                 for n in sorted(self.done)]
        collection = {
            "type": "Collection", "stac_version": "1.0.0", "stac_extensions": [*_EXTENSIONS, _ITEM_ASSETS],
            "id": self.collection, "title": attrs["title"],
            "description": f"A regular cube built by Cubescope from {request.collection} "
                           f"({request.connection.url}): per period of {self.cube.step}, the {request.method} "
                           f"composite of the clear observations of {', '.join(request.bands)}.",
            "license": "proprietary",
            "extent": {"spatial": {"bbox": [self._bbox()]},
                       "temporal": {"interval": [[_iso(self.periods[0].start), _iso(self.periods[-1].end)]]}},
            "summaries": {"cubescope:method": [request.method], "cubescope:step": [self.cube.step],
                          "cubescope:cyclic": [self.cube.cyclic], "gsd": [self.grid.resolution],
                          **({"proj:epsg": [_epsg(self.grid.crs)]} if _epsg(self.grid.crs) else {})},
            "item_assets": {name: self._asset(name) for name in self.names},
            "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "../catalog.json", "type": "application/json"}, *items],
        }
        (self.path / self.collection).mkdir(parents=True, exist_ok=True)
        _write_json(self.path / self.collection / "collection.json", collection)
        _write_json(self.path / "catalog.json", {
            "type": "Catalog", "stac_version": "1.0.0", "id": f"{self.collection}-catalog", "title": attrs["title"],
            "description": collection["description"],
            "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                      {"rel": "child", "href": f"./{self.collection}/collection.json", "type": "application/json",
                       "title": attrs["title"]}]})

    def finish(self) -> Path:
        return self.path / "catalog.json"
