"""An odc-stac reader driver that reads aligned windows straight through GDAL and leaves the rest to odc.

odc-stac plans the load (grid, groups, chunks, fusing) and its rasterio reader opens every file again
for every chunk inside three fresh rasterio environments: on local COGs that costs 3-4 times the
decoding itself. This driver remembers each file's grid (transform, size, CRS) and, when a source
lies on the output grid already (same CRS, north-up, edges on the output's pixel edges, the same
pixel size or an integer multiple read with nearest neighbour), opens it with GDAL, reads the window
(GDAL upsampling by the integer factor) and closes it. No reprojection is done here: every other
case (another CRS, a shifted or rotated grid, other resampling) goes to odc-stac's own reader,
unchanged. Handles are not kept between reads: an open COG holds its decoder buffers (about 0.4 MB
each), which for hundreds of files would make memory grow with the extent; reopening a local COG
costs ~0.1 ms, and over HTTP GDAL's /vsicurl/ cache keeps the headers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...stac.gdal_env import THREAD_LOCAL_DEFAULTS, open_saying_why, share_with_gdal_threads
from ...stac.unreadable import check_format, display_url
from .executor import ByValue

GDAL_TYPES = {"uint8": 1, "uint16": 2, "int16": 3, "uint32": 4, "int32": 5, "float32": 6, "float64": 7, "int8": 14}
#: Grids remembered per thread (a few hundred bytes each).
GRIDS = 4096
#: odc-stac's resampling names that gdal.Warp spells otherwise.
_WARP_RESAMPLING = {"nearest": "near"}
#: Object-store keys: rasterio refuses them as GDAL options (it wants a boto3 session), so this driver
#: sets them on GDAL itself, for the reading thread only.
_KEYS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})


def rasterio_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the keys rasterio refuses to take."""
    return {k: v for k, v in options.items() if k not in _KEYS}


def thread_dict(name: str) -> dict:
    """A dict kept on the current thread (nothing module-global, so the module pickles by value)."""
    thread = threading.current_thread()
    cache = getattr(thread, name, None)
    if cache is None:
        cache = {}
        setattr(thread, name, cache)
    return cache


def gdal_read_options(env: Mapping[str, Any]) -> dict[str, str]:
    # GDAL's own threads off, as in every thread-local configuration (stac.gdal_env.gdal_config): the
    # engine reads slices on its own pools, and GDAL 3.13's Zarr reads deadlocked on GDAL's shared pool.
    return {**THREAD_LOCAL_DEFAULTS, **{k: str(v) for k, v in env.items() if isinstance(k, str) and k.isupper()
                                 and v is not None and not isinstance(v, (dict, list))}}


@contextmanager
def thread_config(options: Mapping[str, str]) -> Iterator[None]:
    from osgeo import gdal

    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    try:
        for key, value in options.items():
            gdal.SetThreadLocalConfigOption(key, value)
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


class FileGrid:
    """A file's grid: affine, (height, width), odc-geo CRS and the file's own WKT of it."""

    def __init__(self, dataset: Any) -> None:
        from affine import Affine
        from odc.geo.crs import CRS

        self.affine = Affine.from_gdal(*dataset.GetGeoTransform())
        self.shape = (dataset.RasterYSize, dataset.RasterXSize)
        wkt = self.wkt = dataset.GetProjection()
        known = thread_dict("_cubescope_crs")
        if wkt and wkt not in known:
            known[wkt] = CRS(wkt)
        self.crs = known.get(wkt) if wkt else None


def open_dataset(uri: str) -> Any:
    share_with_gdal_threads(uri)  # a Zarr store's options for GDAL 3.13's own threads (see there)
    dataset, message = open_saying_why(uri)
    if dataset is None:
        raise OSError(f"Cannot open {display_url(uri)}: {message or 'GDAL could not open it'}")
    driver = dataset.GetDriver()
    check_format(uri, driver.ShortName if driver is not None else "")  # a PNG named red.tif is not a COG
    return dataset


def file_grid(uri: str, dataset: Any = None) -> FileGrid:
    """The file's grid, remembered per thread; read afresh from ``dataset`` when one is given."""
    grids = thread_dict("_cubescope_grids")
    grid = grids.get(uri)
    if grid is None or dataset is not None:
        grid = grids[uri] = FileGrid(dataset if dataset is not None else open_dataset(uri))
        if len(grids) > GRIDS:
            grids.pop(next(iter(grids)))
    return grid


