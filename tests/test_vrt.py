"""Composite VRTs from separate band COGs (local, nginx, S3) and stretches measured on the data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cubescope.plugin.cube.layer_plan import TRUE_COLOUR, plan_layers
from cubescope.plugin.cube.vrt import colour_stretch, percentile_stretch, stack_vrt
from cubescope.plugin.stac.gdal_env import GdalOpenError, opened, read_array
from cubescope.plugin.stac.hrefs import GdalSource, gdal_source
from cubescope.plugin.stac.s3_options import S3Options
from cubescope.plugin.stac.sources import Source, SourceKind

RGB = ("red", "green", "blue")
SWATH_EDGE_ITEM = "S2B_MSIL2A_20230509T092031_R093_T35TKL"  # 37 % no-data on the swath edge


def item_dir(demo_cube, name: str | None = None, collection: str = "demo-s2-l2a") -> Path:
    folder = demo_cube.collections[collection].parent
    return folder / name if name else sorted(p for p in folder.iterdir() if p.is_dir())[0]


def read_all(path: str, config: dict[str, str] | None = None) -> tuple[list[np.ndarray], tuple, list[str]]:
    with opened(GdalSource(path, config or {}, path)) as dataset:
        bands = [dataset.GetRasterBand(i + 1) for i in range(dataset.RasterCount)]
        arrays = [read_array(band, path) for band in bands]
        return arrays, dataset.GetGeoTransform(), [band.GetDescription() for band in bands]


def check_true_colour(vrt: str, local: Path, config: dict[str, str] | None = None) -> None:
    arrays, transform, names = read_all(vrt, config)
    assert names == list(RGB)
    for array, band in zip(arrays, RGB):
        expected, expected_transform, _ = read_all(str(local / f"{band}.tif"))
        np.testing.assert_array_equal(array, expected[0])
        assert transform == pytest.approx(expected_transform)


def test_true_colour_from_local_cogs(demo_cube, tmp_path):
    folder = item_dir(demo_cube)
    sources = [gdal_source(f"./{band}.tif", base=str(folder / f"{folder.name}.json")) for band in RGB]
    vrt = stack_vrt(sources, str(tmp_path / "rgb.vrt"), list(RGB))
    check_true_colour(vrt, folder)
    text = Path(vrt).read_text()
    assert str(folder / "red.tif") in text  # absolute: the VRT can live anywhere


def test_true_colour_over_http_stays_openable(demo_cube, nginx_server, tmp_path):
    folder = item_dir(demo_cube)
    item_url = f"{nginx_server.url}/{folder.relative_to(demo_cube.root).as_posix()}/{folder.name}.json"
    sources = [gdal_source(f"./{band}.tif", base=item_url) for band in RGB]
    vrt = stack_vrt(sources, str(tmp_path / "rgb.vrt"), list(RGB))
    assert f"/vsicurl/{nginx_server.url}/" in Path(vrt).read_text()
    check_true_colour(vrt, folder, sources[0].config)


def test_true_colour_from_s3_applies_the_options_while_building(demo_cube, s3_server, tmp_path):
    folder = item_dir(demo_cube)
    options = S3Options(endpoint=s3_server.endpoint, region=s3_server.region, https=False, virtual_hosting=False)
    credentials = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    prefix = folder.relative_to(demo_cube.root).as_posix()
    sources = [gdal_source(f"s3://{s3_server.bucket}/{prefix}/{band}.tif", s3=options, credentials=credentials,
                           options={"GDAL_PAM_ENABLED": "NO"}) for band in RGB]
    vrt = stack_vrt(sources, str(tmp_path / "rgb.vrt"), list(RGB))
    assert gdal.GetThreadLocalConfigOption("AWS_S3_ENDPOINT", None) is None  # restored after building
    check_true_colour(vrt, folder, sources[0].config)


def test_mixed_resolutions_use_the_finest_grid(demo_cube, tmp_path):
    folder = item_dir(demo_cube)
    sources = [gdal_source(str(folder / f"{band}.tif")) for band in ("swir16", "nir", "red")]
    arrays, transform, names = read_all(stack_vrt(sources, str(tmp_path / "false.vrt"), ["swir16", "nir", "red"]))
    assert names == ["swir16", "nir", "red"] and transform[1] == 10.0 and arrays[0].shape == (256, 256)
    swir = read_all(str(folder / "swir16.tif"))[0][0]
    np.testing.assert_array_equal(arrays[0], np.repeat(np.repeat(swir, 2, axis=0), 2, axis=1))  # nearest
    np.testing.assert_array_equal(arrays[1], read_all(str(folder / "nir.tif"))[0][0])


def test_backscatter_in_decibels(demo_cube, tmp_path):
    folder = item_dir(demo_cube, collection="demo-s1-rtc")
    linear = read_all(str(folder / "vv.tif"))[0][0]
    vrt = stack_vrt([gdal_source(str(folder / "vv.tif"))], str(tmp_path / "vv_db.vrt"), ["vv"], decibels=True)
    (decibels,), _, names = read_all(vrt)
    assert names == ["vv"] and decibels.dtype == np.float32
    finite = np.isfinite(linear) & (linear > 0)
    np.testing.assert_allclose(decibels[finite], 10 * np.log10(linear[finite]), rtol=1e-5)
    low, high = percentile_stretch(GdalSource(vrt, {}, vrt))
    assert -40 < low < high < 5


def test_bad_composites_are_refused(demo_cube, tmp_path):
    folder = item_dir(demo_cube)
    red = gdal_source(str(folder / "red.tif"))
    with pytest.raises(ValueError, match="2 bands but 1 band names"):
        stack_vrt([red, red], str(tmp_path / "x.vrt"), ["red"])
    missing = gdal_source(str(folder / "B99.tif"))
    with pytest.raises(GdalOpenError, match=re.escape(str(folder / "B99.tif"))):
        stack_vrt([red, missing], str(tmp_path / "y.vrt"), ["red", "b99"])
    clash = [GdalSource(red.path, {"GDAL_HTTP_HEADERS": f"A: {n}"}, f"b{n}") for n in (1, 2)]
    with pytest.raises(ValueError, match="GDAL_HTTP_HEADERS"):
        stack_vrt(clash, str(tmp_path / "z.vrt"), ["a", "b"])


def test_stretch_is_within_the_data_and_ignores_nodata(demo_cube, nginx_server):
    path = item_dir(demo_cube, SWATH_EDGE_ITEM) / "red.tif"
    data = read_all(str(path))[0][0].astype(float)
    valid = data[data != 0]
    assert valid.size < data.size * 0.7  # the swath edge is really there
    low, high = percentile_stretch(gdal_source(str(path)))
    assert valid.min() <= low < high <= valid.max()
    assert (low, high) == pytest.approx(tuple(np.percentile(valid, (2, 98))))
    assert low != pytest.approx(np.percentile(data, 2))  # zeros would have pulled it down
    url = f"{nginx_server.url}/{path.relative_to(demo_cube.root).as_posix()}"
    assert percentile_stretch(gdal_source(url)) == pytest.approx((low, high))
    assert percentile_stretch(gdal_source(str(path)), percentiles=(0, 100)) == (valid.min(), valid.max())
    with pytest.raises(ValueError, match="not a band 2"):
        percentile_stretch(gdal_source(str(path)), band=2)


def test_stretch_of_an_all_nodata_band_is_an_error(tmp_path):
    path = tmp_path / "empty.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 8, 8, 1, gdal.GDT_UInt16)
    dataset.GetRasterBand(1).SetNoDataValue(0)
    dataset.GetRasterBand(1).Fill(0)
    dataset = None
    with pytest.raises(ValueError, match="no valid pixels"):
        percentile_stretch(gdal_source(str(path)))


def test_stretch_reads_the_smallest_overview_of_at_least_256_pixels(shared_data):
    path = str(shared_data / "real" / "rasterio-cogeo.tif")
    with opened(GdalSource(path, {}, path)) as dataset:
        band = dataset.GetRasterBand(1)
        sizes = sorted(band.GetOverview(i).XSize for i in range(band.GetOverviewCount()))
        overview = next(band.GetOverview(i) for i in range(band.GetOverviewCount())
                        if band.GetOverview(i).XSize == 256)
        values = overview.ReadAsArray().astype(float)[overview.GetMaskBand().ReadAsArray() > 0]
    assert band.XSize == 1024 and 128 in sizes and 512 in sizes  # smaller and larger overviews exist
    assert percentile_stretch(gdal_source(path)) == pytest.approx(tuple(np.percentile(values, (2, 98))))


def test_colour_composites_share_one_stretch_from_the_darkest_low_to_the_brightest_high(demo_cube, catalog_items,
                                                                                        tmp_path):
    """A true-colour layer stretches its three bands alike (per-band ranges turned the demo's forest,
    darkest in every band, black); each band's range is measured on its valid pixels."""
    item = next(i for i in catalog_items if i["id"] == "S2A_MSIL2A_20230713T092029_R093_T34TGR")
    source = Source("demo", SourceKind.STATIC, str(demo_cube.catalog))
    (plan,), problems = plan_layers([item], list(TRUE_COLOUR), source, tmp_path)
    assert problems == [] and plan.assets == TRUE_COLOUR
    ranges = []
    for band in TRUE_COLOUR:
        values = read_all(item["assets"][band]["href"])[0][0]
        ranges.append(np.percentile(values[values != 0], (2, 98)))
    common = (min(low for low, _ in ranges), max(high for _, high in ranges))
    assert [value for pair in plan.stretch for value in pair] == pytest.approx(list(common) * 3)
    assert min(high for _, high in ranges) < common[1]  # the bands' own ranges differ: one range is a choice
    (single,), _ = plan_layers([item], ["red"], source, tmp_path)
    assert list(single.stretch[0]) == pytest.approx(list(ranges[0]))  # a single band keeps its own
    assert colour_stretch([(1, 5), (0, 3), (2, 9)]) == ((0, 9), (0, 9), (0, 9)) and colour_stretch([]) == ()
