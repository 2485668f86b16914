"""Where chips go: samples to one Zarr store or one ``.npz`` per sample, and every chip or sample
(kept or skipped, and why) to a manifest CSV with a JSON summary beside it. All of it is written under
temporary names (``<name>.partial``) and moved into place only when the job is complete. Nothing
imports QGIS."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ...analysis.engine.grid import OutputGrid
from ...cube.zarr_compat import v2_format
from ..minicubes.store import remove
from .model import MASKED, NPZ, ZARR, Chip, ChipError, ChipRequest, ChipResult


class _ZarrSink:
    """Samples appended along ``sample`` to one Zarr store, readable by xarray (dims in attributes)."""

    def __init__(self, path: Path, attrs: dict) -> None:
        import zarr

        self.path = path
        # Zarr v2 under zarr 3 too: GDAL before 3.11 (Debian 12 and 13) and zarr 2 read no other (zarr_compat).
        self.group = zarr.open_group(str(path), mode="w", **v2_format())
        self.group.attrs.update(attrs)
        self.arrays: dict[str, Any] = {}

    def add(self, arrays: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> None:
        for name, (dims, value) in arrays.items():
            value = np.asarray(value)
            if name not in self.arrays:
                chunks = (1, *value.shape) if value.ndim else (1024,)
                array = self.group.create(name, shape=(0, *value.shape), chunks=chunks, dtype=value.dtype,
                                          fill_value=None)
                array.attrs["_ARRAY_DIMENSIONS"] = ["sample", *dims]
                self.arrays[name] = array
            self.arrays[name].append(value[np.newaxis])

    def close(self, coords: dict[str, tuple[str, list]]) -> None:
        import zarr

        for name, (dim, values) in coords.items():
            values = np.asarray(values)
            array = self.group.create(name, shape=values.shape, dtype=values.dtype, chunks=(max(1, len(values)),),
                                      fill_value=None, overwrite=True)
            array[...] = values
            array.attrs["_ARRAY_DIMENSIONS"] = [dim]
        zarr.consolidate_metadata(str(self.path))


MANIFEST_FIELDS = ("id", "chip", "status", "reason", "split", "centre_x", "centre_y", "crs", "xmin", "ymin", "xmax",
                   "ymax", "dates", "context_dates", "target_dates", "masked_fraction", "index", "file")


def _partial(path: Path) -> Path:
    """Where ``path`` is written until it is complete: beside it, so that moving it into place is a rename."""
    return path.with_name(path.name + ".partial")


class ChipWriter:
    """Samples to Zarr or .npz, and every chip or sample (kept or skipped) to the manifest; all of it
    under temporary names until :meth:`finish` moves it into place (:meth:`discard` removes it)."""

    def __init__(self, request: ChipRequest, grid: OutputGrid) -> None:
        self.request, self.grid = request, grid
        self.path = Path(request.output)
        self.manifest = self.path.with_name(self.path.name + ".csv")
        self.summary = self.manifest.with_suffix(".json")
        self.staging = _partial(self.path)
        self.rows: list[dict] = []
        self.skipped: Counter = Counter()
        self.kept = 0
        attrs = {"crs": grid.crs, "resolution": grid.resolution, "chip_size": request.chip_size,
                 "bands": list(request.bands), "mode": request.mode, "source": request.source,
                 "collection": request.collection, "block_size": request.block_size, "seed": request.seed,
                 "split_fractions": list(request.fractions), "max_masked": request.max_masked,
                 "context": request.context, "target": request.target, "shift": request.shift}
        self.attrs = attrs
        if request.format == NPZ and self.path.exists() and not self.path.is_dir():
            raise ChipError(f"{self.path} is a file; .npz samples go into a folder")
        self.discard()  # what an interrupted process may have left
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if request.format == ZARR:
            self.sink: _ZarrSink | None = _ZarrSink(self.staging, attrs)
        else:
            self.staging.mkdir()
            self.sink = None

    def _row(self, chip: Chip, sample_id: str, status: str, reason: str, dates: str = "", **extra: Any) -> dict:
        b = chip.bounds
        row = {"id": sample_id, "chip": chip.id, "status": status, "reason": reason, "split": chip.split or "",
               "centre_x": (b[0] + b[2]) / 2, "centre_y": (b[1] + b[3]) / 2, "crs": self.grid.crs,
               "xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3], "dates": dates, **extra}
        self.rows.append(row)
        return row

    def skip(self, chip: Chip, reason: str, sample_id: str = "", dates: str = "") -> None:
        self.skipped[reason] += 1
        self._row(chip, sample_id or chip.id, "skipped", reason, dates)

    def sample(self, chip: Chip, sample_id: str, arrays: dict, label: np.ndarray | None, masked: float,
               dates: str, **extra: Any) -> None:
        if masked > self.request.max_masked:
            self.skipped[MASKED] += 1
            self._row(chip, sample_id, "skipped", MASKED, dates, masked_fraction=round(masked, 6), **extra)
            return
        if label is not None:
            arrays = {**arrays, "label": (("y", "x"), label.astype(np.float32))}
        row = self._row(chip, sample_id, "kept", "", dates, masked_fraction=round(masked, 6), index=self.kept, **extra)
        if self.sink is not None:
            self.sink.add(arrays)
        else:
            target = self.staging / f"{sample_id}.npz"
            np.savez_compressed(target, **{k: v for k, (_, v) in arrays.items()},
                                bands=np.asarray(self.request.bands), bounds=np.asarray(chip.bounds))
            row["file"] = target.name
        self.kept += 1

    def finish(self) -> ChipResult:
        kept = [r for r in self.rows if r["status"] == "kept"]
        if self.sink is not None:
            if not kept:
                raise ChipError(f"Every chip was skipped ({describe_skipped(self.skipped)}); nothing was written")
            self.sink.close({"sample": ("sample", [r["id"] for r in kept]),
                             "band": ("band", list(self.request.bands)),
                             "split": ("sample", [r["split"] for r in kept]),
                             "centre_x": ("sample", [r["centre_x"] for r in kept]),
                             "centre_y": ("sample", [r["centre_y"] for r in kept])})
        with _partial(self.manifest).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: row.get(k, "") for k in MANIFEST_FIELDS})
        summary = {"samples": len(kept), "skipped": dict(self.skipped),
                   "splits": dict(Counter(r["split"] for r in kept)), **self.attrs}
        _partial(self.summary).write_text(json.dumps(summary, indent=1), encoding="utf-8")
        self._move_into_place()
        return ChipResult(self.path, self.manifest, len(kept), dict(self.skipped))

    def _move_into_place(self) -> None:
        """The complete output replaces the older one: a Zarr store whole; .npz files one by one into an
        existing folder (which may hold other files), or the whole folder when there is none."""
        if self.sink is not None or not self.path.is_dir():
            remove(self.path)
            os.replace(self.staging, self.path)
        else:
            for sample in self.staging.iterdir():
                os.replace(sample, self.path / sample.name)
            self.staging.rmdir()
        os.replace(_partial(self.manifest), self.manifest)
        os.replace(_partial(self.summary), self.summary)

    def discard(self) -> None:
        """Remove what an unfinished job wrote; an older output and its manifest stay as they were."""
        for path in (self.staging, _partial(self.manifest), _partial(self.summary)):
            remove(path)


def describe_skipped(skipped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"


def read_manifest(path: str | Path) -> list[dict]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
