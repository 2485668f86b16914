"""odc-stac's load plan, executed without its per-slice fill and fuse and without reopening files.

odc-stac plans a load: which items touch which chunk of the grid, in which order, with which load
settings (dtype, no-data, resampling). Its dask loader then, for every time slice of every chunk,
fills the slice with the fill value, reads each source into a new array, compares the slice with
the no-data value and copies through that mask: three passes over every pixel besides the read,
and the file opened again for each read. On sources that already lie on the grid (one tile at its
native resolution: most composites) that costs more than decoding the pixels.

This module runs the same plan (odc-stac's own ``tyx_bins``, sources and ``RasterLoadParams``,
taken from its ``debug`` output) with the same result: a slice's first source is read by GDAL
straight into the chunk (for the first source, odc-stac's "fill where still no-data" fuse is a
plain copy), later sources of the same solar day are fused exactly as odc-stac fuses them, and
sources that are not on the grid go through :class:`.reader.CubescopeReader` (odc-stac's or GDAL's
warper) unchanged. Files stay open per thread (:mod:`.open_files`), at most ``HANDLES`` of them and for one load
only, so memory stays bounded and a file rewritten between two runs is read afresh.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from .executor import BlockState, ByValue, Canceled, block_state
from .open_files import OpenFile, handles, opened, release
from .reader import (
    GDAL_TYPES,
    CubescopeReader,
    gdal_read_options,
    nodata_fix,
    placement,
    read_plan,
    same_crs,
    thread_config,
    thread_dict,
)
from .reader_pools import is_remote, reader_pool, run_together
from .skipped_reads import known_bad, left_out
from .zarr_stack import read_hyperslabs

#: Time slices of one chunk read at once when its files are remote: each read waits for a round trip
#: or more, so several in flight hide the latency; decoding stays bounded by the block threads.
REMOTE_READERS = 8

#: Whether a block's slices of one Zarr array on its grid are read as one hyperslab (:mod:`.zarr_stack`);
#: off, each slice is read as its own raster, as before (the benchmark's baseline).
ZARR_HYPERSLABS = True

def _window(entry: OpenFile, src: Any, cfg: Any, gbox: Any) -> tuple[tuple[slice, slice], tuple, int] | None:
    """(roi in the chunk, (x_off, y_off, x_size, y_size) in the file, k) when ``src`` lies on the
    chunk's grid with pixels k times larger; None when it needs a warper."""
    declared = getattr(src.geobox, "crs", None)
    if entry.grid.crs is None and declared is not None:
        return None  # a file without a CRS: the reader warps it with the declared one
    plan = read_plan(entry.grid.affine, entry.grid.crs, gbox, cfg.resampling)
    if plan is None:
        return None
    roi, window = placement(entry.grid, plan, gbox)
    return roi, window, plan[0]


def _apart(src: Any, gbox: Any) -> bool:
    """Whether the source shares no pixel with the chunk, by its declared grid (its STAC proj
    metadata) or by the grid its file had when this thread opened it before.

    odc-stac bins sources by their footprints, which at a tile's edge also touch the neighbouring
    blocks; such a source gives no pixel there, and is not opened for it (opening it would push
    the files the block needs out of the cache).
    """
    declared = getattr(src, "geobox", None)
    if declared is not None and getattr(declared, "crs", None) is not None:
        if not same_crs(declared.crs, gbox.crs):
            return False
        left, bottom, right, top = declared.boundingbox
    else:
        known = thread_dict("_cubescope_grids").get(src.uri)
        if known is None or known.crs is None or not same_crs(known.crs, gbox.crs):
            return False
        a = known.affine
        if a.b or a.d or a.a <= 0 or a.e >= 0:
            return False
        left, top = a.c, a.f
        right, bottom = a.c + a.a * known.shape[1], a.f + a.e * known.shape[0]
    x0, y0, x1, y1 = gbox.boundingbox
    return right <= x0 or x1 <= left or top <= y0 or y1 <= bottom


