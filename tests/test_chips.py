"""Training chips: shapes, labels, spatial-block splits, masked-pixel skipping, forecasting windows."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray
from chip_requests import BANDS, SUMMER, TILE_A, WEST
from rasterio.windows import from_bounds

from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL
from cubescope.plugin.products.chips import build as ch
from cubescope.plugin.products.chips.splits import SPLITS, BlockSplitter


@pytest.fixture(scope="module")
def grid_chips(demo_cube, tmp_path_factory):
    request = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=BANDS, start=SUMMER[0], end=SUMMER[1],
        output=str(tmp_path_factory.mktemp("chips") / "chips.zarr"), extent=WEST, extent_crs="EPSG:32634",
        chip_size=64, stride=32, mode=ch.DATES, label_collection="demo-landcover", label_band="data",
        block_size=960, seed=7, max_masked=0.2)
    result = ch.run(request)
    return request, result, xarray.open_zarr(result.output), ch.read_manifest(result.manifest)


def _item_dir(demo_cube, collection: str, tile: str, day: str):
    root = demo_cube.collections[collection].parent
    return next(p for p in root.iterdir() if p.is_dir() and tile in p.name and day.replace("-", "") in p.name)


def _bounds(row: dict) -> tuple[float, ...]:
    return tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))


def test_declared_shapes_and_manifest(grid_chips):
    _, result, ds, rows = grid_chips
    kept = [r for r in rows if r["status"] == "kept"]
    assert result.samples == len(kept) == ds.sizes["sample"] > 0
    assert ds["image"].dims == ("sample", "band", "y", "x") and ds["image"].shape[1:] == (4, 64, 64)
    assert ds["label"].shape == (len(kept), 64, 64) and list(ds["band"].values) == list(BANDS)
    assert list(ds["sample"].values) == [r["id"] for r in kept]
    assert list(ds["split"].values) == [r["split"] for r in kept]
    assert all(r["crs"] == "EPSG:32634" and r["dates"] for r in rows)
    assert all(float(r["xmax"]) - float(r["xmin"]) == 640 for r in rows)
    store = Path(result.output)
    assert (store / ".zgroup").is_file() and (store / ".zmetadata").is_file(), "Zarr v2, under zarr 3 too"
    assert not list(store.rglob("zarr.json"))


def test_images_and_labels_equal_the_rasters(grid_chips, demo_cube):
    _, _, ds, rows = grid_chips
    kept = [r for r in rows if r["status"] == "kept"]
    landcover = _item_dir(demo_cube, "demo-landcover", "34TGR", "") / "data.tif"
    for row in kept[::3]:
        n = int(row["index"])
        with rasterio.open(landcover) as src:
            expected = src.read(1, window=from_bounds(*_bounds(row), src.transform))
        np.testing.assert_array_equal(ds["label"].values[n], expected.astype(np.float32))
        with rasterio.open(_item_dir(demo_cube, "demo-s2-l2a", "34TGR", row["dates"]) / "red.tif") as src:
            raw = src.read(1, window=from_bounds(*_bounds(row), src.transform)).astype(np.float32)
        red = np.where(raw == 0, np.nan, raw * np.float32(0.0001) - np.float32(0.1)).astype(np.float32)
        np.testing.assert_allclose(ds["image"].values[n, 2], red, rtol=1e-6)


def test_no_chip_crosses_a_split_boundary(grid_chips):
    request, result, _, rows = grid_chips
    splitter = BlockSplitter(request.block_size, request.seed)
    kept = [r for r in rows if r["status"] == "kept"]
    assert {r["split"] for r in kept} <= set(SPLITS) and len({r["split"] for r in kept}) >= 2
    for row in kept:
        assert {splitter.block_split(*b) for b in splitter.blocks_touched(_bounds(row))} == {row["split"]}
    for a, b in itertools.combinations(kept, 2):
        if a["split"] != b["split"]:
            assert not ch.footprint_overlap(_bounds(a), _bounds(b))
            assert not set(splitter.blocks_touched(_bounds(a))) & set(splitter.blocks_touched(_bounds(b)))
    crossing = [r for r in rows if r["reason"] == ch.CROSSES]
    assert crossing and result.skipped[ch.CROSSES] == len(crossing)
    assert all(splitter.split_of(_bounds(r)) is None for r in crossing)


def test_buffer_keeps_splits_apart():
    splitter = BlockSplitter(1000.0, seed=3, buffer=150.0)
    boxes = [(x, y, x + 200, y + 200) for x in range(0, 4000, 100) for y in range(0, 4000, 100)]
    kept = [(b, splitter.split_of(b)) for b in boxes if splitter.split_of(b)]
    for (a, sa), (b, sb) in itertools.combinations(kept, 2):
        if sa != sb:
            gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
            assert gap >= 150.0


def test_masked_skipping_is_counted(grid_chips, demo_cube):
    _, result, _, rows = grid_chips
    summary = json.loads(result.manifest.with_suffix(".json").read_text())
    counted = Counter(r["reason"] for r in rows if r["status"] == "skipped")
    assert summary["skipped"] == dict(counted) == result.skipped
    assert counted[ch.MASKED] > 0
    for row in rows:
        if row["reason"] == ch.CROSSES:
            continue
        with rasterio.open(_item_dir(demo_cube, "demo-s2-l2a", "34TGR", row["dates"]) / "scl.tif") as src:
            scl = src.read(1, window=from_bounds(*_bounds(row), src.transform))
        masked = 1 - SENTINEL2_SCL.is_clear(scl.repeat(2, 0).repeat(2, 1)).mean()
        assert (row["reason"] == ch.MASKED) == (masked > 0.2), row["id"]
        assert float(row["masked_fraction"]) == pytest.approx(masked, abs=1e-6)


def test_forecast_windows_as_npz(demo_cube, tmp_path):
    request = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=BANDS, start=datetime(2023, 5, 1),
        end=datetime(2023, 9, 30), output=str(tmp_path / "windows"),
        points=(("p1", 732960.0, 5043520.0), ("p2", 733120.0, 5042240.0)), points_crs="EPSG:32634",
        chip_size=32, mode=ch.FORECAST, context=3, target=2, shift=2, max_masked=1.0, block_size=100000,
        format=ch.NPZ, label_polygons=(({"type": "Polygon", "coordinates": [[
            [732800, 5043360], [732960, 5043360], [732960, 5043680], [732800, 5043680], [732800, 5043360]]]}, 5.0),),
        label_polygons_crs="EPSG:32634")
    result = ch.run(request)
    rows = [r for r in ch.read_manifest(result.manifest) if r["status"] == "kept"]
    assert result.samples == len(rows) > 2
    for chip in ("p1", "p2"):
        mine = [r for r in rows if r["chip"] == chip]
        starts = [int(r["id"].rsplit("_w", 1)[1]) for r in mine]
        assert starts == list(range(0, 2 * len(mine), 2))
        for row in mine:
            context, target = row["context_dates"].split(), row["target_dates"].split()
            assert len(context) == 3 and len(target) == 2 and context[-1] < target[0]
            with np.load(tmp_path / "windows" / row["file"]) as sample:
                assert sample["context"].shape == (3, 4, 32, 32) and sample["target"].shape == (2, 4, 32, 32)
                label = sample["label"]
        if chip == "p1":  # the polygon covers the chip's west half
            assert (label[:, :16] == 5).all() and (label[:, 16:] == 0).all()
        else:
            assert (label == 0).all()
    first, second = (r for r in rows if r["chip"] == "p1" and r["id"].endswith(("_w0", "_w2")))
    assert first["context_dates"].split()[2] == second["context_dates"].split()[0]


def test_requests_are_checked():
    with pytest.raises(ch.ChipError, match="points or an extent"):
        ch.ChipRequest(source="c.json", collection="c", bands=BANDS, start=SUMMER[0], end=SUMMER[1], output="o")
    with pytest.raises(ch.ChipError, match="context"):
        ch.ChipRequest(source="c.json", collection="c", bands=BANDS, start=SUMMER[0], end=SUMMER[1], output="o",
                       extent=TILE_A, mode=ch.FORECAST)


def test_composite_is_the_median_of_clear_values(demo_cube, tmp_path):
    request = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=("red",), start=SUMMER[0], end=SUMMER[1],
        output=str(tmp_path / "composite.zarr"), points=(("a", 732800.0, 5043200.0),), points_crs="EPSG:32634",
        chip_size=32, mode=ch.COMPOSITE, max_masked=1.0, block_size=100000)
    result = ch.run(request)
    row = ch.read_manifest(result.manifest)[0]
    assert row["status"] == "kept" and row["dates"] == "2023-06-13/2023-08-22"
    root = demo_cube.collections["demo-s2-l2a"].parent
    stack = []
    for item in sorted(root.glob("*T34TGR/*.json")):
        day = json.loads(item.read_text())["properties"]["datetime"][:10]
        if not "2023-06-01" <= day <= "2023-08-31":
            continue
        with rasterio.open(item.parent / "red.tif") as src:
            raw = src.read(1, window=from_bounds(*_bounds(row), src.transform)).astype(np.float64)
        with rasterio.open(item.parent / "scl.tif") as src:
            scl = src.read(1, window=from_bounds(*_bounds(row), src.transform)).repeat(2, 0).repeat(2, 1)
        clear = SENTINEL2_SCL.is_clear(scl) & (raw > 0)
        stack.append(np.where(clear, (raw * 0.0001 - 0.1).astype(np.float32), np.nan))
    image = xarray.open_zarr(result.output)["image"].values[0, 0]
    np.testing.assert_allclose(image, np.nanmedian(np.stack(stack), axis=0), rtol=1e-6)


def test_qgis_process_chips(demo_cube, tmp_path):
    from qgis_desktop import qgis_process

    home, out = tmp_path / "home", tmp_path / "chips.zarr"
    assert qgis_process(home, "plugins", "enable", "cubescope").returncode == 0
    run = qgis_process(
        home, "--json", "run", "cubescope:chips", "--", f"SOURCE={demo_cube.catalog}", "COLLECTION=demo-s2-l2a",
        "BANDS=blue,green,red,nir", "EXTENT=732320,733600,5041600,5044160 [EPSG:32634]", "CHIP_SIZE=64",
        "START=2023-06-01", "END=2023-08-31", "MODE=1", "LABEL_COLLECTION=demo-landcover", "LABEL_BAND=data",
        "MAX_MASKED=20", "BLOCK_SIZE=5120", "SEED=7", "FORMAT=0", f"OUTPUT={out}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout)["results"]
    rows = ch.read_manifest(results["MANIFEST"])
    kept = [r for r in rows if r["status"] == "kept"]
    assert results["SAMPLES"] == len(kept) > 0 and any(r["reason"] == ch.MASKED for r in rows)
    assert xarray.open_zarr(out)["image"].shape == (len(kept), 4, 64, 64)


def test_algorithm_in_process(qgis_app, demo_cube, tmp_path):
    """Points from a layer and the npz format through the algorithm in this process."""
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsPointXY,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsVectorLayer,
    )

    from cubescope.plugin.processing.chips_algorithm import ChipsAlgorithm

    layer = QgsVectorLayer("Point?crs=EPSG:32634&field=name:string", "points", "memory")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(732800.0, 5043200.0)))
    feature.setAttribute("name", "p1")
    layer.dataProvider().addFeatures([feature])
    out = tmp_path / "npz"
    results, ok = ChipsAlgorithm().create().run({
        "SOURCE": str(demo_cube.catalog), "COLLECTION": "demo-s2-l2a", "BANDS": "red,nir", "POINTS": layer,
        "ID_FIELD": "name", "CHIP_SIZE": 16, "START": "2023-06-01", "END": "2023-08-31", "MODE": 0,
        "MAX_MASKED": 100, "BLOCK_SIZE": 100000, "FORMAT": 1, "OUTPUT": str(out)},
        QgsProcessingContext(), QgsProcessingFeedback())
    assert ok and results["SAMPLES"] == 1
    with np.load(out / "p1.npz") as sample:
        assert sample["image"].shape == (2, 16, 16)


def test_algorithm_refuses_a_class_that_is_not_a_number(qgis_app, demo_cube, tmp_path):
    """Label polygons go through the shared vector_features; its ValueError is the algorithm's error."""
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsPointXY,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsRectangle,
        QgsVectorLayer,
    )

    from cubescope.plugin.processing.chips_algorithm import ChipsAlgorithm

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.errors: list[str] = []

        def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803 (QGIS names)
            self.errors.append(error)

    points = QgsVectorLayer("Point?crs=EPSG:32634", "points", "memory")
    point = QgsFeature(points.fields())
    point.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(732800.0, 5043200.0)))
    points.dataProvider().addFeatures([point])
    polygons = QgsVectorLayer("Polygon?crs=EPSG:32634&field=kind:string", "labels", "memory")
    polygon = QgsFeature(polygons.fields())
    polygon.setGeometry(QgsGeometry.fromRect(QgsRectangle(732700.0, 5043100.0, 732900.0, 5043300.0)))
    polygon.setAttribute("kind", "forest")
    polygons.dataProvider().addFeatures([polygon])
    feedback = Feedback()
    _, ok = ChipsAlgorithm().create().run({
        "SOURCE": str(demo_cube.catalog), "COLLECTION": "demo-s2-l2a", "BANDS": "red", "POINTS": points,
        "CHIP_SIZE": 16, "START": "2023-06-01", "END": "2023-08-31", "LABEL_POLYGONS": polygons,
        "LABEL_FIELD": "kind", "OUTPUT": str(tmp_path / "chips.zarr")}, QgsProcessingContext(), feedback)
    assert not ok and any("class 'forest' of field 'kind' is not a number" in e for e in feedback.errors)
    assert list(tmp_path.iterdir()) == []


