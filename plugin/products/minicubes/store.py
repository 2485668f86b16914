"""Writing a lazy minicube to NetCDF or Zarr block by block, atomically.

Apart from the request types (:mod:`.minicube`) because writing is its own concern: :func:`write`
computes one block of one variable at a time (a few in flight, on a :class:`.executor.BlockRunner`)
and stores it in its chunk of a Zarr store under a temporary name, moved into place only when
complete; a cancelled or failed write leaves nothing. Blocks whose dask layers carry the
:data:`LOCAL` prefix (Zarr sources, see :mod:`.zarr_regrid`) are computed in this process, never
on a cluster.

Limit: NetCDF is written with scipy (NetCDF-3, the engine available with QGIS), whose ``netcdf_file``
keeps every variable in memory until the file is closed. A NetCDF minicube is therefore streamed into
a temporary Zarr store first and then copied into the NetCDF file chunk by chunk: its peak memory is
about the size of the minicube (plus one variable), which is why NetCDF keeps the lower size limit
(:data:`.minicube.MAX_SIDE_NETCDF`). Zarr output stays bounded by the block size at any size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...analysis.engine.executor import BlockRunner, Canceled
from ...cube.zarr_compat import v2_format
from .errors import MinicubeError
from .time_axis import is_lazy

NETCDF, ZARR = "netcdf", "zarr"
LOCAL = "cubescope-local"
"""Name prefix of the dask layers that must run in this process (Zarr sources), never on a cluster."""


def write(dataset: Any, output: str | Path, fmt: str, progress: Callable[[float], None] | None = None,
          is_canceled: Callable[[], bool] = lambda: False, runner: BlockRunner | None = None,
          final_attrs: Callable[[], Mapping[str, Any]] | None = None) -> Path:
    """The minicube written block by block and atomically: into ``<output>.partial`` (NetCDF through a
    temporary ``<output>.partial.zarr``), moved into place when complete. Lazy variables are computed
    one block at a time by ``runner`` (default: local threads); ``progress`` gets percent. A cancelled
    or failed write raises (InterruptedError when cancelled) and leaves neither output nor partial files.
    ``final_attrs`` gives global attributes known only once the blocks are computed (inputs left out)."""
    import os

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    staging = partial if fmt == ZARR else path.with_name(path.name + ".partial.zarr")
    report = progress or (lambda _p: None)
    share = 100.0 if fmt == ZARR else 85.0  # percent done when the blocks are written
    encoding = _encoding(dataset)
    try:
        for leftover in (partial, staging):
            remove(leftover)
        written = _stream_zarr(dataset, staging, encoding, runner or BlockRunner(), lambda f: report(share * f),
                               is_canceled, final_attrs)
        if fmt != ZARR:
            _zarr_to_netcdf(written, staging, partial, encoding, lambda f: report(share + (100.0 - share) * f),
                            is_canceled)
            remove(staging)
        remove(path)
        os.replace(partial, path)
    except BaseException as error:
        for leftover in (partial, staging):
            remove(leftover)
        if isinstance(error, Canceled):
            raise InterruptedError("Cancelled") from None
        raise
    return path


def remove(path: Path) -> None:
    """Delete a file or a folder (such as a Zarr store) if it exists."""
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _encoding(dataset: Any) -> dict[str, dict]:
    """CF time units and NaN as the fill value of float variables."""
    encoding: dict[str, dict] = {}
    if "time" in dataset.variables:
        encoding["time"] = {"units": "days since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}
    for name in dataset.data_vars:
        if dataset[name].dtype.kind == "f":
            encoding[name] = {"_FillValue": np.float32(np.nan)}
    return encoding


def _stream_zarr(dataset: Any, store: Path, encoding: dict[str, dict], runner: BlockRunner,
                 progress: Callable[[float], None], is_canceled: Callable[[], bool],
                 final_attrs: Callable[[], Mapping[str, Any]] | None = None) -> Any:
    """Write ``dataset`` into a new Zarr ``store``: the metadata and in-memory variables first, then
    every block of every lazy variable into its own chunk as it is computed. Returns the dataset as
    written (lazy variables chunked with the time axis whole, like the store)."""
    import dask
    import zarr
    from dask.local import get_sync

    lazy = [name for name in dataset.data_vars if is_lazy(dataset[name].data)]
    dataset = dataset.copy()
    for name in lazy:  # one chunk of the store per block: every time step, one block of pixels
        data = dataset[name]
        dataset[name] = data.chunk({dim: -1 if dim == "time" else data.chunks[data.dims.index(dim)][0]
                                    for dim in data.dims})
    # Zarr v2 under zarr 3 too: GDAL before 3.11 (Debian 12 and 13) and zarr 2 read no other (zarr_compat).
    dataset.to_zarr(store, mode="w", compute=False, consolidated=False, encoding=encoding, **v2_format())
    group = zarr.open_group(str(store), mode="r+")
    here, anywhere = [], []
    for name in lazy:
        array = dataset[name].data
        (here if _runs_here(array) else anywhere).extend(block_tasks(name, array))
    total, done = max(1, len(here) + len(anywhere)), [0]

    def consume(key: tuple[str, tuple[slice, ...]], block: np.ndarray) -> None:
        name, where = key
        group[name][where] = _encoded(dataset[name], block, encoding.get(name, {}))
        done[0] += 1
        progress(done[0] / total)

    runner.run(anywhere, consume, is_canceled)
    for key, task in here:  # Zarr sources: this process's stores and fetcher, one block at a time
        if is_canceled():
            raise Canceled("Cancelled")
        (block,) = dask.compute(task, scheduler=get_sync)  # named, it would import distributed
        consume(key, block)
    if final_attrs is not None:
        extra = dict(final_attrs())
        group.attrs.update(extra)
        dataset.attrs.update(extra)  # the NetCDF copy takes its attributes from the dataset
    zarr.consolidate_metadata(str(store))
    return dataset


def _runs_here(array: Any) -> bool:
    """Whether a lazy array depends on blocks that only this process can compute (see :data:`LOCAL`)."""
    return any(str(name).startswith(LOCAL) for name in array.__dask_graph__().layers)


def block_tasks(name: str, array: Any) -> list[tuple[tuple[str, tuple[slice, ...]], Any]]:
    """((variable, its slices), delayed block) for every block of a dask array."""
    delayed = array.to_delayed(optimize_graph=True)
    offsets = [np.cumsum((0, *chunks)) for chunks in array.chunks]
    tasks = []
    for index in np.ndindex(*array.numblocks):
        where = tuple(slice(int(o[i]), int(o[i + 1])) for o, i in zip(offsets, index))
        tasks.append(((name, where), delayed[index]))
    return tasks


def _encoded(data: Any, block: np.ndarray, encoding: dict) -> np.ndarray:
    """A block as xarray stores it (CF encoding: the fill value, a dtype if one is asked)."""
    import xarray
    from xarray.conventions import encode_cf_variable

    variable = xarray.Variable(data.dims, block, dict(data.attrs), {**data.encoding, **encoding})
    return np.asarray(encode_cf_variable(variable, name=str(data.name)).values)


def _zarr_to_netcdf(dataset: Any, staging: Path, target: Path, encoding: dict[str, dict],
                    progress: Callable[[float], None], is_canceled: Callable[[], bool]) -> None:
    """Copy the streamed Zarr store into a NetCDF file chunk by chunk (local threads), with the
    metadata of ``dataset``. scipy keeps the whole file in memory until it is closed (see the module)."""
    import dask
    import xarray
    from dask.callbacks import Callback

    counts = {"done": 0, "total": 1}

    def start(dsk: Any, _state: Any) -> None:
        counts["total"] = max(1, len(dsk))

    def before(_key: Any, _dsk: Any, _state: Any) -> None:
        if is_canceled():
            raise Canceled("Cancelled")

    def after(_key: Any, _result: Any, _dsk: Any, _state: Any, _worker: Any) -> None:
        counts["done"] += 1
        progress(min(1.0, counts["done"] / counts["total"]))

    with xarray.open_zarr(staging, consolidated=True) as staged:
        out = dataset.copy()
        for name in dataset.data_vars:
            if is_lazy(dataset[name].data):
                out[name] = dataset[name].copy(data=staged[name].data)
        with Callback(start_state=start, pretask=before, posttask=after), dask.config.set(scheduler="threads"):
            out.to_netcdf(target, engine=_netcdf_engine(), encoding=encoding)


def _netcdf_engine() -> str:
    import importlib.util

    for module, engine in (("netCDF4", "netcdf4"), ("h5netcdf", "h5netcdf"), ("scipy", "scipy")):
        if importlib.util.find_spec(module) is not None:
            return engine
    raise MinicubeError("Writing NetCDF needs netCDF4, h5netcdf or scipy; none is installed (choose Zarr)")

