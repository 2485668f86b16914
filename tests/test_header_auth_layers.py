"""HTTP auth headers (QGIS auth manager) reach the layers QGIS itself opens and renders.

Assets sit behind a real HTTP server that refuses requests without the right header (401) or with a
wrong one (403). Layers get ``/vsicurl?header_file=<private file>&url=<url>`` paths: the secret is in
that file only, never in a layer source, a VRT, a project, the settings or the log.
"""

from __future__ import annotations

import base64
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from protected_assets import (
    BANDS,
    ITEM_DIR,
    METHODS,
    TOKEN,
    ZARR,
    layer_pixels,
    local_item,
    local_pixels,
    new_requests,
    protected_item,
    source_for,
)
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize
from token_server import TokenServer

from cubescope.plugin.analysis.engine import pipeline as engine
from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.load import gdal_items
from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.cube.header_files import HeaderFiles
from cubescope.plugin.cube.layer_plan import TRUE_COLOUR, plan_layers, plan_zarr_layers
from cubescope.plugin.cube.zarr_cube import describe_zarr
from cubescope.plugin.cube.zarr_reader import ZarrReader
from cubescope.plugin.gui.layer_loader import open_layer
from cubescope.plugin.network import asset_access, qgis_fetcher, refresh_header_files
from cubescope.plugin.stac.gdal_env import GdalOpenError, opened, read_array
from cubescope.plugin.stac.hrefs import (
    HTTP_DEFAULTS,
    GdalSource,
    gdal_source,
    vsicurl_options,
    vsicurl_with_header_file,
    within_auth_scope,
)
from cubescope.plugin.stac.sources import Source, SourceKind
from cubescope.plugin.tasks.call_task import CallTask
from cubescope.plugin.tasks.source_tasks import list_collections
from cubescope.plugin.tasks.source_tasks import test_source as connection_test

WAIT_MS = 60_000