def _read_window(entry: OpenFile, src: Any, window: tuple, k: int, dtype: np.dtype, out: np.ndarray | None
                 ) -> np.ndarray:
    """The window upsampled k times (nearest), into ``out`` when it has exactly that shape."""
    from osgeo import gdal

    band, _ = entry.band(src.band)
    x_off, y_off, x_size, y_size = window
    shape = (y_size * k, x_size * k)
    into = out is not None and out.shape == shape
    gdal.ErrorReset()
    if k == 1 and into:
        pixels = band.ReadAsArray(x_off, y_off, x_size, y_size, buf_obj=out)
    else:
        # Coarser pixels are read at their own size and repeated here: GDAL's nearest-neighbour
        # upsampling in RasterIO walks pixel by pixel (0.93 ms against 0.65 ms for a 20 m SCL block).
        pixels = band.ReadAsArray(x_off, y_off, x_size, y_size, buf_type=GDAL_TYPES[dtype.name])
    # The decoded tiles are in the pixels now; without this they would stay in GDAL's block cache
    # while the file is open (up to GDAL_CACHEMAX, 5 % of the RAM, for tiles never read again).
    band.FlushCache()
    if pixels is None:
        raise OSError(f"Cannot read {src.uri}: {gdal.GetLastErrorMsg() or 'read failed'}")
    if k == 1:
        return pixels
    target = out if into else np.empty(shape, dtype=dtype)
    for dy in range(k):
        for dx in range(k):
            target[dy::k, dx::k] = pixels
    return target


def _fill_value(dtype: np.dtype, cfg: Any) -> Any:
    """What odc-stac puts where no source gives a pixel."""
    from odc.loader import resolve_src_nodata
    from odc.loader._reader import resolve_dst_fill_value

    return resolve_dst_fill_value(dtype, cfg, resolve_src_nodata(cfg.fill_value, cfg))


def _fill_slice(sources: Sequence[Any], gbox: Any, cfg: Any, dst: np.ndarray, env: Mapping[str, Any],
                token: str) -> None:
    """One time slice of a chunk: what odc-stac's ``_fill_nd_slice`` gives, in fewer passes.

    A source that cannot be read gives no pixels, as if it did not cover the chunk, and is reported
    (:func:`.skipped_reads.left_out`, which raises instead when the run stops at the first bad input).
    """
    from odc.loader import resolve_fuser
    from odc.loader._fuser import fuser_for_nodata

    fill = _fill_value(dst.dtype, cfg)
    fuse = resolve_fuser(cfg.fuser_fqn) if cfg.fuser_fqn is not None else fuser_for_nodata(fill)
    filled = False
    for number, src in enumerate(sources):
        if _apart(src, gbox) or known_bad(env, src.uri):
            continue
        try:
            filled = _fill_from(number, src, gbox, cfg, dst, env, token, fill, fuse, filled)
        except _READ_ERRORS as error:  # what GDAL and rasterio raise for a broken or missing file
            _forget(src.uri, token)
            if number == 0:  # read in place: the part read before the failure is not kept
                dst.fill(fill)
                filled = True
            left_out(env, src.uri, error)
    if not filled:
        dst.fill(fill)


def _read_errors() -> tuple[type[BaseException], ...]:
    try:  # odc-stac's own reader (warped sources) raises rasterio's errors, not all of them OSErrors
        from rasterio.errors import RasterioError
    except ImportError:
        return (OSError, RuntimeError)
    return (OSError, RuntimeError, RasterioError)


_READ_ERRORS = _read_errors()


def _forget(uri: str, token: str) -> None:
    entry = handles(token).pop(uri, None)
    if entry is not None:
        entry.close()