def _chips(request: ch.ChipRequest, logs: list[str] | None = None) -> tuple[list[dict], dict, dict[str, np.ndarray]]:
    """A finished job's manifest rows, summary and every array it wrote (Zarr store or .npz files)."""
    result = ch.run(request, log=None if logs is None else logs.append)
    rows = ch.read_manifest(result.manifest)
    summary = json.loads(result.manifest.with_suffix(".json").read_text())
    if request.format == ch.ZARR:
        ds = xarray.open_zarr(result.output)
        arrays = {name: ds[name].values for name in ds.variables}
    else:
        arrays = {}
        for row in rows:
            if row["file"]:
                with np.load(result.output / row["file"]) as sample:
                    arrays.update({f"{row['id']}/{key}": sample[key] for key in sample.files})
    return rows, summary, arrays


def _assert_same(a: tuple, b: tuple) -> None:
    rows_a, summary_a, arrays_a = a
    rows_b, summary_b, arrays_b = b
    assert rows_a == rows_b and summary_a == summary_b
    assert sorted(arrays_a) == sorted(arrays_b)
    for name, values in arrays_a.items():
        np.testing.assert_array_equal(values, arrays_b[name], err_msg=name)


def test_the_dask_cluster_cuts_the_same_chips(demo_cube, tmp_path, dask_cluster_without_cubescope):
    """Read at once or chip by chip, locally or by workers that cannot import Cubescope: the same samples,
    arrays and manifest. Chip by chip, each chip's reads, masks and composite are tasks on the cluster."""
    from distributed import Client, get_task_stream

    cluster = dask_cluster_without_cubescope
    dates = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=BANDS, start=SUMMER[0], end=SUMMER[1],
        output=str(tmp_path / "local.zarr"), extent=WEST, extent_crs="EPSG:32634", chip_size=64, stride=32,
        mode=ch.DATES, label_collection="demo-landcover", label_band="data", block_size=960, seed=7, max_masked=0.2)
    reference = _chips(dates)
    assert reference[1]["samples"] > 5 and reference[1]["skipped"][ch.MASKED] > 0
    assert {"image", "mask", "label"} <= set(reference[2])
    logs: list[str] = []
    with Client(cluster, set_as_default=False) as client, get_task_stream(client) as stream:
        _assert_same(reference, _chips(replace(dates, output=str(tmp_path / "remote.zarr"), dask_scheduler=cluster,
                                               read_at_once=0), logs))
    computed = {row["chip"] for row in reference[0] if row["reason"] not in (ch.CROSSES, ch.OUTSIDE)}
    assert sum(str(task["key"]).startswith("cubescope-chip-") for task in stream.data) == len(computed) >= 4
    _assert_same(reference, _chips(replace(dates, output=str(tmp_path / "remote-at-once.zarr"),
                                           dask_scheduler=cluster), logs))
    assert [line for line in logs if f"computed on Dask cluster {cluster}" in line][1].endswith("read at once")
    _assert_same(reference, _chips(replace(dates, output=str(tmp_path / "local-by-chip.zarr"), read_at_once=0)))

    composite = ch.ChipRequest(
        source=str(demo_cube.catalog), collection="demo-s2-l2a", bands=("red", "nir"), start=SUMMER[0],
        end=SUMMER[1], output=str(tmp_path / "local-npz"), points=(("a", 732800.0, 5043200.0),
                                                                   ("b", 733120.0, 5042240.0)),
        points_crs="EPSG:32634", chip_size=32, mode=ch.COMPOSITE, max_masked=1.0, block_size=100000,
        format=ch.NPZ, read_at_once=0)
    local = _chips(composite)
    assert len(local[2]) == 2 * 4 and np.isfinite(local[2]["a/image"]).mean() > 0.9
    _assert_same(local, _chips(replace(composite, output=str(tmp_path / "remote-npz"), dask_scheduler=cluster)))


def test_algorithm_computes_on_the_scheduler_it_is_given(qgis_app, demo_cube, tmp_path, dask_cluster_without_cubescope):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from cubescope.plugin.processing.chips_algorithm import ChipsAlgorithm

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []

        def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS name)
            self.lines.append(info)

    feedback = Feedback()
    results, ok = ChipsAlgorithm().create().run({
        "SOURCE": str(demo_cube.catalog), "COLLECTION": "demo-s2-l2a", "BANDS": "red,nir",
        "EXTENT": "732320,732960,5043520,5044160 [EPSG:32634]", "CHIP_SIZE": 32, "START": "2023-06-01",
        "END": "2023-08-31", "MODE": 0, "MAX_MASKED": 100, "BLOCK_SIZE": 100000, "FORMAT": 0,
        "DASK_SCHEDULER": dask_cluster_without_cubescope, "OUTPUT": str(tmp_path / "chips.zarr")},
        QgsProcessingContext(), feedback)
    assert ok and results["SAMPLES"] == 4
    assert any(f"computed on Dask cluster {dask_cluster_without_cubescope}" in line for line in feedback.lines)
