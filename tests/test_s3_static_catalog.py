"""Static STAC catalogs in an S3 bucket (moto): listed, searched and read like the same catalog on disk.

The demo's catalog is uploaded as it is (relative hrefs everywhere) to buckets on the moto server of
the `s3_server` fixture. The bucket "cubescope-static" is private: moto refuses unsigned requests to
it, so a read that succeeds proves the source's keys were used. "cubescope-public" holds the JSON
only, readable by anyone, as open-data buckets are. Expected ids come from the files on disk
(`stac_expected`) and from the same search on the local copy.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import settle_tasks
from osgeo import gdal
from qgis.core import QgsApplication, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication, QDateTime, QEvent, Qt
from qgis_auth import store_auth_config
from servers.process import run_checked, server_env, servers_bin
from servers.s3 import UPLOADER
from stac_expected import disk_items, ids_where, in_box, when

from cubescope.plugin.gui.dock import CubescopeDock
from cubescope.plugin.gui.search_form import WGS84
from cubescope.plugin.stac.catalog_client import CatalogClient, SearchQuery
from cubescope.plugin.stac.gdal_env import opened, read_array
from cubescope.plugin.stac.hrefs import gdal_source
from cubescope.plugin.stac.http import HttpError, local_fetcher
from cubescope.plugin.stac.items import item_self_href
from cubescope.plugin.stac.object_store import ObjectStoreFetcher
from cubescope.plugin.stac.s3_options import S3Options
from cubescope.plugin.stac.sources import Source, SourceKind, guess_kind, static_catalog_url
from cubescope.plugin.stac.static_search import join_href
from cubescope.plugin.tasks.call_task import CallTask
from cubescope.plugin.tasks.source_tasks import list_collections, run_search

PRIVATE, PUBLIC = "cubescope-static", "cubescope-public"
S2 = "demo-s2-l2a"
SECRET = "s3cr3t-Static-Catalog-Key"
ACCESS_KEY = "AKIDSTATICCATALOG"
KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
# Around 24.0 E, where the two demo tiles overlap, in spring and summer 2023, at most 30 % cloud.
BOX = (23.998, 45.498, 24.002, 45.502)
START = datetime(2023, 3, 1, tzinfo=timezone.utc)
END = datetime(2023, 9, 30, 23, 59, 59, tzinfo=timezone.utc)
MAX_CLOUD = 30.0
WAIT_MS = 60_000

PUBLIC_POLICY = """
import json, sys
import boto3
bucket = sys.argv[2]
boto3.client("s3", endpoint_url=sys.argv[1]).put_bucket_policy(Bucket=bucket, Policy=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
"""


def upload(s3_server, root: Path, files: list[Path], bucket: str, tmp: Path) -> None:
    """Create `bucket` on the moto server and upload `files` with their paths below `root` as keys."""
    list_file = tmp / f"{bucket}.txt"
    list_file.write_text("\n".join(f.relative_to(root).as_posix() for f in files) + "\n")
    run_checked([servers_bin("python"), UPLOADER, s3_server.url, bucket, root, list_file],
                f"uploading the demo catalog to {bucket}", env=server_env(**s3_server.aws_env()), cwd=tmp)


@pytest.fixture(scope="module")
def buckets(s3_server, demo_cube, tmp_path_factory):
    """The whole static catalog (JSON and COGs) in a private bucket; its JSON in a public one."""
    root = demo_cube.root.resolve()
    files = sorted(p.resolve() for p in (root / "stac").rglob("*") if p.is_file())
    tmp = tmp_path_factory.mktemp("buckets")
    upload(s3_server, root, files, PRIVATE, tmp)
    upload(s3_server, root, [f for f in files if f.suffix == ".json"], PUBLIC, tmp)
    run_checked([servers_bin("python"), "-c", PUBLIC_POLICY, s3_server.url, PUBLIC], "making a bucket public",
                env=server_env(**s3_server.aws_env()), cwd=tmp)
    return s3_server


def s3_options(s3_server) -> S3Options:
    return S3Options(endpoint=s3_server.endpoint, region=s3_server.region, https=False, virtual_hosting=False)


def s3_source(s3_server, url: str, authcfg: str = "") -> Source:
    return Source(name="Catalog in a bucket", kind=SourceKind.STATIC, url=url, authcfg=authcfg,
                  s3=s3_options(s3_server))


def catalog_url(bucket: str = PRIVATE) -> str:
    return f"s3://{bucket}/stac/catalog.json"


def local_client(demo_cube) -> CatalogClient:
    return CatalogClient(Source("local copy", SourceKind.STATIC, str(demo_cube.catalog)), local_fetcher())


def run_task(function, *args) -> CallTask:
    """A dock task run to its end in this thread; its streamed values are kept in `task.streamed`."""
    task = CallTask("test", function, *args)
    task.streamed = []
    task.partial.connect(task.streamed.append)
    task.ok = task.run()
    return task


def query() -> SearchQuery:
    return SearchQuery(collections=(S2,), bbox=BOX, start=START, end=END, max_cloud=MAX_CLOUD)


def expected_ids(demo_cube) -> set[str]:
    """From the item files on disk, without the plugin's code."""
    items = disk_items(demo_cube.collections[S2])
    return ids_where(items, lambda i: in_box(BOX)(i) and START <= when(i) <= END
                     and i["properties"]["eo:cloud_cover"] <= MAX_CLOUD)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("./demo-s2-l2a/collection.json", "s3://bucket/eo/stac/demo-s2-l2a/collection.json"),
        ("../items/x.json", "s3://bucket/eo/items/x.json"),
        ("B04.tif", "s3://bucket/eo/stac/B04.tif"),
        ("/other/catalog.json", "s3://bucket/other/catalog.json"),
        ("s3://elsewhere/k.json", "s3://elsewhere/k.json"),
        ("https://example.com/x.tif", "https://example.com/x.tif"),
    ],
)
def test_links_in_a_bucket_resolve_against_the_document_url(href, expected):
    assert join_href("s3://bucket/eo/stac/catalog.json", href) == expected


