"""Benchmark: a pixel's time series from 360 COGs behind a 25 ms-each-way link, and from a Zarr cube.

Side by side in one run: (a) the way QGIS profile tools read it, one file after another, each opened
afresh; (b) Cubescope's first click with a fresh reader; (c) a second click 100 m away with the same
reader; and, for information, (d) a third click 4 km away, where every file's tile is new but its
header is still open. Targets: (b) <= (a)/15 and (c) <= (b)/2; printed, not asserted (speed depends
on the machine).
What is asserted is that every way reads the same values, the ones the files were written with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from bench_data import BANDS, PIXEL, BenchData, expected_value, geotransform, pixel_lonlat, stac_items
from latency_proxy import LatencyProxy
from osgeo import gdal

from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.zarr_compat import read_only_store
from cubescope.plugin.cube.zarr_reader import ZarrReader

#: (row, col) of the first click, and of the second one 100 m east of it (inside the Zarr cube too).
FIRST = (300, 300)
SECOND = (FIRST[0], FIRST[1] + round(100 / PIXEL))
#: A third click 4 km away, in another 512-pixel tile of every file: what the kept headers alone save.
THIRD = (FIRST[0] + round(4000 / PIXEL), FIRST[1] + round(4000 / PIXEL))


def _requests(log: Path) -> int:
    """Requests nginx has answered so far (lines of its access log)."""
    if not log.is_file():
        return 0
    with log.open() as lines:
        return sum(1 for _ in lines)


def _timed(log: Path, work: Callable[[], Any]) -> tuple[Any, float, int]:
    before = _requests(log)
    start = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # nginx writes its log line after the response
    return result, elapsed, _requests(log) - before


def _baseline(urls: list[list[str]], row: int, col: int) -> dict[tuple[int, int], float]:
    """One file after another, each opened with plain GDAL settings and closed again (no reuse)."""
    values = {}
    gt = geotransform()
    x, y = gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]
    for d, per_band in enumerate(urls):
        for b, url in enumerate(per_band):
            dataset = gdal.Open(f"/vsicurl/{url}")
            assert dataset is not None, gdal.GetLastErrorMsg()
            t = dataset.GetGeoTransform()
            c, r = int((x - t[0]) / t[1]), int((y - t[3]) / t[5])
            values[(d, b)] = float(dataset.GetRasterBand(1).ReadAsArray(c, r, 1, 1)[0, 0])
            dataset = None
    return values


def _series_values(series) -> dict[tuple[int, int], float]:
    return {(d, b): o.values[band] for d, o in enumerate(series.observations) for b, band in enumerate(BANDS)}


def _expected(dates: int, row: int, col: int) -> dict[tuple[int, int], float]:
    return {(d, b): float(expected_value(d, b, row, col)) for d in range(dates) for b in range(len(BANDS))}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def test_point_series_from_360_cogs(bench_data: BenchData, bench_nginx, slow_link: LatencyProxy):
    log = bench_nginx.tmp / "access.log"
    items = stac_items(bench_data, slow_link.url)
    urls = [[item["assets"][band]["href"] for band in BANDS] for item in items]
    n = len(bench_data.dates)

    gdal.VSICurlClearCache()
    baseline, t_a, r_a = _timed(log, lambda: _baseline(urls, *FIRST))
    assert baseline == _expected(n, *FIRST)

    gdal.VSICurlClearCache()
    reader = CogStackReader(items)
    try:
        first, t_b, r_b = _timed(log, lambda: read_series(reader, *pixel_lonlat(*FIRST), list(BANDS)))
        second, t_c, r_c = _timed(log, lambda: read_series(reader, *pixel_lonlat(*SECOND), list(BANDS)))
        third, t_d, r_d = _timed(log, lambda: read_series(reader, *pixel_lonlat(*THIRD), list(BANDS)))
    finally:
        reader.close()
    assert first.warnings == [] and len(first.observations) == n
    assert _series_values(first) == baseline, "Cubescope reads what one-file-at-a-time reads"
    assert _series_values(second) == _expected(n, *SECOND)
    assert _series_values(third) == _expected(n, *THIRD)

    print(f"\n\nPoint time series: {n} dates x {len(BANDS)} single-band COGs (2048 x 2048, deflate, 512-px tiles),"
          f" {slow_link.delay_s * 1000:.0f} ms each way")
    print(f"{'':50}{'seconds':>9}{'requests':>10}")
    print(f"{'(a) baseline: open each file in turn':50}{t_a:9.2f}{r_a:10d}")
    print(f"{'(b) Cubescope, first click (fresh reader)':50}{t_b:9.2f}{r_b:10d}")
    print(f"{'(c) Cubescope, second click 100 m away':50}{t_c:9.2f}{r_c:10d}")
    print(f"{'(d) Cubescope, third click 4 km away (new tiles)':50}{t_d:9.2f}{r_d:10d}")
    print(f"a/b = {t_a / t_b:6.1f}   target >= 15: {_verdict(t_b <= t_a / 15)}")
    print(f"b/c = {t_b / t_c:6.1f}   target >= 2:  {_verdict(t_c <= t_b / 2)}")


class _PlainHttpStore(Mapping):
    """What ``xarray.open_zarr(url)`` does through fsspec's HTTP store, minus its async batching:
    one GET per key, in turn (fsspec and aiohttp are not installed here)."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()

    def __getitem__(self, key: str) -> bytes:
        response = self.session.get(f"{self.url}/{key}", timeout=30)
        if response.status_code == 404:
            raise KeyError(key)
        response.raise_for_status()
        return response.content

    def __contains__(self, key: object) -> bool:
        try:
            self[str(key)]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError("listing keys over plain HTTP")

    def __len__(self) -> int:
        raise NotImplementedError("listing keys over plain HTTP")

    def getitems(self, keys: list[str]) -> dict[str, bytes]:
        return {key: value for key in keys if (value := self.get(key)) is not None}

    def listdir(self, path: str = "") -> list[str]:
        raise NotImplementedError("listing keys over plain HTTP")


