"""Pixel time series on bad input and failing servers: clear messages, gaps named, values kept."""

from __future__ import annotations

import copy
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from broken_cogs import FOREST, catalog_with_broken_reds
from demo_series import (
    CLEAR,
    ZARR_NAME,
    check_against_truth_red,
    reflectance,
    search_demo,
    sky,
    tile_of,
)

from cubescope.plugin.analysis.ops.indices import MissingBand
from cubescope.plugin.analysis.ops.quality import SENTINEL2_SCL
from cubescope.plugin.analysis.timeseries import plan_read, read_series
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.reader import PointOutsideCoverage
from cubescope.plugin.cube.zarr_cube import ZarrError
from cubescope.plugin.cube.zarr_reader import ZarrReader
from cubescope.plugin.demo.truth import date_index, expected_dn
from cubescope.plugin.stac.bands import AmbiguousBand, BandNotFound
from cubescope.plugin.stac.http import local_fetcher
from cubescope.plugin.stac.sources import Source, SourceKind
from cubescope.plugin.stac.unreadable import StopAtFirstBadInputError

# ---- bad input and failures -----------------------------------------------------------------------

def test_a_point_outside_every_footprint_gives_an_empty_series_and_says_so(cog_reader):
    series = read_series(cog_reader, 10.0, 10.0, ["red"])
    assert series.outside and series.observations == []
    assert "outside the footprint of all 74 scenes" in series.warnings[0]
    with pytest.raises(PointOutsideCoverage, match=r"lon 10\.000000, lat 10\.000000"):
        cog_reader.read_point(10.0, 10.0, ["red"])


def test_a_band_that_does_not_exist_lists_the_ones_that_do(cog_reader, demo_cube):
    with pytest.raises(BandNotFound) as raised:
        plan_read(cog_reader, ["red", "B99"])
    assert "No band 'B99'" in str(raised.value)
    for name in ("blue", "green", "red", "nir", "swir16", "scl", "B04"):
        assert name in raised.value.available
    with pytest.raises(MissingBand, match=r"NBR needs the 'swir22' band.*available bands: .*swir16"):
        plan_read(cog_reader, ["nbr"])
    with ZarrReader(str(demo_cube.root / ZARR_NAME)) as zarr, pytest.raises(BandNotFound) as raised:
        plan_read(zarr, ["B99"])
    assert "has no variable 'B99' (it has: blue, green, nir, red, scl, swir16)" in str(raised.value)


def test_a_common_name_of_several_bands_is_refused_before_reading(catalog_items):
    """As STAC names B05, B06 and B07 "rededge": the series names the candidates, it does not pick one."""
    items = copy.deepcopy(catalog_items[:3])
    for item in items:
        for key in ("nir", "swir16"):
            item["assets"][key]["eo:bands"][0]["common_name"] = "rededge"
    with CogStackReader(items) as reader:
        with pytest.raises(AmbiguousBand, match=r"^'rededge' is the common name of 2 bands in item .*: "
                                                r"nir \(B08\), swir16 \(B11\); name one of them$"):
            plan_read(reader, ["red", "rededge"])
        assert plan_read(reader, ["B08"]).read == ("B08",), "its band id still picks one"


def test_a_zarr_without_a_time_dimension_is_refused(tmp_path):
    import xarray

    path = tmp_path / "flat.zarr"
    xarray.Dataset({"dem": (("y", "x"), np.arange(12.0).reshape(3, 4))},
                   coords={"y": [3.0, 2.0, 1.0], "x": [0.0, 1.0, 2.0, 3.0]},
                   attrs={"proj_epsg": 4326}).to_zarr(path, consolidated=True)
    with pytest.raises(ZarrError, match=r"has no time dimension \(its dimensions: y=3, x=4\)"):
        ZarrReader(str(path))


def test_one_missing_and_one_corrupt_cog_leave_gaps_and_warnings_naming_the_items(catalog_items, truth, demo_cube,
                                                                                   nginx_server, tmp_path):
    p = truth["points"]["forest_a"]
    remote = search_demo(Source("nginx", SourceKind.STATIC, f"{nginx_server.url}/stac/catalog.json"))
    stack = sorted((i for i in remote if tile_of(i["id"]) == "34TGR"), key=lambda i: i["properties"]["datetime"])[:8]
    missing, corrupt = stack[2], stack[5]
    missing["assets"] = {**missing["assets"], "red": {**missing["assets"]["red"],
                                                      "href": f"{nginx_server.url}/stac/no-such-file.tif"}}
    original = next(i for i in catalog_items if i["id"] == corrupt["id"])["assets"]["red"]["href"]
    data = Path(original).read_bytes()
    truncated = tmp_path / "red.tif"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt["assets"] = {**corrupt["assets"], "red": {**corrupt["assets"]["red"], "href": str(truncated)}}
    with CogStackReader(stack) as broken:
        series = read_series(broken, p["lon"], p["lat"], ["red"], SENTINEL2_SCL)
    kept = [o.item_id for o in series.observations]
    assert kept == [i["id"] for i in stack if i not in (missing, corrupt)]
    assert len(series.warnings) == 2
    assert missing["id"] in series.warnings[0] and "404" in series.warnings[0]
    assert corrupt["id"] in series.warnings[1] and "red.tif" in series.warnings[1]
    for o in series.observations:
        check_against_truth_red(o, truth, demo_cube.root)