def test_a_bucket_url_is_a_static_catalog():
    assert guess_kind("s3://bucket/eo/stac/catalog.json") == SourceKind.STATIC
    assert static_catalog_url("s3://bucket/eo/stac/") == "s3://bucket/eo/stac/catalog.json"


def test_the_dock_task_lists_the_collections_of_a_catalog_in_a_bucket(qgis_app, demo_cube, buckets):
    task = run_task(list_collections, s3_source(buckets, catalog_url()), KEYS)
    assert task.ok, task.error
    local = {c.id: c for c in local_client(demo_cube).collections().__next__()}
    found = {c.id: c for c in task.result}
    assert sorted(found) == sorted(local) == ["demo-dem", "demo-landcover", "demo-s1-rtc", "demo-s2-l2a"]
    for collection_id, summary in found.items():
        assert summary.href == f"s3://{PRIVATE}/stac/{collection_id}/collection.json"
        assert (summary.title, summary.bbox, summary.interval, repr(summary.bands)) == (  # repr: nodata NaN
            local[collection_id].title, local[collection_id].bbox, local[collection_id].interval,
            repr(local[collection_id].bands))
    assert [("collections", [c.id for c in task.result])] == [(k, [c.id for c in v]) for k, v in task.streamed]


def test_the_dock_task_searches_a_bucket_as_the_local_catalog(qgis_app, demo_cube, buckets):
    task = run_task(run_search, s3_source(buckets, catalog_url()), query(), KEYS)
    outcome = task.result
    assert task.ok and outcome.error == "" and outcome.skipped == []
    local = [item for page in local_client(demo_cube).search(query()) for item in page.items]
    expected = expected_ids(demo_cube)
    assert 0 < len(expected) < len(disk_items(demo_cube.collections[S2]))  # the filters do filter
    assert sorted(i["id"] for i in outcome.items) == sorted(i["id"] for i in local) == sorted(expected)


def test_assets_of_items_found_in_a_bucket_are_read_from_the_bucket(qgis_app, demo_cube, buckets):
    outcome = run_task(run_search, s3_source(buckets, catalog_url()), query(), KEYS).result
    local = {i["id"]: i for page in local_client(demo_cube).search(query()) for i in page.items}
    root = demo_cube.root.resolve()
    for item in outcome.items:
        assert item_self_href(item) == f"s3://{PRIVATE}/stac/{S2}/{item['id']}/{item['id']}.json"
        for key, asset in item["assets"].items():
            on_disk = Path(local[item["id"]]["assets"][key]["href"]).resolve().relative_to(root).as_posix()
            assert asset["href"] == f"s3://{PRIVATE}/{on_disk}"
    item = outcome.items[0]
    source = gdal_source(item["assets"]["red"]["href"], base=item_self_href(item), s3=s3_options(buckets),
                         credentials=KEYS)
    assert source.path == f"/vsis3/{PRIVATE}/stac/{S2}/{item['id']}/red.tif"
    with opened(source) as dataset:
        pixels = read_array(dataset.GetRasterBand(1), source.description)
        transform = dataset.GetGeoTransform()
    expected = gdal.Open(local[item["id"]]["assets"]["red"]["href"])
    assert transform == expected.GetGeoTransform()
    assert np.array_equal(pixels, expected.GetRasterBand(1).ReadAsArray()) and pixels.any()