def read_plan(affine: Any, crs: Any, dst_box: Any, resampling: str) -> tuple[int, int, int] | None:
    """(scale k, column, row of the source's corner in output pixels) when the source (``affine``,
    ``crs``) sits on the output grid with pixels k times larger; None when it needs odc-stac's
    reprojection."""
    if crs is None or dst_box.crs is None:
        return None
    s, d = affine, dst_box.affine
    if s.b or s.d or d.b or d.d or s.a <= 0 or s.e >= 0 or d.a <= 0 or d.e >= 0:
        return None
    k = s.a / d.a
    if abs(k - round(k)) > 1e-9 or abs(s.e / d.e - k) > 1e-9 or round(k) < 1:
        return None
    k = round(k)
    if k > 1 and resampling != "nearest":
        return None
    col, row = (s.c - d.c) / d.a, (s.f - d.f) / d.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    col, row = round(col), round(row)
    if col % k or row % k:  # the output's edges must fall on source pixel edges
        return None
    if not same_crs(crs, dst_box.crs):
        return None
    return k, col, row


def nodata_pair(file_nodata: float | None, cfg: Any, dtype: Any) -> tuple[Any, Any]:
    """(source, destination) no-data of a read into ``dtype`` from a file with ``file_nodata``, by
    odc-stac's rules."""
    from odc.loader._reader import resolve_dst_nodata, resolve_src_nodata

    src_nodata = resolve_src_nodata(file_nodata, cfg)
    return src_nodata, resolve_dst_nodata(np.dtype(dtype), cfg, src_nodata)


def nodata_fix(file_nodata: float | None, cfg: Any, dtype: Any) -> Callable[[np.ndarray], None]:
    """What turns a file's no-data value into the load's, in place, as odc-stac does (nothing to do
    when they are the same)."""
    from odc.loader._reader import nodata_mask, same_nodata

    src_nodata, dst_nodata = nodata_pair(file_nodata, cfg, dtype)
    if dst_nodata is None or same_nodata(src_nodata, dst_nodata):
        return keep_pixels
    return lambda pixels: np.copyto(pixels, dst_nodata, where=nodata_mask(pixels, src_nodata))


def keep_pixels(_pixels: np.ndarray) -> None:
    return None


def same_crs(a: Any, b: Any) -> bool:
    """CRS equality, remembered per thread: pyproj's comparison costs ~0.1 ms, once per read otherwise."""
    known = thread_dict("_cubescope_same_crs")
    key = (str(a), str(b))
    if key not in known:
        if len(known) > GRIDS:
            known.clear()
        known[key] = bool(a == b)
    return known[key]


