"""Pixel values through time from a stack of STAC items with one COG per band.

A point read costs about one header request and one tile request per file, so a series of a few
hundred files is bound by round trips: files are read many at once (each worker thread with its own
GDAL handles, and each file always read by the same thread: `AffineWorkers`), opened files stay
open for the next click (`HandleCache`), and the GDAL HTTP options that save round trips are set
per thread. Every item is read in its own CRS (neighbouring tiles
are in different UTM zones) and every band at its own pixel (10 m and 20 m bands).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from typing import Any

from ..stac.bands import AmbiguousBand, BandInfo, BandNotFound, available_band_names, list_bands, resolve_band
from ..stac.hrefs import GdalSource, gdal_source
from ..stac.items import Bbox, ItemError, item_bbox, item_datetime, item_name, item_self_href, item_when, union_bbox
from ..stac.tiles import tile_id
from ..stac.unreadable import SkippedInputs, StopAtFirstBadInputError, UnreadableInputError
from ..stac.zarr_hrefs import asset_of, declared_crs
from .cog_point import OUTSIDE, OpenedCog, read_pixel
from .footprint import covers
from .handle_cache import AffineWorkers, HandleCache
from .reader import NAN, OnValues, PointOutsideCoverage, PointValues, ReaderError, Scene

__all__ = ["LOCAL_WORKERS", "REMOTE_WORKERS", "CogStackReader", "covers"]

#: Worker threads for remote files: enough to keep ~30 requests in flight, few enough for one server.
REMOTE_WORKERS = 32
#: Worker threads for local files: disk reads are short; more threads only add contention.
LOCAL_WORKERS = min(8, (os.cpu_count() or 2) * 2)
#: Datasets each thread keeps open (local files hold a file descriptor each).
REMOTE_HANDLES_PER_THREAD = 64
LOCAL_HANDLES_PER_THREAD = 32


@dataclass(frozen=True)
class _Task:
    """One file to read for one scene; several requested names may share it."""

    scene_index: int
    names: tuple[str, ...]
    source: GdalSource
    band: BandInfo
    media_type: str = ""


class _Click:
    """The bookkeeping of one `read_point`: values per scene, files still to come, the callback, and
    the files this click could not read."""

    def __init__(self, results: dict[int, PointValues], on_values: OnValues | None, skipped: SkippedInputs) -> None:
        self.results = results
        self.remaining = dict.fromkeys(results, 0)
        self.done = 0
        self._on_values = on_values
        self.skipped = skipped
        self.first_bad: UnreadableInputError | None = None

    def finish(self, index: int) -> None:
        self.done += 1
        if self._on_values is not None:
            self._on_values(self.results[index], self.done, len(self.results))

    def arrived(self, task: _Task, future: Future) -> None:
        result = self.results[task.scene_index]
        # The worker's exception is taken, never re-raised here: re-raised, its traceback would hold
        # this thread's frames (up to a Processing algorithm's, with its output sink) in a cycle with
        # the future, and a GeoPackage sink kept alive that way was never committed.
        error = future.exception()
        if error is None:
            value = future.result()
            if value is OUTSIDE:
                result.outside = True
            else:
                for name in task.names:
                    result.values[name] = value
        else:
            result.failed_bands.update(task.names)
            if isinstance(error, UnreadableInputError):
                result.errors.append(f"item {result.scene.item_id}: {error}")
                self.skipped.add(error.url, error.cause)
                self.first_bad = self.first_bad or error
            else:  # a worker's failure is this file's, not the series'
                result.errors.append(f"item {result.scene.item_id}: {task.band.asset_key}: "
                                     f"{type(error).__name__}: {error}")
        del error, future
        self.remaining[task.scene_index] -= 1
        if self.remaining[task.scene_index] == 0:
            self.finish(task.scene_index)


def _interval(item: dict) -> str:
    """The item's interval when it has no single datetime (a MODIS composite), for the plot's hover."""
    props = item.get("properties") or {}
    return "" if props.get("datetime") else item_when(item)


class CogStackReader:
    """A `PixelReader` over STAC items (dicts, asset hrefs absolute or relative to the item's self link).

    Keep one reader per selection: it keeps its threads and open files for the next click. Items
    without a datetime are left out (with a warning in `skipped`). A file that cannot be read (HTTP
    404, not a GeoTIFF, truncated) leaves a gap and is recorded by URL and cause in `skipped_inputs`
    (and in the ``skipped`` record a `read_point` call is given); with ``stop_at_first_bad_input``,
    `read_point` raises StopAtFirstBadInputError at the first such file instead.
    """

    def __init__(
        self,
        items: Iterable[dict],
        *,
        s3: Any = None,
        signer: Callable[[str], str] | None = None,
        credentials: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        max_workers: int | None = None,
        handles_per_thread: int | None = None,
        auth_headers: Mapping[str, str] | None = None,
        auth_scope: str = "",
        stop_at_first_bad_input: bool = False,
    ) -> None:
        self._s3, self._signer, self._credentials, self._options = s3, signer, credentials, options
        # HTTP auth headers of the source, sent only to hosts within `auth_scope` (the source's URL)
        self._auth_headers, self._auth_scope = auth_headers, auth_scope
        self.skipped: list[str] = []
        #: Every file this reader could not read, by URL and cause, over all its clicks.
        self.skipped_inputs = SkippedInputs()
        self.stop_at_first_bad_input = stop_at_first_bad_input
        dated: list[tuple[Any, str, str, dict]] = []
        for item in items:
            try:
                when = item_datetime(item)
            except ItemError as error:
                self.skipped.append(str(error))
                continue
            dated.append((when, tile_id(item) or "", item_name(item), item))
        dated.sort(key=lambda entry: entry[:3])
        self._items = [entry[3] for entry in dated]
        self._scenes = [Scene(datetime=when, item_id=name, tile=tile or None,
                              group=when.date().isoformat(), order=i, period=_interval(item))
                        for i, (when, tile, name, item) in enumerate(dated)]
        self._max_workers = max_workers
        self._handles_per_thread = handles_per_thread
        self._workers: tuple[AffineWorkers, HandleCache[OpenedCog]] | None = None
        self._bands: dict[tuple[int, str], BandInfo | BandNotFound] = {}
        self._sources: dict[tuple[int, str], GdalSource] = {}
        self._lock = threading.Lock()

    # ---- what the reader has ----

    def timeline(self) -> list[Scene]:
        return list(self._scenes)

    def items(self) -> list[dict]:
        """The items in timeline order."""
        return list(self._items)

    def item(self, scene: Scene) -> dict:
        return self._items[scene.order]

    def bands(self) -> list[str]:
        names: dict[str, None] = {}
        for item in self._items[:50]:
            names.update(dict.fromkeys(available_band_names(item)))
        return list(names)

    def common_names(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for item in self._items[:50]:
            for band in list_bands(item):
                if band.common_name and band.common_name.casefold() not in found:
                    found[band.common_name.casefold()] = band.asset_key
        return found

    def scenes_at(self, lon: float, lat: float) -> list[Scene]:
        if not self._items:
            raise ReaderError("No items to read: the search found nothing")
        scenes = [self._scenes[i] for i, item in enumerate(self._items) if covers(item, lon, lat)]
        if not scenes:
            raise PointOutsideCoverage(lon, lat, len(self._items), self.extent())
        return scenes

    def check_bands(self, names: Sequence[str]) -> None:
        if not self._items:
            raise ReaderError("No items to read: the search found nothing")
        for name in names:
            error: BandNotFound | None = None
            for index in range(min(len(self._items), 50)):
                found = self._band(index, name)
                if isinstance(found, BandInfo):
                    error = None
                    break
                error = error or found
            if isinstance(error, AmbiguousBand):
                raise error
            if error is not None:
                available = self.bands()
                raise BandNotFound(f"No band '{name}' in these items; available bands: {', '.join(available)}",
                                   available)

    def extent(self) -> Bbox | None:
        """Union of the items' footprints, lon/lat."""
        return union_bbox(item_bbox(item) for item in self._items)

    # ---- reading ----

    def _band(self, index: int, name: str) -> BandInfo | BandNotFound:
        key = (index, name)
        found = self._bands.get(key)
        if found is None:
            try:
                found = resolve_band(self._items[index], name)
            except BandNotFound as error:
                found = error
            self._bands[key] = found
        return found

    def _source(self, index: int, band: BandInfo) -> GdalSource:
        key = (index, band.asset_key)
        source = self._sources.get(key)
        if source is None:
            item = self._items[index]
            asset = asset_of(item, band.asset_key)
            if asset is None:
                raise KeyError(band.asset_key)
            source = gdal_source(str(asset["href"]), base=item_self_href(item), s3=self._s3, signer=self._signer,
                                 credentials=self._credentials, options=self._options,
                                 auth_headers=self._auth_headers, auth_scope=self._auth_scope)
            if source.path.startswith("ZARR:"):  # EOPF arrays: GDAL reads their grid, not their CRS
                source = replace(source, srs=declared_crs(item, asset))
            self._sources[key] = source
        return source

    def _executor(self, remote: bool) -> tuple[AffineWorkers, HandleCache[OpenedCog]]:
        """The worker threads and their open files, made at the first read and kept until `close`."""
        with self._lock:
            if self._workers is None:
                workers = self._max_workers or (REMOTE_WORKERS if remote else LOCAL_WORKERS)
                capacity = self._handles_per_thread or (REMOTE_HANDLES_PER_THREAD if remote
                                                        else LOCAL_HANDLES_PER_THREAD)
                self._workers = (AffineWorkers(workers, "cubescope-cog"), HandleCache(capacity))
            return self._workers

    def open_handles(self) -> int:
        """Datasets held open across clicks (all threads)."""
        return self._workers[1].open_count() if self._workers is not None else 0

    def _tasks(self, indices: list[int], bands: Sequence[str],
               record: SkippedInputs) -> tuple[list[_Task], dict[int, list[str]]]:
        tasks: list[_Task] = []
        missing: dict[int, list[str]] = {}
        for index in indices:
            by_asset: dict[str, tuple[BandInfo, list[str]]] = {}
            for name in bands:
                found = self._band(index, name)
                if isinstance(found, BandNotFound):
                    missing.setdefault(index, []).append(name)
                    continue
                by_asset.setdefault(found.asset_key, (found, []))[1].append(name)
            for key, (band, names) in by_asset.items():
                asset = asset_of(self._items[index], key)
                asset = asset if isinstance(asset, dict) else {}
                try:
                    source = self._source(index, band)
                except (KeyError, ValueError) as error:
                    missing.setdefault(index, []).extend(names)
                    self.skipped.append(f"item {self._scenes[index].item_id}: asset '{key}': {error}")
                    record.add(str(asset.get("href") or f"item {self._scenes[index].item_id} asset '{key}'"),
                               f"not a usable href ({error})")
                    continue
                tasks.append(_Task(index, tuple(names), source, band, str(asset.get("type") or "")))
        return tasks, missing

    def read_point(
        self,
        lon: float,
        lat: float,
        bands: Sequence[str],
        *,
        on_values: OnValues | None = None,
        is_canceled: Callable[[], bool] | None = None,
        skipped: SkippedInputs | None = None,
    ) -> list[PointValues]:
        """The values of ``bands`` at (lon, lat) per scene covering it; files that cannot be read are
        added to ``skipped`` (when given) and to `skipped_inputs`."""
        if not self._items:
            raise ReaderError("No items to read: the search found nothing")
        if not bands:
            raise ValueError("No bands to read")
        indices = [scene.order for scene in self.scenes_at(lon, lat)]
        record = SkippedInputs() if skipped is None else skipped
        tasks, missing = self._tasks(indices, bands, record)
        click = _Click({i: PointValues(self._scenes[i], {name: NAN for name in bands}) for i in indices}, on_values,
                       record)
        for index, names in missing.items():
            click.results[index].errors.append(f"item {self._scenes[index].item_id} has no band "
                                               f"{', '.join(repr(n) for n in names)}")
            click.results[index].failed_bands.update(names)
        for task in tasks:
            click.remaining[task.scene_index] += 1
        for index in indices:
            if click.remaining[index] == 0:
                click.finish(index)
        if tasks:
            pool, handles = self._executor(remote=tasks[0].source.path.startswith("/vsi"))
            futures = {pool.submit(t.source.path, read_pixel, t.source, t.band, t.media_type, lon, lat, handles): t
                       for t in tasks}
            pending = set(futures)
            try:
                self._wait(futures, pending, click, is_canceled)
            finally:
                self.skipped_inputs.extend(record)
        finished_indices = [i for i in indices if click.remaining[i] == 0]
        read = [click.results[i] for i in finished_indices if not click.results[i].outside]
        if not read and len(finished_indices) == len(indices):
            raise PointOutsideCoverage(lon, lat, len(self._items), self.extent())
        return read

    def _wait(self, futures: dict[Future, _Task], pending: set[Future], click: _Click,
               is_canceled: Callable[[], bool] | None) -> None:
        """Hand each finished file to ``click`` until all are in, the caller cancels, or (when asked to
        stop at the first bad input) a file could not be read."""
        while pending:
            stop = self.stop_at_first_bad_input and click.first_bad is not None
            if stop or (is_canceled is not None and is_canceled()):
                for future in pending:
                    future.cancel()
                # A read already running cannot be stopped: wait for it (one pixel), so that no
                # thread of this reader still works on its files once the caller has moved on.
                # (QGIS quitting under such a read crashed in GDAL.)
                wait(pending)
                break
            finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in finished:
                click.arrived(futures[future], future)
        if self.stop_at_first_bad_input and click.first_bad is not None:
            raise StopAtFirstBadInputError(click.first_bad.url, click.first_bad.cause)

    def read_window(self, bbox: Bbox, bands: Sequence[str], **options: Any) -> Any:
        raise NotImplementedError("CogStackReader.read_window: windows are read by the compositing engine")

    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, None
        if workers is not None:
            workers[0].shutdown()
            workers[1].clear()

    def __enter__(self) -> CogStackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