def test_a_private_bucket_needs_the_keys_and_the_refusal_names_the_catalog(demo_cube, buckets):
    source = s3_source(buckets, catalog_url())
    unsigned = ObjectStoreFetcher(local_fetcher(), source.s3, options={"AWS_NO_SIGN_REQUEST": "YES"})
    with pytest.raises(HttpError) as refused:
        CatalogClient(source, unsigned).landing()
    assert refused.value.status == 403 and catalog_url() in str(refused.value)
    signed = ObjectStoreFetcher(local_fetcher(), source.s3, KEYS)
    assert CatalogClient(source, signed).landing()["id"] == json.loads(demo_cube.catalog.read_text())["id"]
    assert SECRET not in repr(signed) and ACCESS_KEY not in repr(signed)


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("s3://no-such-bucket-cubescope/stac/catalog.json", 404, "no such bucket"),
        (f"s3://{PRIVATE}/stac/no-catalog-here.json", 404, "no such object in the bucket"),
    ],
)
def test_a_missing_bucket_or_catalog_names_the_s3_url_and_no_key(qgis_app, buckets, url, status, words):
    task = run_task(list_collections, s3_source(buckets, url), KEYS)
    assert not task.ok and url in task.error and words in task.error and f"HTTP {status}" in task.error
    assert SECRET not in task.error and ACCESS_KEY not in task.error
    with pytest.raises(HttpError) as raised:
        CatalogClient(s3_source(buckets, url), ObjectStoreFetcher(local_fetcher(), s3_options(buckets), KEYS)).landing()
    assert raised.value.status == status and raised.value.url == url and raised.value.hint


def test_items_missing_from_the_bucket_are_skipped_and_named(qgis_app, demo_cube, s3_server):
    """The fixture's own bucket holds only the first items of each tile: the rest are broken links."""
    item_files = [key.split("/")[2:] for key in s3_server.keys if key.startswith(f"stac/{S2}/") and key.count("/") == 3]
    uploaded = {folder for folder, name in item_files if name == f"{folder}.json"}
    everything = SearchQuery(collections=(S2,), bbox=None, start=None, end=None, max_cloud=None)
    outcome = run_task(run_search, s3_source(s3_server, catalog_url(s3_server.bucket)), everything, KEYS).result
    assert outcome.error == "" and len(uploaded) == 8
    assert sorted(i["id"] for i in outcome.items) == sorted(uploaded)
    all_ids = {i["id"] for i in disk_items(demo_cube.collections[S2])}
    missing = sorted(all_ids - uploaded)
    assert len(outcome.skipped) == len(missing)
    named = sorted(next(m for m in missing if f"/{m}/{m}.json" in problem) for problem in outcome.skipped)
    assert named == missing
    assert all("HTTP 404" in problem and f"s3://{s3_server.bucket}/stac/" in problem for problem in outcome.skipped)


@pytest.fixture()
def authcfg(qgis_app) -> str:
    """The bucket's keys in QGIS's auth manager (a Basic configuration: user = key id)."""
    config_id = store_auth_config("Basic", "static catalog keys", {"username": ACCESS_KEY, "password": SECRET})
    yield config_id
    QgsApplication.authManager().removeAuthenticationConfig(config_id)


