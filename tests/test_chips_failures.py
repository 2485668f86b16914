"""Training chips when things go wrong: an unreachable Dask scheduler, a run cancelled midway, a COG that
fails partway through a read. Nothing half-written is left, an older output stays as it was, and no
file stays open."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest
from chip_requests import BANDS, SUMMER, WEST
from cut_catalog import catalog_with_cut_red, open_files_under

from cubescope.plugin.products.chips import build as ch


def test_an_unreachable_scheduler_fails_fast_and_names_it(demo_cube, tmp_path, unused_port):
    from cubescope.plugin.analysis.engine.executor import SchedulerUnreachable

    request = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=BANDS, start=SUMMER[0], end=SUMMER[1],
        output=str(tmp_path / "chips.zarr"), extent=WEST, extent_crs="EPSG:32634", chip_size=64,
        dask_scheduler=f"127.0.0.1:{unused_port}", scheduler_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match=f"Dask scheduler at tcp://127.0.0.1:{unused_port}"):
        ch.run(request)
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


def _files(folder) -> dict[str, bytes]:
    """Every file below ``folder`` (relative name -> contents)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _many_chips(demo_cube, output, fmt: str) -> ch.ChipRequest:
    """105 chips of 32 px over WEST (every date of the summer), read chip by chip: several batches."""
    return ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=("red", "nir"), start=SUMMER[0],
        end=SUMMER[1], output=str(output), extent=WEST, extent_crs="EPSG:32634", chip_size=32, stride=16,
        mode=ch.DATES, max_masked=1.0, block_size=100000, format=fmt, read_at_once=0)


@pytest.mark.parametrize(("fmt", "name"), [(ch.ZARR, "chips.zarr"), (ch.NPZ, "chips")])
def test_cancelling_midway_leaves_the_older_output_as_it_was(demo_cube, tmp_path, fmt, name):
    older = ch.run(ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=("red",), start=SUMMER[0], end=SUMMER[1],
        output=str(tmp_path / name), points=(("old", 732800.0, 5043200.0),), points_crs="EPSG:32634",
        chip_size=16, mode=ch.COMPOSITE, max_masked=1.0, block_size=100000, format=fmt))
    assert older.samples == 1
    before = _files(tmp_path)
    written: list[float] = []
    seen: list[list[str]] = []

    def is_canceled() -> bool:  # true once the first batch of chips is written
        if written:
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
        return bool(written)

    with pytest.raises(InterruptedError):
        ch.run(_many_chips(demo_cube, tmp_path / name, fmt), progress=written.append, is_canceled=is_canceled)
    assert seen and f"{name}.partial" in seen[0] and 0 < written[-1] < 100  # it was cancelled midway
    assert _files(tmp_path) == before


def test_a_failure_midway_leaves_nothing_when_asked_to_stop_at_the_first_bad_input(demo_cube, tmp_path):
    """A real read failure: every red COG of a copy of the catalog is cut where its lower row of tiles
    starts, so the chips over the upper rows are written before one over a lower row fails."""
    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    (tmp_path / "out").mkdir()
    written: list[float] = []
    request = replace(_many_chips(demo_cube, tmp_path / "out" / "chips.zarr", ch.ZARR), source=str(catalog),
                      fail_on_bad_input=True)
    with pytest.raises(OSError, match=rf"Stopped at the first input .*{tmp_path}/stac/demo-s2-l2a/.*/red\.tif: "
                                      r"truncated or corrupt"):
        ch.run(request, progress=written.append)
    assert written and 0 < written[-1] < 100  # some chips were written before the failure
    assert _files(tmp_path / "out") == {}
    # Every thread closed the files it opened before the run returned; left open in threads that a
    # traceback keeps alive, they were closed later by the garbage collector, and GDAL crashed.
    assert open_files_under(tmp_path / "stac") == []


def test_cut_cogs_are_left_out_reported_and_counted_in_the_summary(demo_cube, tmp_path):
    """By default the same cut COGs are left out: the chips are written, the log names each file with
    its cause, and the summary beside the manifest counts and lists them."""
    catalog = catalog_with_cut_red(demo_cube, tmp_path / "stac")
    said: list[str] = []
    request = replace(_many_chips(demo_cube, tmp_path / "chips.zarr", ch.ZARR), source=str(catalog))
    result = ch.run(request, log=said.append)
    summary = json.loads(result.manifest.with_suffix(".json").read_text())
    left_out = summary["cubescope_skipped"].splitlines()
    assert int(summary["cubescope_skipped_inputs"]) == len(left_out) > 0 and result.samples > 0
    for line in left_out:
        assert re.fullmatch(rf"{tmp_path}/stac/demo-s2-l2a/\w+/red\.tif: truncated or corrupt.*", line), line
        assert f"Warning:   {line}" in said
    assert open_files_under(tmp_path / "stac") == []