def render(layer: QgsRasterLayer) -> bytes:
    """The layer drawn by QGIS's map renderer (its own threads), as raw ARGB pixels."""
    map_settings = QgsMapSettings()
    map_settings.setLayers([layer])
    map_settings.setDestinationCrs(layer.crs())
    map_settings.setExtent(layer.extent())
    map_settings.setOutputSize(QSize(layer.width(), layer.height()))
    job = QgsMapRendererSequentialJob(map_settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    return bytes(image.constBits().asarray(image.sizeInBytes()))


# --- layers QGIS opens -----------------------------------------------------------------------------

def test_protected_cog_opens_as_a_layer_only_with_the_auth_config(qgis_app, tmp_path, demo_cube, protected,
                                                                  authcfg, secrets, track, method):
    item = protected_item(demo_cube, protected)
    url = item["assets"]["red"]["href"]

    # Without the auth configuration: refused, no layer.
    no_auth = asset_access(source_for(protected))
    assert no_auth.header_file == ""
    plans, problems = plan_layers([item], ["red"], source_for(protected), tmp_path / "vrt",
                                  header_file=no_auth.header_file)
    assert plans == [] and len(problems) == 1 and url in problems[0]
    denied = track(QgsRasterLayer(f"/vsicurl/{url}", "denied", "gdal"))
    assert not denied.isValid()
    assert protected.served(401) >= 1 and protected.served(206) == 0

    # A header file with a wrong value: refused too, and the message names the URL, not the file.
    wrong = HeaderFiles()
    try:
        wrong_file = wrong.path_for(authcfg, {METHODS[method][1]: "Bearer wrong"})
        # A composite: GDAL's reason names the path it could not open ("Can't open /vsicurl?...").
        plans, problems = plan_layers([item], list(TRUE_COLOUR), source_for(protected), tmp_path / "vrt",
                                      header_file=wrong_file)
        assert plans == [] and len(problems) == 1 and protected.served(403) >= 1
        assert url in problems[0] and "header_file" not in problems[0] and wrong_file not in problems[0]
    finally:
        wrong.remove_all()

    # With it: the header file path, and the pixels of the file.
    source = source_for(protected, authcfg)
    access = asset_access(source)  # the main thread reads the auth manager
    assert access.header_file and secrets[-1] in Path(access.header_file).read_text()
    plans, problems = plan_layers([item], ["red"], source, tmp_path / "vrt", header_file=access.header_file)
    assert problems == []
    (plan,) = plans
    assert plan.path == vsicurl_with_header_file(url, access.header_file)
    assert plan.hrefs == (url,) and not [s for s in secrets if s in plan.path]
    gdal.VSICurlClearCache()  # what QGIS reads below must come from the server, with the header
    before = len(protected.file_requests)
    layer = track(open_layer(plan))
    assert layer.isValid() and layer.source() == plan.path
    np.testing.assert_array_equal(layer_pixels(layer), local_pixels(demo_cube, "red"))
    statuses = new_requests(protected, before)
    assert 206 in statuses and not {401, 403} & set(statuses)
    assert layer.customProperty("cubescope/hrefs") == url  # provenance: the plain URL


def test_true_colour_vrt_of_protected_bands_renders_the_right_pixels(qgis_app, tmp_path, demo_cube, protected,
                                                                     authcfg, secrets, track):
    item = protected_item(demo_cube, protected)
    access = asset_access(source_for(protected, authcfg))
    plans, problems = plan_layers([item], list(TRUE_COLOUR), source_for(protected, authcfg), tmp_path / "vrt",
                                  header_file=access.header_file)
    assert problems == []
    (plan,) = plans
    vrt_text = Path(plan.path).read_text()
    assert plan.path.endswith(".vrt") and not [s for s in secrets if s in vrt_text]
    for band in BANDS:  # each source is named with the header file, so rendering sends the header
        expected = vsicurl_with_header_file(item["assets"][band]["href"], access.header_file).replace("&", "&amp;")
        assert f">{expected}</SourceFilename>" in vrt_text

    local_plans, local_problems = plan_layers([local_item(demo_cube)], list(TRUE_COLOUR), Source(
        name="local", kind=SourceKind.STATIC, url=str(demo_cube.catalog)), tmp_path / "local")
    assert local_problems == []
    local = track(open_layer(local_plans[0]))

    gdal.VSICurlClearCache()
    before = len(protected.file_requests)
    layer = track(open_layer(plan))
    assert layer.isValid() and layer.bandCount() == 3
    for number, band in enumerate(BANDS, start=1):
        np.testing.assert_array_equal(layer_pixels(layer, number), local_pixels(demo_cube, band))
    gdal.VSICurlClearCache()
    drawn = render(layer)
    colours = {drawn[i:i + 4] for i in range(0, len(drawn), 4)}
    assert drawn == render(local) and len(colours) >= 5  # the demo's few land covers, not a blank image
    statuses = new_requests(protected, before)
    assert statuses.count(206) >= 3 and not {401, 403} & set(statuses)


def test_protected_zarr_time_step_opens_as_a_layer(qgis_app, demo_cube, protected, authcfg, secrets, track):
    access = asset_access(source_for(protected, authcfg))
    url = protected.files_url(ZARR)
    (plan,) = plan_zarr_layers(url, "red", [datetime(2023, 3, 5, tzinfo=timezone.utc)],
                               source_for(protected, authcfg), header_file=access.header_file)
    assert plan.path.startswith('ZARR:"/vsicurl?header_file=') and not [s for s in secrets if s in plan.path]
    layer = track(open_layer(plan))
    assert layer.isValid()
    local = GdalSource(f'ZARR:"{demo_cube.root / ZARR}":/red:0', {}, "local Zarr")
    with opened(local) as dataset:
        band = dataset.GetRasterBand(1)
        raw = read_array(band, local.description)
        scale, offset = band.GetScale() or 1.0, band.GetOffset() or 0.0
    assert scale != 1.0  # QGIS shows the reflectance: raw values scaled as the Zarr says
    np.testing.assert_allclose(layer_pixels(layer), raw * scale + offset, rtol=1e-6)
    assert not {401, 403} & {status for _, _, status in protected.file_requests}


def zarr_source(server: TokenServer, authcfg: str = "") -> Source:
    return Source(name="Protected Zarr", kind=SourceKind.ZARR, url=server.files_url(ZARR), authcfg=authcfg)


def test_a_protected_zarr_store_is_described_and_its_pixels_read_with_the_auth_headers(
        qgis_app, demo_cube, protected, authcfg, secrets):
    """The Browse tab describes a Zarr store itself (not through QGIS's network stack), and the pixel
    plot reads it itself: both need the auth config's headers, read once on the main thread."""
    source = zarr_source(protected, authcfg)
    access = asset_access(source)
    assert access.headers and not [s for s in secrets if s in repr(access)]
    listed = CallTask("test", list_collections, source, None, access.headers)
    listed.streamed = []
    listed.partial.connect(listed.streamed.append)
    assert listed.run(), listed.error
    ((kind, description),) = listed.streamed
    local = describe_zarr(str(demo_cube.root / ZARR))
    assert kind == "zarr" and description.times == local.times and len(local.times) == 37
    assert [v.name for v in description.variables] == [v.name for v in local.variables]
    tested = CallTask("test", connection_test, source, None, access.headers)
    assert tested.run() and tested.result.startswith("Connected: Zarr cube") and "37 dates" in tested.result

    west, south, east, north = local.bbox_lonlat
    lon, lat = (west + east) / 2, (south + north) / 2
    with ZarrReader(source.url, auth_headers=access.headers) as remote, \
            ZarrReader(str(demo_cube.root / ZARR)) as on_disk:
        far = read_series(remote, lon, lat, ["red", "nir", "ndvi"])
        near = read_series(on_disk, lon, lat, ["red", "nir", "ndvi"])
    assert len(far.observations) == len(near.observations) == 37
    for band in ("red", "nir", "ndvi"):
        np.testing.assert_array_equal(far.values(band), near.values(band))
    assert not {401, 403} & {status for _, _, status in protected.file_requests}


def test_a_protected_zarr_store_without_the_headers_is_refused_with_the_url(qgis_app, protected, secrets):
    source = zarr_source(protected)
    listed = CallTask("test", list_collections, source, None, None)
    assert not listed.run()
    assert "401" in listed.error and protected.files_url(ZARR) in listed.error
    assert not [s for s in secrets if s in listed.error]


@pytest.mark.parametrize(("scope", "url", "sent"), [
    ("https://stac.example.org/v1", "https://stac.example.org/data/a.tif", True),
    ("https://stac.example.org/v1", "https://stac.example.org:8443/a.tif", True),
    ("https://stac.example.org/v1", "https://data.example.org/a.tif", True),
    ("https://stac.example.org/v1", "https://example.org.evil.net/a.tif", False),
    ("https://stac.example.org/v1", "https://sentinel-cogs.s3.us-west-2.amazonaws.com/a.tif", False),
    ("https://example.org/stac", "https://data.example.org/a.tif", False),  # parent may be a public suffix
    ("https://example.org/stac", "https://example.org/a.tif", True),
    ("http://127.0.0.1:8000/stac", "http://127.0.0.1:9000/a.tif", True),
    ("http://127.0.0.1:8000/stac", "http://localhost:8000/a.tif", False),
    ("/data/catalog.json", "https://anywhere.example/a.tif", True),  # a local catalog sets no limit
])
def test_auth_headers_only_go_to_the_source_s_own_site(scope, url, sent):
    assert within_auth_scope(scope, url) is sent
    source = gdal_source(url, auth_headers={"X-API-Key": TOKEN}, auth_scope=scope)
    assert ("GDAL_HTTP_HEADERS" in source.config) is sent
    assert ("header_file" in source.path) is False
    with_file = gdal_source(url, header_file="/tmp/h.txt", auth_scope=scope)
    assert ("header_file=" in with_file.path) is sent and TOKEN not in with_file.path


def test_a_load_with_assets_on_two_sites_keeps_the_headers_to_the_source_s_site():
    """odc-stac applies one set of GDAL options to a whole load: with assets on another site the
    headers cannot be one of them, so the source's own assets name a private header file instead."""
    scope = "http://127.0.0.1:8000/stac"
    items = [{"id": "a", "assets": {"red": {"href": "http://127.0.0.1:8000/files/a.tif"}}},
             {"id": "b", "assets": {"red": {"href": "http://localhost:8000/files/b.tif"}}}]
    headers = {"X-API-Key": TOKEN}
    mixed, config = gdal_items(items, ["red"], auth_headers=headers, auth_scope=scope)
    own, other = (item["assets"]["red"]["href"] for item in mixed)
    assert "GDAL_HTTP_HEADERS" not in config and TOKEN not in own + other
    assert vsicurl_options(own)["url"] == "http://127.0.0.1:8000/files/a.tif"
    assert Path(vsicurl_options(own)["header_file"]).read_text() == f"X-API-Key: {TOKEN}\n"
    assert other == "/vsicurl/http://localhost:8000/files/b.tif"
    same, config = gdal_items(items[:1], ["red"], auth_headers=headers, auth_scope=scope)
    assert config["GDAL_HTTP_HEADERS"] == f"X-API-Key: {TOKEN}"  # one site: an option, also for remote workers
    assert same[0]["assets"]["red"]["href"] == "/vsicurl/http://127.0.0.1:8000/files/a.tif"


def test_the_pixel_series_of_protected_cogs_reads_with_the_headers_and_only_on_the_site(
        qgis_app, demo_cube, protected, authcfg, secrets):
    source = source_for(protected, authcfg)
    access = asset_access(source)
    item = protected_item(demo_cube, protected)
    west, south, east, north = item["bbox"]
    lon, lat = (west + east) / 2, (south + north) / 2
    with CogStackReader([item], auth_headers=access.headers, auth_scope=source.url) as remote, \
            CogStackReader([local_item(demo_cube)]) as on_disk:
        far = read_series(remote, lon, lat, ["red", "nir"])
        near = read_series(on_disk, lon, lat, ["red", "nir"])
    assert far.warnings == [] and len(far.observations) == 1
    assert [o.values for o in far.observations] == [o.values for o in near.observations]
    assert not {401, 403} & {status for _, _, status in protected.file_requests}
    # The same assets named through another host name are another site: no header goes there.
    # (New URLs: GDAL keeps what it read by URL, and would answer from memory.)
    elsewhere = source.url.replace("127.0.0.1", "localhost")
    for asset in item["assets"].values():
        asset["href"] += "?elsewhere"
    before = len(protected.file_requests)
    with CogStackReader([item], auth_headers=access.headers, auth_scope=elsewhere) as refused:
        series = read_series(refused, lon, lat, ["red"])
    assert not series.observations and series.warnings
    assert {401} == {status for _, _, status in protected.file_requests[before:]}
    assert not [s for s in secrets if s in " ".join(series.warnings)]


def test_a_composite_of_protected_assets_equals_the_local_one(qgis_app, demo_cube, protected, authcfg, tmp_path):
    """The engine reads a static catalog behind the header (QGIS's network stack, the auth config)
    and its assets (GDAL, the same headers): the result is the one computed from the disk."""
    source = Source(name="Protected catalog", kind=SourceKind.STATIC, url=protected.files_url("stac/catalog.json"),
                    authcfg=authcfg)
    access = asset_access(source)
    tile = (732320.0, 5041600.0, 734880.0, 5044160.0)
    common = dict(collection="demo-s2-l2a", operation="composite", bands=("red", "NDVI"),
                  periods=(Period(datetime(2023, 5, 1), datetime(2023, 9, 30)),), extent=tile,
                  extent_crs="EPSG:32634")
    remote = engine.run(AnalysisRequest(source=source, output=str(tmp_path / "remote.tif"),
                                               auth_headers=tuple(access.headers.items()), **common),
                        fetch=qgis_fetcher(authcfg))
    local = engine.run(AnalysisRequest(source=str(demo_cube.catalog), output=str(tmp_path / "local.tif"),
                                              **common))
    pixels = gdal.Open(str(remote)).ReadAsArray()
    assert pixels.shape == (2, 256, 256) and np.isfinite(pixels).any()
    np.testing.assert_array_equal(pixels, gdal.Open(str(local)).ReadAsArray())
    statuses = [status for _, _, status in protected.file_requests]
    assert statuses.count(206) > 0 and not {401, 403} & set(statuses)
    assert TOKEN not in repr(AnalysisRequest(source=source, output="x.tif",
                                                    auth_headers=tuple(access.headers.items()), **common))


def test_refreshed_credentials_reach_open_layers_through_the_same_header_file(
        qgis_app, demo_cube, protected, method, authcfg, secrets):
    """An OAuth2 token renewed by QGIS, or a key edited in the auth manager: the source's header file
    keeps its path (open layers name it) and gets the new headers; GDAL reads it at each request."""
    source = source_for(protected, authcfg)
    access = asset_access(source)
    path = vsicurl_with_header_file(protected.files_url(f"{ITEM_DIR}/red.tif"), access.header_file)
    expected = local_pixels(demo_cube, "red")

    def pixels() -> np.ndarray | None:
        gdal.VSICurlClearCache()  # a fresh request each time, as a layer's next block read makes
        try:
            with opened(GdalSource(path, dict(HTTP_DEFAULTS), "red")) as dataset:
                return read_array(dataset.GetRasterBand(1), "red")
        except GdalOpenError:
            return None

    assert np.array_equal(pixels(), expected)
    renewed = "R3newed-Token-7c2e"
    values, _header, value = METHODS[method]
    manager = QgsApplication.authManager()
    config = QgsAuthMethodConfig()
    loaded = manager.loadAuthenticationConfig(authcfg, config, True)
    config = loaded[1] if isinstance(loaded, tuple) else config
    for key, old in values.items():
        config.setConfig(key, old.replace(TOKEN, renewed))
    assert manager.updateAuthenticationConfig(config)
    new_value = (value.replace(TOKEN, renewed) if method != "Basic"
                 else "Basic " + base64.b64encode(f"cubescope:{renewed}".encode()).decode())
    protected.api_key = new_value  # the server now wants the new credentials only
    assert pixels() is None  # the file still holds the old ones
    assert refresh_header_files() == [authcfg]
    assert np.array_equal(pixels(), expected)
    content = Path(access.header_file).read_text()
    assert new_value in content and not [s for s in secrets if s in content]
    assert stat.S_IMODE(os.stat(access.header_file).st_mode) == 0o600
    assert refresh_header_files() == []  # nothing changed: nothing rewritten, GDAL's cache kept