def test_the_dock_browses_a_private_bucket_with_keys_from_the_auth_manager(qgis_app, qgis_canvas, qtbot, tmp_path,
                                                                          demo_cube, buckets, authcfg):
    logged: list[str] = []

    def log(message, *_):
        logged.append(message)

    QgsApplication.messageLog().messageReceived.connect(log)
    dock = CubescopeDock(None, qgis_canvas)
    dock.browse.workdir = tmp_path / "vrt"
    listed: list = []
    dock.browse.collections_listed.connect(listed.append)
    dock.browse.source_failed.connect(listed.append)  # a refusal ends the wait at once
    try:
        dock.open_source(s3_source(buckets, catalog_url(), authcfg))
        qtbot.waitUntil(lambda: bool(listed), timeout=WAIT_MS)
        assert isinstance(listed[0], list), listed[0]  # else the dock's error message
        assert sorted(c.id for c in listed[0]) == ["demo-dem", "demo-landcover", "demo-s1-rtc", S2]
        dock.browse.select_collection(S2)
        dock.form.extentBox.setOutputExtentFromUser(QgsRectangle(*BOX), WGS84)
        dock.form.startEdit.setDateTime(QDateTime.fromString("2023-03-01", "yyyy-MM-dd"))
        dock.form.endEdit.setDateTime(QDateTime.fromString("2023-09-30", "yyyy-MM-dd"))
        dock.form.cloudSpin.setValue(int(MAX_CLOUD))
        dock.form.cqlEdit.setText("")
        with qtbot.waitSignal(dock.browse.search_finished, timeout=WAIT_MS) as searched:
            qtbot.mouseClick(dock.form.searchButton, Qt.MouseButton.LeftButton)
        outcome = searched.args[0]
        assert outcome.error == "" and sorted(i["id"] for i in outcome.items) == sorted(expected_ids(demo_cube))
        assert not [message for message in logged if SECRET in message]
        # The dates' thumbnails come from the bucket too, read with the same keys.
        first_id = dock.browse.results.item_ids()[0]
        qtbot.waitUntil(lambda: not dock.browse.results.row_for(first_id).icon().isNull(), timeout=WAIT_MS)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(log)
        dock.cancel_tasks()
        settle_tasks(qtbot)
        QgsProject.instance().removeAllMapLayers()
        # Deleted now, while no task runs, rather than by a later test's event loop: a widget tree
        # deleted while a worker ends a network request can deadlock on Qt's connection locks.
        dock.close()
        dock.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_the_connection_dialog_tests_a_private_bucket_with_its_keys(qgis_app, qtbot, buckets, authcfg):
    from cubescope.plugin.gui.connection_dialog import ConnectionDialog

    dialog = ConnectionDialog(None, s3_source(buckets, catalog_url(), authcfg))
    try:
        assert dialog.source().authcfg == authcfg
        dialog.form.testButton.click()
        qtbot.waitUntil(dialog.form.testButton.isEnabled, timeout=WAIT_MS)
        assert dialog.form.testResult.text() == "Connected: Cubescope demo cube, static catalog"
    finally:
        dialog.done(0)
        settle_tasks(qtbot)
        dialog.deleteLater()  # now, while no task runs (see the dock test above)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_processing_searches_a_public_bucket_with_gdal_s_own_settings(qgis_app, demo_cube, buckets, tmp_path):
    """`cubescope:searchitems` has no connection: the endpoint comes from GDAL's settings, as a user
    sets AWS_S3_ENDPOINT; without keys the request goes unsigned, which a public bucket answers."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

    from cubescope.plugin.processing.search_items_algorithm import SearchItemsAlgorithm

    settings = {"AWS_S3_ENDPOINT": buckets.endpoint, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
    previous = {key: gdal.GetConfigOption(key) for key in settings}
    algorithm = SearchItemsAlgorithm()
    algorithm.initAlgorithm()
    out = tmp_path / "footprints.gpkg"
    parameters = {"SOURCE": catalog_url(PUBLIC), "COLLECTION": S2, "EXTENT": "23.998,24.002,45.498,45.502 [EPSG:4326]",
                  "START": "2023-03-01", "END": "2023-09-30", "MAX_CLOUD": MAX_CLOUD, "LIMIT": 0, "OUTPUT": str(out)}
    try:
        for key, value in settings.items():
            gdal.SetConfigOption(key, value)
        results, ok = algorithm.run(parameters, QgsProcessingContext(), QgsProcessingFeedback())
    finally:
        for key, value in previous.items():
            gdal.SetConfigOption(key, value)
    assert ok, results
    layer = QgsVectorLayer(str(out), "footprints", "ogr")
    assert layer.isValid()
    assert sorted(f["id"] for f in layer.getFeatures()) == sorted(expected_ids(demo_cube))


def test_a_composite_of_a_private_bucket_equals_the_local_one(qgis_app, demo_cube, buckets, tmp_path):
    """The Analysis tab's task on the catalog in the private bucket: searched with the keys (GDAL),
    pixels read from the bucket with its endpoint and keys, the very bytes of the local catalog's."""
    from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
    from cubescope.plugin.analysis.engine.pipeline import run as run_analysis
    from cubescope.plugin.gui.analysis_panel import _run

    fields = dict(collection=S2, operation="composite", method="median", bands=("red", "NDVI"),
                  periods=(Period(START, END),), extent=BOX, max_cloud=MAX_CLOUD)
    task = run_task(_run, AnalysisRequest(source=s3_source(buckets, catalog_url()), output=str(tmp_path / "s3.tif"),
                                          credentials=tuple(KEYS.items()), **fields))
    assert task.ok, task.error
    local = run_analysis(AnalysisRequest(source=str(demo_cube.catalog), output=str(tmp_path / "local.tif"), **fields))
    from_bucket, on_disk = gdal.Open(str(task.result)), gdal.Open(str(local))
    assert from_bucket.GetMetadataItem("CUBESCOPE_ITEMS") == on_disk.GetMetadataItem("CUBESCOPE_ITEMS") != "0"
    assert np.isfinite(on_disk.ReadAsArray()).all()
    assert from_bucket.ReadAsArray().tobytes() == on_disk.ReadAsArray().tobytes()