def _fill_from(number: int, src: Any, gbox: Any, cfg: Any, dst: np.ndarray, env: Mapping[str, Any], token: str,
               fill: Any, fuse: Callable[[np.ndarray, np.ndarray], None], filled: bool) -> bool:
    """Read one source into the slice ``dst`` (in place for the first source); returns whether ``dst``
    now holds its fill value or pixels everywhere."""
    # A Zarr slice is not kept open: each would hold a decoded chunk of all its dates (MBs).
    entry = opened(src.uri, token) if isinstance(src.band, int) and not src.uri.startswith("ZARR:") else None
    placed = _window(entry, src, cfg, gbox) if entry is not None else None
    if placed is None or dst.dtype.name not in GDAL_TYPES:
        if not filled:
            dst.fill(fill)
        roi, pixels = CubescopeReader(src, env).read(cfg, gbox)
        fuse(dst[roi], pixels)
        return True
    roi, window, k = placed
    area = dst[roi]
    if area.size == 0:  # footprints touch, rasters do not: this file is not kept open for it
        handles(token).pop(src.uri).close()
        return filled
    _, file_nodata = entry.band(src.band)
    fix = nodata_fix(file_nodata, cfg, dst.dtype)
    whole = area.shape == dst.shape
    if number == 0 and cfg.fuser_fqn is None:
        # The first source: odc-stac's fuse copies all of it; read it in place.
        if not whole and not filled:
            dst.fill(fill)
        pixels = _read_window(entry, src, window, k, dst.dtype, area)
        if pixels is not area:
            area[...] = pixels[: area.shape[0], : area.shape[1]]
        fix(area)
        return True
    if not filled:
        dst.fill(fill)
    pixels = _read_window(entry, src, window, k, dst.dtype, None)[: area.shape[0], : area.shape[1]]
    fix(pixels)
    fuse(area, pixels)
    return True


def load_chunk(sources: Sequence[Sequence[Any]], gbox: Any, cfg: Any, env: Mapping[str, Any], token: str,
               keep: np.ndarray | None = None) -> np.ndarray:
    """A (time, y, x) chunk from its sources per time slice (odc-stac's ``RasterSource`` objects).

    Time slices where ``keep`` is False are filled with the fill value and their files are not
    opened: a cloudy date costs its quality band only.
    """
    chunk = np.empty((len(sources), *gbox.shape.yx), dtype=cfg.dtype)
    state = block_state()
    keep = None if keep is None else np.asarray(keep, dtype=bool).reshape(-1)
    todo = [t for t in range(len(sources)) if keep is None or keep[t]]
    if len(todo) < len(sources):
        chunk[~keep] = _fill_value(chunk.dtype, cfg)
    if ZARR_HYPERSLABS and any(src.uri.startswith("ZARR:") for t in todo for src in sources[t]):
        layers = {t: [src for src in sources[t] if not _apart(src, gbox)] for t in todo}
        _check(state)
        if read_hyperslabs(layers, gbox, cfg, chunk, gdal_read_options(env), _fill_value(chunk.dtype, cfg)):
            _count(state, len(todo))
            return chunk
    if REMOTE_READERS > 1 and len(todo) > 1 and any(is_remote(src.uri) for layer in sources for src in layer):
        _read_concurrently([(t, sources[t]) for t in todo], gbox, cfg, chunk, env, state)
        return chunk
    try:
        with thread_config(gdal_read_options(env)):
            for t in todo:
                _check(state)
                _fill_slice(sources[t], gbox, cfg, chunk[t], env, token)
                _count(state)
    except BaseException:
        release()  # a failed load does not go on; its files are closed here, in this thread
        raise
    return chunk


def _check(state: BlockState | None) -> None:
    """Canceled once the run this block belongs to has stopped (:class:`.executor.BlockState`)."""
    if state is not None and state.stop.is_set():
        raise Canceled("Cancelled")


def _count(state: BlockState | None, slices: int = 1) -> None:
    if state is not None:
        state.read(slices)


def _read_slice(t: int, slice_sources: Sequence[Any], gbox: Any, cfg: Any, chunk: np.ndarray,
                env: Mapping[str, Any], token: str, state: BlockState | None) -> None:
    _check(state)
    try:
        with thread_config(gdal_read_options(env)):
            _fill_slice(slice_sources, gbox, cfg, chunk[t], env, token)
        _count(state)
    finally:
        release()  # the files of this slice are closed here, in the thread that opened them


