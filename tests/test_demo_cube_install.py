"""Installing the offline demo cube: the same seed gives the same bytes, a second call reuses the cube,
cancelling leaves nothing, and an outdated cube or a dead generation's leftovers are replaced.

The cube's contents against its ground truth are checked in ``test_demo_cube.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from demo_series import s2_item_dir

from cubescope.plugin.demo import GENERATOR_VERSION, DemoCubeCanceled, default_demo_dir, ensure_demo_cube
from cubescope.plugin.demo import sentinel2 as s2w
from cubescope.plugin.demo.grids import TILE_A, TILE_B
from cubescope.plugin.demo.raster_io import Georef, write_cog
from cubescope.plugin.demo.scenes import render_s2, tile_truth
from cubescope.plugin.demo.schedule import s2_acquisitions, sun_position
from cubescope.plugin.demo.sky import make_scenarios


def test_same_seed_gives_the_same_bytes(demo_cube, truth, tmp_path):
    """Regenerate one cloudy item of the cube on its own and compare the files byte for byte."""
    acqs = s2_acquisitions()
    index = next(i for i, r in enumerate(truth["s2"]["items"]["35TKL"]) if 0 < r["cloud_cover"] < 60)
    sun = [sun_position(a.datetime) for a in acqs]
    kinds = [a["sky"] for a in truth["s2"]["acquisitions"]]
    keep = {0, *(truth["s2"]["datetimes"].index(truth["change"][k])
                 for k in ("last_acquisition_before", "first_acquisition_after"))}
    scenarios = make_scenarios(truth["seed"], [a.datetime for a in acqs], sun, keep)
    assert [s.kind for s in scenarios] == kinds
    scene = render_s2(tile_truth(TILE_B), acqs[index], scenarios[index])
    s2w.write_item(tmp_path / "item", TILE_B, acqs[index], scene, sun[index])
    original = s2_item_dir(demo_cube, truth, "35TKL", index)
    for name in ("red.tif", "scl.tif", "thumbnail.png", f"{truth['s2']['items']['35TKL'][index]['id']}.json"):
        assert (tmp_path / "item" / name).read_bytes() == (original / name).read_bytes(), name
    other = make_scenarios(truth["seed"] + 1, [a.datetime for a in acqs], sun, keep)
    assert [s.noise_seed for s in other] != [s.noise_seed for s in scenarios]


def test_cog_bytes_are_reproducible(tmp_path):
    data = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256) % 3000 + 1
    for name in ("a.tif", "b.tif"):
        write_cog(tmp_path / name, data, Georef(TILE_A.geotransform(10), TILE_A.epsg), nodata=0)
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()


def test_second_call_reuses_without_rewriting(demo_cube):
    """A regeneration would rename a new cube into place: every file would be new (its mtime too)."""
    files = [demo_cube.root / "manifest.json", demo_cube.catalog, demo_cube.zarr / ".zmetadata"]
    before = [p.stat().st_mtime_ns for p in files]
    again = ensure_demo_cube(demo_cube.root)
    assert again == demo_cube
    assert [p.stat().st_mtime_ns for p in files] == before


def test_cancel_leaves_nothing_behind(tmp_path):
    calls = []

    def cancel_soon() -> bool:
        calls.append(1)
        return len(calls) > 20

    fractions: list[float] = []
    with pytest.raises(DemoCubeCanceled):
        ensure_demo_cube(tmp_path / "cube", progress=fractions.append, is_canceled=cancel_soon)
    assert list(tmp_path.iterdir()) == []
    assert fractions and 0.0 <= max(fractions) < 0.5


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CUBESCOPE_DEMO_DIR", str(tmp_path / "here"))
    assert default_demo_dir() == tmp_path / "here"
    monkeypatch.delenv("CUBESCOPE_DEMO_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name != "nt":
        assert default_demo_dir() == tmp_path / "xdg" / "cubescope" / f"demo-cube-{GENERATOR_VERSION}"


def test_an_outdated_cube_and_a_dead_partial_are_replaced(demo_cube, tmp_path):
    """A cube from an older generator (with a file the new one does not write) and the partial folder of a
    generation whose process died: the next call generates the cube afresh, whole, and removes both."""
    root = tmp_path / "cube"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"generator_version": "0.0", "seed": 1, "complete": True}))
    (root / "old-file").write_text("from an older generator")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    (tmp_path / f"cube.partial-{int(finished.stdout)}").mkdir()  # left by a process that died

    cube = ensure_demo_cube(root)
    assert not (root / "old-file").exists()
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["complete"]
    assert cube.catalog.read_bytes() == demo_cube.catalog.read_bytes()  # the same seed, the same cube
    assert (cube.zarr / ".zmetadata").read_bytes() == (demo_cube.zarr / ".zmetadata").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["cube"]