def placement(grid: FileGrid, plan: tuple[int, int, int], dst_geobox: Any
              ) -> tuple[tuple[slice, slice], tuple[int, int, int, int]]:
    """Where a source on the grid (``plan`` from :func:`read_plan`) lands in the block: the roi in the
    block and the window (x_off, y_off, x_size, y_size) of the file that covers it; empty when the
    raster misses the block."""
    k, col, row = plan
    height, width = dst_geobox.shape.yx
    src_h, src_w = grid.shape
    c0, c1 = max(0, col), min(width, col + src_w * k)
    r0, r1 = max(0, row), min(height, row + src_h * k)
    roi = (slice(r0, max(r0, r1)), slice(c0, max(c0, c1)))
    return roi, ((c0 - col) // k, (r0 - row) // k, math.ceil((c1 - c0) / k), math.ceil((r1 - r0) / k))


def _warp_target(dst_geobox: Any, dtype: np.dtype, init: float) -> Any:
    """A GDAL memory raster on ``dst_geobox`` filled with ``init``, for the warper to write into."""
    from osgeo import gdal

    height, width = dst_geobox.shape.yx
    out = gdal.GetDriverByName("MEM").Create("", width, height, 1, GDAL_TYPES[dtype.name])
    out.SetGeoTransform(dst_geobox.affine.to_gdal())
    out.SetProjection(dst_geobox.crs.wkt)
    out.GetRasterBand(1).Fill(init)
    return out


def _warp(target: Any, source: Any, name: str, **options: Any) -> None:
    from osgeo import gdal

    gdal.ErrorReset()
    if gdal.Warp(target, source, **{k: v for k, v in options.items() if v is not None}) is None:
        raise OSError(f"Cannot read {name}: {gdal.GetLastErrorMsg() or 'warping failed'}")


def warp(source: Any, band: int, cfg: Any, dst_geobox: Any, src_srs: str, file_nodata: float | None, name: str,
         dst: np.ndarray | None = None) -> np.ndarray:
    """The GDAL dataset ``source`` (one band; band ``band`` gives its data type) warped onto
    ``dst_geobox``, into ``dst`` when given, for what odc-stac's rasterio reprojection gets wrong: a
    slice of a Zarr cube, whose CRS GDAL 3.6's Zarr driver gives a broken axis mapping ([0, 2]: every
    transformation of its pixels lands nowhere, and a reprojected read is all no-data), and a file
    without a CRS, which takes the one its item declares. The CRS (``src_srs``) goes to the warper as
    WKT, which carries no axis mapping. Same resampling and no-data rules as odc-stac; ``name`` is
    what an error names."""
    from osgeo import gdal

    dst_dtype = np.dtype(cfg.dtype or gdal.GetDataTypeName(source.GetRasterBand(band).DataType).lower())
    if dst_dtype.name not in GDAL_TYPES:
        raise OSError(f"Cannot read {name}: data type {dst_dtype.name} is not supported")
    src_nodata, dst_nodata = nodata_pair(file_nodata, cfg, dst_dtype)
    out = _warp_target(dst_geobox, dst_dtype, 0 if dst_nodata is None else float(dst_nodata))
    _warp(out, source, name, resampleAlg=_WARP_RESAMPLING.get(str(cfg.resampling), str(cfg.resampling)),
          srcNodata=src_nodata, dstNodata=dst_nodata, srcSRS=src_srs)
    if dst is not None and dst.dtype == dst_dtype and dst.flags.c_contiguous:
        out.GetRasterBand(1).ReadAsArray(buf_obj=dst)
        return dst
    return out.GetRasterBand(1).ReadAsArray()


def nearest_index(shape: tuple[int, int], transform: tuple[float, ...], src_srs: str, dst_geobox: Any,
                  name: str) -> np.ndarray:
    """For each pixel of ``dst_geobox``, the flat index of the pixel of a (height, width) source with GDAL
    geotransform ``transform`` in ``src_srs`` that GDAL's warper takes with nearest neighbour (-1 where
    it takes none): GDAL's reprojection of a raster of indices, so that a stack of rasters on one grid
    is warped with one transformation instead of one per raster."""
    from osgeo import gdal_array

    height, width = shape
    source = gdal_array.OpenArray(np.arange(height * width, dtype=np.int32).reshape(height, width))
    source.SetGeoTransform(transform)
    out = _warp_target(dst_geobox, np.dtype("int32"), -1)
    _warp(out, source, name, resampleAlg="near", srcSRS=src_srs)
    return out.GetRasterBand(1).ReadAsArray()


class CubescopeReader:
    """One band of one asset (the odc-stac ``RasterReader`` protocol)."""

    def __init__(self, src: Any, env: Mapping[str, Any]) -> None:
        self.src = src
        self.env = dict(env)

    def read(self, cfg: Any, dst_geobox: Any, *, dst: Any = None, selection: Any = None) -> tuple:
        if selection is not None or not isinstance(self.src.band, int):
            return self._odc_read(cfg, dst_geobox, dst, selection)
        with thread_config(gdal_read_options(self.env)):
            grid = file_grid(self.src.uri)
            declared = getattr(self.src.geobox, "crs", None)
            plan = read_plan(grid.affine, grid.crs or declared, dst_geobox, cfg.resampling)
            if plan is None:
                if self.src.uri.startswith("ZARR:") or (grid.crs is None and declared is not None):
                    return self._warp_read(cfg, dst_geobox, dst, None if grid.crs else declared)
                return self._odc_read(cfg, dst_geobox, dst, selection)
            return self._direct_read(grid, cfg, dst_geobox, dst, plan)

    def _warp_read(self, cfg: Any, dst_geobox: Any, dst: Any, crs: Any) -> tuple:
        """The block through GDAL's warper (:func:`warp`), with the CRS its item declares (``crs``) for a
        file without one."""
        source = open_dataset(self.src.uri)
        pixels = warp(source, self.src.band, cfg, dst_geobox, crs.wkt if crs is not None else source.GetProjection(),
                      source.GetRasterBand(self.src.band).GetNoDataValue(), self.src.uri)
        source = None
        roi = (slice(0, dst_geobox.shape.y), slice(0, dst_geobox.shape.x))
        if dst is not None:
            dst[roi] = pixels
            return roi, dst[roi]
        return roi, pixels

    def _odc_read(self, cfg: Any, dst_geobox: Any, dst: Any, selection: Any, src: Any = None) -> tuple:
        from odc.loader._rio import rio_env, rio_read

        keys = {k: str(v) for k, v in self.env.items() if k in _KEYS}
        with thread_config(keys), rio_env(**rasterio_options(self.env)):
            return rio_read(src or self.src, cfg, dst_geobox, dst=dst, selection=selection)

    def _direct_read(self, grid: FileGrid, cfg: Any, dst_geobox: Any, dst: Any, plan: tuple[int, int, int]) -> tuple:
        from osgeo import gdal

        k = plan[0]
        roi, (x_off, y_off, x_size, y_size) = placement(grid, plan, dst_geobox)
        if roi[0].stop <= roi[0].start or roi[1].stop <= roi[1].start:  # footprints touch, rasters do not
            dtype = np.dtype(cfg.dtype or (self.src.meta.data_type if self.src.meta else None) or "float32")
            return roi, np.empty((roi[0].stop - roi[0].start, roi[1].stop - roi[1].start), dtype=dtype)
        dataset = open_dataset(self.src.uri)
        band = dataset.GetRasterBand(self.src.band)
        dst_dtype = np.dtype(cfg.dtype or gdal.GetDataTypeName(band.DataType).lower())
        if dst_dtype.name not in GDAL_TYPES:
            return self._odc_read(cfg, dst_geobox, dst, None)
        fix = nodata_fix(band.GetNoDataValue(), cfg, dst_dtype)
        gdal.ErrorReset()
        pixels = band.ReadAsArray(x_off, y_off, x_size, y_size, buf_xsize=x_size * k, buf_ysize=y_size * k,
                                  buf_type=GDAL_TYPES[dst_dtype.name], resample_alg=gdal.GRIORA_NearestNeighbour)
        band = dataset = None  # closed: its decoded tiles and decoder buffers go with it
        if pixels is None:
            raise OSError(f"Cannot read {self.src.uri}: {gdal.GetLastErrorMsg() or 'read failed'}")
        pixels = pixels[: roi[0].stop - roi[0].start, : roi[1].stop - roi[1].start]
        fix(pixels)
        if dst is not None:
            dst[roi] = pixels
            return roi, dst[roi]
        return roi, pixels


class CubescopeDriver:
    """odc-stac's ``ReaderDriver`` protocol around :class:`CubescopeReader`; odc-stac parses the items."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        from odc.loader._rio import RioDriver

        self._rio = RioDriver()
        self._options = dict(options or {})
        """The load's GDAL options (endpoints, headers, object-store keys) that every read applies."""

    def new_load(self, geobox: Any, *, chunks: Any = None) -> Any:
        return self._rio.new_load(geobox, chunks=chunks)

    def finalise_load(self, load_state: Any) -> Any:
        return self._rio.finalise_load(load_state)

    def capture_env(self) -> dict[str, Any]:
        """odc-stac's defaults and the load's options. odc-stac's own capture under ``rasterio.Env``
        would drop the object-store options (AWS_S3_ENDPOINT, AWS_*), which it takes for session keys."""
        return {**self._rio.capture_env(), **self._options}

    @contextmanager
    def restore_env(self, env: dict[str, Any], load_state: Any) -> Iterator[Any]:
        yield env

    def open(self, src: Any, ctx: Any) -> CubescopeReader:
        return CubescopeReader(src, ctx if isinstance(ctx, dict) else {})

    def __reduce__(self) -> tuple:
        """Pickled with its code (a Dask worker need not have Cubescope), state as usual."""
        import copyreg

        shipped = self.__dict__.setdefault("_shipped_class", ByValue(type(self)))
        state = {k: v for k, v in self.__dict__.items() if k != "_shipped_class"}
        return copyreg._reconstructor, (shipped, object, None), state

    @property
    def md_parser(self) -> Any:
        return None

    @property
    def dask_reader(self) -> Any:
        return None

    @property
    def aux_reader(self) -> Any:
        return None