def _read_concurrently(work: Sequence[tuple[int, Sequence[Any]]], gbox: Any, cfg: Any, chunk: np.ndarray,
                       env: Mapping[str, Any], state: BlockState | None) -> None:
    """The time slices in ``work`` read by the shared reader threads, each into its own part of
    ``chunk``; every slice opens and closes its own files, so no GDAL dataset outlives the call or
    changes threads. The first failure stops the slices not yet started and is raised here; so does
    the run's stop (each remote slice costs round trips: a cancel should not wait for them)."""
    token = uuid.uuid4().hex
    run_together(reader_pool("read", REMOTE_READERS),
                 [partial(_read_slice, t, slice_sources, gbox, cfg, chunk, env, token, state)
                  for t, slice_sources in work])


def _slices_to_read(quality: np.ndarray, wanted: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.asarray(wanted(quality), dtype=bool).reshape(-1, 1, 1)


def planned(dataset: Any, chunks: Mapping[str, int], env: Mapping[str, Any], token: str,
            only_where: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> Any:
    """``dataset`` (from ``odc.stac.load(..., debug=True)``) with its variables read by
    :func:`load_chunk`; unchanged when odc-stac's plan is not there in the form this module knows.

    ``only_where`` is (quality variable, which of its time slices are worth reading): that function
    runs once on each chunk of the quality variable, and the same chunk of every other variable reads
    only those slices (:func:`load_chunk`). Without the quality variable in ``dataset`` everything
    is read.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    info = dataset.encoding.pop("debug", None)
    try:
        from odc.loader._builder import load_tasks

        plan = (info.load_cfg, info.tyx_bins, info.gbt, info.srcs)
    except (ImportError, AttributeError):
        return dataset
    load_cfg, tyx_bins, gbt, srcs = plan
    function = ByValue(load_chunk)
    quality_var, wanted = only_where if only_where is not None else (None, None)
    names = sorted(dataset.data_vars, key=lambda name: name != quality_var)  # the quality variable first
    to_read: Any = None  # once the quality variable is read by load_chunk: which slices to read, per chunk
    read_chunks: tuple = ()
    for name in names:
        array = dataset[name].data
        if name not in load_cfg or array.ndim != 3 or not hasattr(array, "dask"):
            continue
        key = f"cubescope-load-{name}-{token}"
        gate = to_read if to_read is not None and read_chunks == array.chunks else None
        graph: dict[tuple, Any] = {}
        for task in load_tasks(load_cfg, tyx_bins, gbt, nt=array.shape[0], chunks=dict(chunks), bands=[name]):
            if len(task.idx) != 3 or task.selection is not None:
                graph = {}
                break
            sources = [[src for _, src in layer] for layer in task.resolve_sources(srcs)]
            graph[(key, *task.idx)] = (function, sources, task.dst_gbox, task.cfg, dict(env), token)
            if gate is not None:  # the time slices to read, which dask passes in
                graph[(key, *task.idx)] += ((gate.name, *task.idx),)
        shape_in_chunks = tuple(len(c) for c in array.chunks)
        if len(graph) != math.prod(shape_in_chunks):
            continue
        depends = (gate,) if gate is not None else ()
        lazy = da.Array(HighLevelGraph.from_collections(key, graph, dependencies=depends), key,
                        chunks=array.chunks, dtype=array.dtype)
        dataset[name] = dataset[name].copy(data=lazy)
        if name == quality_var and wanted is not None and array.chunks[0] == (array.shape[0],):
            # Per chunk a (time, 1, 1) array: which of its time slices the other variables read.
            to_read = da.map_blocks(ByValue(_slices_to_read), lazy, wanted, dtype=bool, chunks=(
                array.chunks[0], (1,) * len(array.chunks[1]), (1,) * len(array.chunks[2])),
                name=f"cubescope-read-{token}")
            read_chunks = lazy.chunks
    return dataset