class _DyingServer(ThreadingHTTPServer):
    """Serves files with Range requests until `budget` distinct files were asked for, then dies."""

    daemon_threads = True

    def __init__(self, root: Path, budget: int) -> None:
        self.root, self.budget, self.files, self.dead = root, budget, set(), threading.Event()
        super().__init__(("127.0.0.1", 0), _RangeHandler)


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _DyingServer

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        server = self.server
        path = server.root / self.path.lstrip("/")
        if self.path not in server.files and len(server.files) >= server.budget:
            # The server dies: this connection is dropped and later ones are refused at once.
            if not server.dead.is_set():
                server.dead.set()
                server.socket.shutdown(socket.SHUT_RDWR)
                threading.Thread(target=server.shutdown, daemon=True).start()
            self.close_connection = True
            return
        server.files.add(self.path)
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        if header and header.startswith("bytes="):
            first, _, last = header[6:].split(",")[0].partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            chunk = data[start:end + 1]
        else:
            self.send_response(200)
            chunk = data
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(chunk)


def test_a_server_that_dies_midway_keeps_the_values_read_so_far(catalog_items, truth, demo_cube):
    p = truth["points"]["forest_a"]
    server = _DyingServer(demo_cube.root, budget=5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stack = []
    tile_items = (i for i in catalog_items if tile_of(i["id"]) == "34TGR")
    for item in sorted(tile_items, key=lambda i: i["properties"]["datetime"]):
        href = Path(item["assets"]["red"]["href"]).relative_to(demo_cube.root)
        stack.append({**item, "assets": {"red": {**item["assets"]["red"], "href": f"{base}/{href}"}}})
    try:
        with CogStackReader(stack, max_workers=1) as dying:
            series = read_series(dying, p["lon"], p["lat"], ["red"])
    finally:
        server.shutdown()
        server.server_close()
    assert server.dead.is_set()
    assert [o.item_id for o in series.observations] == [i["id"] for i in stack[:5]]
    for o in series.observations:
        when = o.datetime.isoformat()[:10]
        pixel = truth["points"]["forest_a"]["pixels"]["34TGR"]
        if sky(demo_cube.root, "34TGR", date_index(truth, when), pixel["row_20m"], pixel["col_20m"]) == CLEAR:
            assert o.values["red"] == reflectance(expected_dn(truth, 1, "red", when))
    assert series.warnings[0].startswith(f"item {stack[5]['id']}: Cannot open")
    # 32 failed scenes: the first four named one by one, the other 28 in one summary naming them
    assert len(series.warnings) == 5 and "28 more scenes could not be read" in series.warnings[-1]
    assert all(i["id"] in " ".join(series.warnings) for i in stack[5:])




# ---- unreadable inputs: skipped, named by URL and cause, or the first one stops the read -----------

def _broken_stack(demo_cube, nginx_server, tmp_path) -> tuple[list[dict], dict[str, str]]:
    catalog, causes = catalog_with_broken_reds(demo_cube, tmp_path / "broken",
                                               gone_url=f"{nginx_server.url}/stac/no-such-file.tif")
    items = search_demo(Source("broken", SourceKind.STATIC, str(catalog)), local_fetcher())
    return [i for i in items if i["properties"]["datetime"] < "2023-07"], causes


def test_unreadable_cogs_are_skipped_and_named_by_url_and_cause(demo_cube, nginx_server, tmp_path):
    """An HTTP 404, a PNG named red.tif and a truncated COG: each left out with its URL and the cause a
    user reads, the other files still read (the PNG was dropped without a word before)."""
    stack, causes = _broken_stack(demo_cube, nginx_server, tmp_path)
    with CogStackReader(stack) as reader:
        series = read_series(reader, *FOREST, ["red"])
        found = {s.url: s.cause for s in series.skipped}
        assert {s.url for s in reader.skipped_inputs} == set(causes)
    assert set(found) == set(causes)
    for url, cause in causes.items():
        assert found[url].startswith(cause), (url, found[url])
    gone = next(url for url in causes if url.startswith("http"))
    assert found[gone] == "HTTP 404 (not found)"
    text = "\n".join(series.warnings)
    assert f"Cannot open {gone}: HTTP 404 (not found)" in text
    assert "not a GeoTIFF: GDAL reads it as PNG" in text and "Cannot read " in text
    assert len(series.skipped) == 3 and "3 inputs could not be read" in series.skipped.summary()
    broken_ids = {Path(url).parent.name for url in causes if not url.startswith("http")}
    assert broken_ids and not broken_ids & {o.item_id for o in series.observations}
    assert len(series.observations) >= 5, "the readable files are still read"


def test_a_reader_told_to_stop_stops_at_the_first_unreadable_cog(demo_cube, nginx_server, tmp_path):
    stack, causes = _broken_stack(demo_cube, nginx_server, tmp_path)
    with CogStackReader(stack, stop_at_first_bad_input=True) as reader:
        with pytest.raises(StopAtFirstBadInputError) as raised:
            read_series(reader, *FOREST, ["red"])
    assert raised.value.url in causes and raised.value.cause.startswith(causes[raised.value.url])
    assert str(raised.value) == (f"Stopped at the first input that cannot be read (as asked): "
                                 f"{raised.value.url}: {raised.value.cause}")
