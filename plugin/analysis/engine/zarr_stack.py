"""A block's time slices of one Zarr array read as one (time, y, x) hyperslab.

The engine sees a Zarr cube as one STAC item per time step (:mod:`.zarr_items`), so odc-stac plans
one read per time slice, and GDAL's classic view of a slice decodes every chunk under it whole. A
cube chunked along time (a pixel's dates in one chunk, as cubes made for time series are) then had
each chunk fetched and decompressed once per date it holds: 37 times for the demo cube. Read here
through GDAL's multidimensional API, the slices of a block that lie on its grid come in one call per
run of time chunks, and each chunk is decoded once. Over the network the block's chunks are fetched
at once, one time chunk x one spatial chunk per read. A block in another CRS or pixel size reads the
array's window under it the same way, then warps each date from memory with GDAL's warper, as the
slice reader would; with nearest neighbour the warper's pixel mapping is computed once for all dates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ...stac.gdal_env import share_with_gdal_threads
from .reader import (
    GDAL_TYPES,
    file_grid,
    keep_pixels,
    nearest_index,
    nodata_fix,
    nodata_pair,
    placement,
    read_plan,
    thread_config,
    warp,
)
from .reader_pools import is_remote, reader_pool, run_together

#: Zarr chunks fetched at once over the network. Each read is one small chunk (little to decode), and
#: GDAL 3.6 fetches a Zarr chunk on a new connection (an extra round trip): a composite of the
#: benchmark cube over a 25 ms link took 13.4 s with 8, 7.9 s with 16 and 6.3 s with 32.
ZARR_FETCHERS = 16

#: Memory a block off the array's grid may take, beyond its own, for the array's window under it (read
#: once, then warped date by date); past it (a much coarser output) each date is warped on its own.
WARP_WINDOW_BYTES = 64 * 2**20
#: Source pixels read around a warped block's footprint, per unit of the warper's shrink factor: the
#: radius of GDAL's kernel for the resampling (others: 3, lanczos's) plus one for rounding. Every extra
#: pixel can pull in a neighbouring chunk: for the benchmark cube to Web Mercator, 36 spatial chunks
#: per variable with nearest's margin, 42 with lanczos's.
WARP_MARGIN = {"nearest": 1, "near": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "cubicspline": 3}

_HREF = re.compile(r'^ZARR:"(?P<store>.+)":(?P<array>/[^:"]+):(?P<index>\d+)$')


@dataclass(frozen=True)
class ZarrSlice:
    """``ZARR:"<store>":/<array>:<index>``: time step ``index`` of ``array`` (a full name) in ``store``."""

    store: str
    array: str
    index: int


def zarr_slice(uri: str) -> ZarrSlice | None:
    """The parts of a Zarr slice's href (as :mod:`.zarr_items` writes them); None for anything else."""
    match = _HREF.match(uri)
    if match is None:
        return None
    return ZarrSlice(match["store"], match["array"], int(match["index"]))


def time_runs(indices: Sequence[int], chunk: int) -> Iterator[tuple[int, int]]:
    """(first, last) index of each read that covers ``indices`` (sorted, distinct) without decoding a
    time chunk twice or one that holds none of them: indices in the same or in adjacent time chunks
    of ``chunk`` steps share a read."""
    if not indices:
        return
    chunk = max(1, chunk)
    first = last = indices[0]
    for index in indices[1:]:
        if index // chunk - last // chunk > 1:
            yield first, last
            first = index
        last = index
    yield first, last


