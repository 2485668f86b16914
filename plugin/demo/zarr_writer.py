"""A Zarr v2 store written by hand (JSON metadata plus zlib chunks).

Zarr v2 is simple enough that writing it directly costs less than depending on the `zarr`
package inside QGIS, and it lets us lay out exactly what both readers need: CF attributes
for xarray (``scale_factor``, ``_FillValue``, CF time, a ``grid_mapping`` variable) and the
``_CRS`` attribute GDAL's Zarr driver reads, plus consolidated metadata so a remote reader
opens the cube with one request. zlib is the compressor every Zarr reader has.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

_ZLIB_LEVEL = 6


@dataclass(frozen=True)
class ZarrArray:
    """One array of the store."""

    name: str
    data: np.ndarray
    dims: tuple[str, ...]  #: names for ``_ARRAY_DIMENSIONS`` (xarray, GDAL)
    chunks: tuple[int, ...]
    fill_value: Any  #: Zarr fill value (None: no fill value)
    attrs: dict[str, Any] = field(default_factory=dict)


def _dtype_str(dtype: np.dtype) -> str:
    return dtype.newbyteorder("<").str


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)


def _array_meta(arr: ZarrArray) -> dict[str, Any]:
    return {
        "zarr_format": 2,
        "shape": list(arr.data.shape),
        "chunks": list(arr.chunks),
        "dtype": _dtype_str(arr.data.dtype),
        "compressor": {"id": "zlib", "level": _ZLIB_LEVEL},
        "fill_value": arr.fill_value,
        "order": "C",
        "filters": None,
        "dimension_separator": ".",
    }


def _write_chunks(path: Path, arr: ZarrArray) -> None:
    data = arr.data.astype(arr.data.dtype.newbyteorder("<"), copy=False)
    if data.ndim == 0:
        (path / "0").write_bytes(zlib.compress(data.tobytes(), _ZLIB_LEVEL))
        return
    counts = [-(-n // c) for n, c in zip(data.shape, arr.chunks)]
    for idx in product(*(range(n) for n in counts)):
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, arr.chunks))
        block = data[sl]
        if block.shape != tuple(arr.chunks):  # edge chunks are stored full size, padded
            padded = np.full(arr.chunks, arr.fill_value or 0, dtype=data.dtype)
            padded[tuple(slice(0, n) for n in block.shape)] = block
            block = padded
        key = ".".join(str(i) for i in idx)
        (path / key).write_bytes(zlib.compress(np.ascontiguousarray(block).tobytes(), _ZLIB_LEVEL))


def write_zarr(path: Path, arrays: list[ZarrArray], attrs: dict[str, Any], consolidated: bool = True) -> None:
    """Write a Zarr v2 group with `arrays` and (unless told not to: a group inside a hierarchy whose root
    consolidates it) consolidated metadata (``.zmetadata``)."""
    path.mkdir(parents=True)
    meta: dict[str, Any] = {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}
    for arr in arrays:
        sub = path / arr.name
        sub.mkdir()
        zarray = _array_meta(arr)
        zattrs = {"_ARRAY_DIMENSIONS": list(arr.dims), **arr.attrs}
        (sub / ".zarray").write_text(_json(zarray), encoding="utf-8")
        (sub / ".zattrs").write_text(_json(zattrs), encoding="utf-8")
        meta[f"{arr.name}/.zarray"] = zarray
        meta[f"{arr.name}/.zattrs"] = zattrs
        _write_chunks(sub, arr)
    (path / ".zgroup").write_text(_json(meta[".zgroup"]), encoding="utf-8")
    (path / ".zattrs").write_text(_json(attrs), encoding="utf-8")
    if consolidated:
        (path / ".zmetadata").write_text(_json({"zarr_consolidated_format": 1, "metadata": meta}), encoding="utf-8")
