"""The COG writer's own overviews: the levels GDAL's COG driver would make, with GDAL's AVERAGE values.

The writer averages each block into the overview levels as it arrives; the reference is the same
raster written in one piece and handed to GDAL's COG driver to compute its overviews itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from cubescope.plugin.analysis.engine.cog_writer import CogWriter, halve, overview_factors
from cubescope.plugin.analysis.engine.executor import Canceled
from cubescope.plugin.analysis.engine.grid import OutputGrid


def _raster(bands: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(0.3, 0.1, (bands, height, width)).astype(np.float32)
    data[rng.random(data.shape) < 0.2] = np.nan  # scattered no-data
    data[:, :37, :53] = np.nan  # and a corner without any data
    return data


def _gdal_reference(data: np.ndarray, grid: OutputGrid, path) -> gdal.Dataset:
    memory = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, data.shape[0], gdal.GDT_Float32)
    memory.SetGeoTransform(grid.geotransform)
    for number in range(data.shape[0]):
        band = memory.GetRasterBand(number + 1)
        band.SetNoDataValue(float("nan"))
        band.WriteArray(data[number])
    return gdal.GetDriverByName("COG").CreateCopy(str(path), memory, options=[
        "COMPRESS=DEFLATE", "BLOCKSIZE=256", "OVERVIEW_RESAMPLING=AVERAGE"])


@pytest.mark.parametrize(("height", "width", "chunk"), [(1024, 768, 256), (700, 900, 128), (300, 260, 64)])
def test_block_averaged_overviews_match_gdals_average(tmp_path, height, width, chunk):
    grid = OutputGrid("EPSG:32634", 10.0, (500000.0, 5000000.0, 500000.0 + 10 * width, 5000000.0 + 10 * height))
    data = _raster(2, height, width, seed=height)
    with CogWriter(tmp_path / "ours.tif", grid, ["a", "b"]) as writer:
        for row in range(0, height, chunk):
            for col in range(0, width, chunk):
                writer.write(data[:, row:row + chunk, col:col + chunk], row, col)
        assert writer.averages_overviews, "blocks on the overview grid: averaged as they come"
        writer.finish()
    ours = gdal.Open(str(tmp_path / "ours.tif"))
    theirs = _gdal_reference(data, grid, tmp_path / "theirs.tif")
    assert ours.GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    np.testing.assert_array_equal(ours.ReadAsArray(), data)
    band, reference = ours.GetRasterBand(2), theirs.GetRasterBand(2)
    assert band.GetOverviewCount() == reference.GetOverviewCount() == len(overview_factors(width, height, 256))
    for level in range(band.GetOverviewCount()):
        mine, gdals = band.GetOverview(level).ReadAsArray(), reference.GetOverview(level).ReadAsArray()
        assert mine.shape == gdals.shape
        assert np.array_equal(np.isnan(mine), np.isnan(gdals)), f"no-data differs at level {level}"
        np.testing.assert_allclose(mine, gdals, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_halve_is_the_mean_of_the_present_pixels_of_each_cell():
    block = np.array([[[1, 3, 5], [np.nan, 5, np.nan], [7, np.nan, 2]]], dtype=np.float32)
    assert np.array_equal(halve(block), np.array([[[3, 5], [7, 2]]], dtype=np.float32))
    assert np.isnan(halve(np.full((1, 2, 2), np.nan, dtype=np.float32))).all()


def test_blocks_off_the_overview_grid_fall_back_to_gdal(tmp_path):
    grid = OutputGrid("EPSG:32634", 10.0, (0.0, 0.0, 6000.0, 6000.0))  # 600 px, overviews x2 and x4
    data = _raster(1, 600, 600, seed=3)
    with CogWriter(tmp_path / "odd.tif", grid, ["a"]) as writer:
        for row in range(0, 600, 150):  # 150 is not a multiple of 4
            writer.write(data[:, row:row + 150, :], row, 0)
        assert not writer.averages_overviews
        writer.finish()
    ours_dataset = gdal.Open(str(tmp_path / "odd.tif"))  # datasets held: a band outliving its dataset crashes
    reference_dataset = _gdal_reference(data, grid, tmp_path / "theirs.tif")
    ours, reference = ours_dataset.GetRasterBand(1), reference_dataset.GetRasterBand(1)
    assert ours.GetOverviewCount() == reference.GetOverviewCount() == 2
    for level in range(reference.GetOverviewCount()):
        np.testing.assert_allclose(ours.GetOverview(level).ReadAsArray(), reference.GetOverview(level).ReadAsArray(),
                                   rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("resampling", ["AVERAGE", "NEAREST"])  # overviews copied, or made by GDAL in a .ovr.tmp
def test_a_cancel_during_the_copy_stops_it_and_removes_every_temporary_file(tmp_path, resampling):
    grid = OutputGrid("EPSG:32634", 10.0, (0.0, 0.0, 10240.0, 10240.0))
    data = _raster(2, 1024, 1024, seed=5)
    fractions: list[float] = []
    with CogWriter(tmp_path / "x.tif", grid, ["a", "b"], overview_resampling=resampling) as writer:
        for row in range(0, 1024, 256):
            writer.write(data[:, row:row + 256, :], row, 0)
        with pytest.raises(Canceled):
            writer.finish(fractions.append, lambda: bool(fractions) and fractions[-1] > 0.3)
    assert 0.3 < fractions[-1] < 1.0, "stopped midway"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_results_are_written_losslessly_with_the_horizontal_predictor_and_come_out_smaller(tmp_path):
    """Reflectance as a composite holds it (DNs x 1e-4 - 0.1 in float32, a smooth field): predictor 2
    differences the 32-bit words, which must give back every value and NaN exactly, in fewer bytes
    than the same COG without a predictor."""
    height = width = 512
    y, x = np.mgrid[0:height, 0:width]
    dn = np.round(1500 + 600 * np.sin(x / 37.0) * np.cos(y / 53.0) + 0.02 * (x + y) ** 1.5)
    data = (dn * 1e-4 - 0.1).astype(np.float32)[None]
    data[0, 100:140, 200:260] = np.nan
    grid = OutputGrid("EPSG:32634", 10.0, (500000.0, 5000000.0, 500000.0 + 10 * width, 5000000.0 + 10 * height))
    with CogWriter(tmp_path / "ours.tif", grid, ["red"]) as writer:
        for row in range(0, height, 256):
            for col in range(0, width, 256):
                writer.write(data[:, row:row + 256, col:col + 256], row, col)
        writer.finish()
    ours = gdal.Open(str(tmp_path / "ours.tif"))
    assert ours.GetMetadata("IMAGE_STRUCTURE").get("PREDICTOR") == "2"
    back = ours.ReadAsArray()
    assert np.array_equal(np.isnan(back), np.isnan(data[0]))
    assert back[~np.isnan(back)].tobytes() == data[0][~np.isnan(data[0])].tobytes()
    _gdal_reference(data, grid, tmp_path / "plain.tif")  # not kept: closed, its size is final
    assert (tmp_path / "ours.tif").stat().st_size < 0.9 * (tmp_path / "plain.tif").stat().st_size