class ZarrArray:
    """One array of a store, opened with GDAL's multidimensional API (within the caller's GDAL options)."""

    def __init__(self, store: str, array: str) -> None:
        from osgeo import gdal, gdal_array

        self.name = f'ZARR:"{store}":{array}'
        share_with_gdal_threads(self.name)  # the store's options for GDAL 3.13's own threads (see there)
        gdal.ErrorReset()
        # With the driver's prefix: a bare /vsicurl/ URL of a store would be probed as a directory first.
        self._dataset = gdal.OpenEx(f'ZARR:"{store}"', gdal.OF_MULTIDIM_RASTER | gdal.OF_READONLY)
        if self._dataset is None:
            raise OSError(f"Cannot open the Zarr store {store}: {gdal.GetLastErrorMsg() or 'GDAL could not open it'}")
        self._array = self._dataset.GetRootGroup().OpenMDArrayFromFullname(array)
        if self._array is None:
            self._dataset = None
            raise OSError(f"{store} has no array {array}: {gdal.GetLastErrorMsg() or 'not found'}")
        self.shape = tuple(int(d.GetSize()) for d in self._array.GetDimensions())
        block = self._array.GetBlockSize() if hasattr(self._array, "GetBlockSize") else None
        self.chunks: tuple[int, ...] = tuple(int(b) or 1 for b in block) if block else (1,) * len(self.shape)
        """The array's chunk shape, (time, y, x)."""
        self.nodata = self._array.GetNoDataValueAsDouble()
        numeric = gdal_array.GDALTypeCodeToNumericTypeCode(self._array.GetDataType().GetNumericDataType())
        self.dtype = np.dtype(numeric if numeric is not None else "V1")
        """The array's own data type (``V1`` for one numpy has no code for)."""

    def read(self, start: Sequence[int], count: Sequence[int], gdal_type: int, out: np.ndarray | None = None
             ) -> np.ndarray:
        """The hyperslab ``start`` + ``count`` (time, y, x) as ``gdal_type``, into ``out`` when given (a
        C-contiguous array of that shape and type)."""
        from osgeo import gdal

        gdal.ErrorReset()
        pixels = self._array.ReadAsArray(array_start_idx=list(start), count=list(count),
                                         buffer_datatype=gdal.ExtendedDataType.Create(gdal_type), buf_obj=out)
        if pixels is None or gdal.GetLastErrorType() >= gdal.CE_Failure:
            raise OSError(f"Cannot read {self.name} at {list(start)} + {list(count)}: "
                          f"{gdal.GetLastErrorMsg() or 'read failed'}")
        return pixels

    def close(self) -> None:
        self._array = None
        self._dataset = None


@dataclass(frozen=True)
class Hyperslab:
    """What one block reads from one array: the chunk slice each time step goes to (``slots``), and
    the window (x_off, y_off, x_size, y_size) of the array that lands at ``origin`` (row, col) of
    each of those slices."""

    store: str
    array: str
    slots: Mapping[int, int]
    window: tuple[int, int, int, int]
    origin: tuple[int, int]


Piece = tuple[int, int, int, int, int, int]
"""(first, last time step, x_off, y_off, x_size, y_size): one read."""


def pieces(slab: Hyperslab, chunks: Sequence[int], split: bool) -> list[Piece]:
    """The reads that cover ``slab``: one per run of time chunks (:func:`time_runs`); with ``split``,
    one per time chunk and spatial chunk under the window instead, so that they can go at once over
    a slow link (GDAL 3.6 fetches the chunks of one read one after another)."""
    x_off, y_off, x_size, y_size = slab.window
    if not split:
        return [(lo, hi, x_off, y_off, x_size, y_size) for lo, hi in time_runs(sorted(slab.slots), chunks[0])]
    runs = [(min(group), max(group)) for group in _by_chunk(slab.slots, chunks[0])]
    cy, cx = chunks[1], chunks[2]
    rows = _edges(y_off, y_size, cy)
    columns = _edges(x_off, x_size, cx)
    return [(lo, hi, x0, y0, x1 - x0, y1 - y0) for lo, hi in runs for y0, y1 in rows for x0, x1 in columns]