def test_point_series_from_a_zarr_cube_over_http(bench_data: BenchData, bench_nginx, slow_link: LatencyProxy):
    import xarray

    log = bench_nginx.tmp / "access.log"
    url = f"{slow_link.url}/cube.zarr"
    lon, lat = pixel_lonlat(*FIRST)
    n = len(bench_data.dates)

    def plain_xarray() -> dict[str, np.ndarray]:
        store = _PlainHttpStore(url)
        try:  # one key at a time, under zarr 2 (KVStore) and zarr 3 (an async store) alike
            dataset = xarray.open_zarr(read_only_store(store, max_workers=1), consolidated=True, chunks=None)
            x, y = geotransform()[0] + (FIRST[1] + 0.5) * PIXEL, geotransform()[3] - (FIRST[0] + 0.5) * PIXEL
            column = dataset[list(BANDS)].sel(x=x, y=y, method="nearest").load()
            return {band: column[band].values for band in BANDS}
        finally:
            store.session.close()

    reference, t_x, r_x = _timed(log, plain_xarray)

    def cubescope() -> tuple[Any, ZarrReader]:
        zarr = ZarrReader(url)
        return read_series(zarr, lon, lat, list(BANDS)), zarr

    (first, zarr), t_z, r_z = _timed(log, cubescope)
    try:
        second, t_z2, r_z2 = _timed(log, lambda: read_series(zarr, *pixel_lonlat(*SECOND), list(BANDS)))
    finally:
        zarr.close()
    for b, band in enumerate(BANDS):
        np.testing.assert_array_equal(first.values(band), reference[band])
        assert first.values(band) == [float(expected_value(d, b, *FIRST)) for d in range(n)]
        assert second.values(band) == [float(expected_value(d, b, *SECOND)) for d in range(n)]

    print(f"\n\nZarr point series over HTTP: {n} dates x {len(BANDS)} variables, chunks of 10 dates x 128 x 128,"
          f" {slow_link.delay_s * 1000:.0f} ms each way (both include opening the cube)")
    print(f"{'':52}{'seconds':>9}{'requests':>10}")
    print(f"{'xarray.open_zarr(...).sel(..., nearest).load()':52}{t_x:9.2f}{r_x:10d}")
    print(f"{'Cubescope ZarrReader + read_series':52}{t_z:9.2f}{r_z:10d}")
    print(f"{'Cubescope, second click 100 m away (same reader)':52}{t_z2:9.2f}{r_z2:10d}")
    print(f"xarray/Cubescope = {t_x / t_z:5.1f}   target: no slower: {_verdict(t_z <= t_x)}")