def _by_chunk(indices: Iterable[int], chunk: int) -> list[list[int]]:
    """``indices`` grouped by the time chunk that holds them, in order."""
    groups: dict[int, list[int]] = {}
    for index in sorted(indices):
        groups.setdefault(index // max(1, chunk), []).append(index)
    return list(groups.values())


def _edges(start: int, size: int, step: int) -> list[tuple[int, int]]:
    """[start, start + size) cut at the multiples of ``step``."""
    cuts = [start, *range((start // step + 1) * step, start + size, step), start + size]
    return list(zip(cuts[:-1], cuts[1:]))


def read_piece(array: ZarrArray, slab: Hyperslab, piece: Piece, chunk: np.ndarray, gdal_type: int,
               fix: Callable[[np.ndarray], None]) -> None:
    """Read ``piece`` of ``slab`` from ``array`` into its place in ``chunk`` (time, y, x); ``fix`` then
    sees each placed area (the no-data conversion)."""
    lo, hi, x0, y0, width, height = piece
    row = slab.origin[0] + y0 - slab.window[1]
    column = slab.origin[1] + x0 - slab.window[0]
    slots = [slab.slots.get(index) for index in range(lo, hi + 1)]
    first = slots[0]
    if first is not None and slots == list(range(first, first + len(slots))):
        place = chunk[first:first + len(slots), row:row + height, column:column + width]
        if place.flags.c_contiguous:  # the whole block's rows: GDAL decodes straight into the chunk
            array.read((lo, y0, x0), place.shape, gdal_type, out=place)
            for area in place:
                fix(area)
            return
    pixels = array.read((lo, y0, x0), (hi - lo + 1, height, width), gdal_type)
    for offset, slot in enumerate(slots):
        if slot is not None:
            area = chunk[slot, row:row + height, column:column + width]
            area[...] = pixels[offset]
            fix(area)


def read_hyperslabs(layers: Mapping[int, Sequence[Any]], gbox: Any, cfg: Any, chunk: np.ndarray,
                    options: Mapping[str, str], fill: Any) -> bool:
    """Read the slices in ``layers`` (chunk slice -> its sources that touch the block) as hyperslabs of
    one Zarr array into ``chunk``, when each slice has at most one source, all of one array; False
    (nothing read) otherwise. Slices with no source get ``fill``. A block on the array's grid is read
    straight into ``chunk``; any other (another CRS or resolution) reads the array's window under it
    once, then warps each date from memory."""
    with thread_config(options):
        found = _one_array(layers, cfg, chunk)
        if found is None:
            return False
        parts, source = found
        grid = file_grid(source.uri)  # all slices of an array share it
        # A cube whose CRS GDAL does not see (no grid mapping it knows) has the one its items declare.
        declared = getattr(source.geobox, "crs", None)
        crs = grid.crs or declared
        if crs is None:
            return False
        plan = read_plan(grid.affine, crs, gbox, cfg.resampling)
    first = next(iter(parts.values()))
    if plan is None:
        srs = grid.wkt if grid.crs is not None else declared.wkt
        if not _read_warped(first, list(parts.items()), grid, crs, srs, gbox, cfg, chunk, options):
            return False
        chunk[[t for t in layers if t not in parts]] = fill
        return True
    if plan[0] != 1:
        return False  # a coarser grid of this one: the slice reader's decimating read
    roi, window = placement(grid, plan, gbox)
    slab = Hyperslab(first.store, first.array, {p.index: t for t, p in parts.items()}, window,
                     (roi[0].start, roi[1].start))
    x_size, y_size = window[2:]
    if len(slab.slots) < len(layers) or (y_size, x_size) != chunk.shape[1:]:
        chunk[list(layers)] = fill
    if x_size <= 0 or y_size <= 0:
        return True
    with thread_config(options):
        array = ZarrArray(slab.store, slab.array)
        try:
            fix = nodata_fix(array.nodata, cfg, chunk.dtype)
            _read_slab(array, slab, chunk, fix, options)
        finally:
            array.close()
    return True


def _one_array(layers: Mapping[int, Sequence[Any]], cfg: Any, chunk: np.ndarray
               ) -> tuple[dict[int, ZarrSlice], Any] | None:
    """(chunk slice -> its Zarr slice, one of the sources) when every slice has at most one source,
    all of them slices of one Zarr array; None otherwise."""
    if cfg.fuser_fqn is not None or chunk.dtype.name not in GDAL_TYPES:
        return None
    parts: dict[int, ZarrSlice] = {}
    source: Any = None
    for t, layer in layers.items():
        if len(layer) > 1:
            return None
        if layer:
            part = zarr_slice(layer[0].uri)
            if part is None or layer[0].band != 1:
                return None
            parts[t] = part
            source = source if source is not None else layer[0]
    if source is None or len({(p.store, p.array) for p in parts.values()}) > 1:
        return None
    return parts, source


def _read_slab(array: ZarrArray, slab: Hyperslab, target: np.ndarray, fix: Callable[[np.ndarray], None],
               options: Mapping[str, str]) -> None:
    """All of ``slab`` from ``array`` into ``target``; over the network a piece per chunk, fetched at once
    (each in a reader thread with its own handle on the array)."""
    gdal_type = GDAL_TYPES[target.dtype.name]
    remote = is_remote(slab.store)
    work = pieces(slab, array.chunks, split=remote)
    if not (remote and len(work) > 1):
        for piece in work:
            read_piece(array, slab, piece, target, gdal_type, fix)
        return
    run_together(reader_pool("zarr", ZARR_FETCHERS),
                 [partial(_read_piece_apart, slab, piece, target, gdal_type, fix, options) for piece in work])


def _read_warped(first: ZarrSlice, parts: Sequence[tuple[int, ZarrSlice]], grid: Any, crs: Any, srs: str,
                 gbox: Any, cfg: Any, chunk: np.ndarray, options: Mapping[str, str]) -> bool:
    """The slices ``parts`` (chunk slice, Zarr slice) of a block off the array's grid: the array's window
    under the block read as one hyperslab in the array's own type, then each date warped from memory
    by :func:`.reader.warp`, as the slice reader warps a slice (the same pixels come out). False when
    the array does not reach the block, or when its window there would take more memory than the
    block itself plus :data:`WARP_WINDOW_BYTES`."""
    from affine import Affine
    from osgeo import gdal_array

    window = source_window(grid, crs, gbox, cfg.resampling)
    if window is None:
        return False
    parts = sorted(parts, key=lambda part: part[1].index)
    with thread_config(options):
        array = ZarrArray(first.store, first.array)
        try:
            if array.dtype.name not in GDAL_TYPES:
                return False
            stack = np.empty((len(parts), window[3], window[2]), dtype=array.dtype)
            if stack.nbytes > chunk.nbytes + WARP_WINDOW_BYTES:
                return False
            slab = Hyperslab(first.store, first.array, {p.index: i for i, (_, p) in enumerate(parts)}, window, (0, 0))
            _read_slab(array, slab, stack, keep_pixels, options)
            nodata = array.nodata
        finally:
            array.close()
    transform = (grid.affine * Affine.translation(window[0], window[1])).to_gdal()  # the window's own grid
    src_nodata, dst_nodata = nodata_pair(nodata, cfg, chunk.dtype)
    with thread_config(options):
        if _one_mapping(cfg, stack.dtype, chunk.dtype, src_nodata, dst_nodata):
            index = nearest_index((window[3], window[2]), transform, srs, gbox, f'ZARR:"{first.store}":{first.array}')
            take_mapped(index, stack, [t for t, _ in parts], chunk, src_nodata, 0 if dst_nodata is None else dst_nodata)
            return True
        for pixels, (t, part) in zip(stack, parts):
            source = gdal_array.OpenArray(pixels)
            source.SetGeoTransform(transform)
            warp(source, 1, cfg, gbox, srs, nodata, f'ZARR:"{part.store}":{part.array}:{part.index}', dst=chunk[t])
            source = None
    return True


def _one_mapping(cfg: Any, src_dtype: np.dtype, dst_dtype: np.dtype, src_nodata: Any, dst_nodata: Any) -> bool:
    """Whether every date may take GDAL's nearest-neighbour pixel mapping, computed once
    (:func:`.reader.nearest_index`), and give what the warper gives each: values that convert exactly,
    and no valid value the warper would nudge off the output's no-data (it does when the two no-data
    values differ on an integer output)."""
    from odc.loader._reader import same_nodata

    return (str(cfg.resampling) in ("nearest", "near") and np.can_cast(src_dtype, dst_dtype, "safe")
            and (dst_dtype.kind == "f" or dst_nodata is None or same_nodata(src_nodata, dst_nodata)))


def take_mapped(index: np.ndarray, stack: np.ndarray, slots: Sequence[int], chunk: np.ndarray, src_nodata: Any,
                fill: Any) -> None:
    """Each (y, x) raster of ``stack`` through the pixel mapping ``index`` into its slot of ``chunk``:
    ``fill`` where no source pixel maps or where it is no-data, as the warper leaves them."""
    from odc.loader._reader import nodata_mask

    missing = index < 0
    flat = np.where(missing, 0, index)
    for pixels, t in zip(stack.reshape(len(stack), -1), slots):
        values = pixels.take(flat)
        chunk[t] = values
        np.copyto(chunk[t], fill, where=missing | nodata_mask(values, src_nodata))


def source_window(grid: Any, crs: Any, gbox: Any, resampling: str) -> tuple[int, int, int, int] | None:
    """(x_off, y_off, x_size, y_size) of the array (``grid`` in ``crs``) that the warper reads for the
    block ``gbox``, with a margin for its kernel; None when the array does not reach the block."""
    from odc.geo.geobox import GeoBox
    from odc.geo.overlap import compute_reproject_roi

    height, width = grid.shape
    info = compute_reproject_roi(GeoBox((height, width), grid.affine, crs), gbox, padding=0)
    rows, columns = info.roi_src
    if rows.stop <= rows.start or columns.stop <= columns.start:
        return None
    margin = WARP_MARGIN.get(str(resampling), 4) * max(1, math.ceil(info.scale))
    x0, x1 = max(0, columns.start - margin), min(width, columns.stop + margin)
    y0, y1 = max(0, rows.start - margin), min(height, rows.stop + margin)
    return x0, y0, x1 - x0, y1 - y0


def _read_piece_apart(slab: Hyperslab, piece: Piece, chunk: np.ndarray, gdal_type: int,
                      fix: Callable[[np.ndarray], None], options: Mapping[str, str]) -> None:
    """One piece in a reader thread, with its own handle on the array (opened and closed here)."""
    with thread_config(options):
        array = ZarrArray(slab.store, slab.array)
        try:
            read_piece(array, slab, piece, chunk, gdal_type, fix)
        finally:
            array.close()
