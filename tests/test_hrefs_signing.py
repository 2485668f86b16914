"""Asset hrefs to GDAL paths (local, nginx, moto S3) and URL signing against a real local token server."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from token_server import token_server

from cubescope.plugin.stac.gdal_env import GdalOpenError, gdal_config, opened, read_array
from cubescope.plugin.stac.hrefs import (
    HTTP_DEFAULTS,
    GdalSource,
    gdal_http_config,
    gdal_source,
    resolve_href,
    zarr_gdal_path,
)
from cubescope.plugin.stac.http import HttpError, requests_fetcher
from cubescope.plugin.stac.s3_options import S3Options
from cubescope.plugin.stac.signing import BdcSigner, PlanetaryComputerSigner, parse_expiry, signer_for
from cubescope.plugin.stac.sources import Source, SourceKind

BLOB = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/34/T/GR/2023/B04.tif"
SECRET = "s3cr3t-value"


def first_item(demo_cube, tile: str = "34TGR") -> Path:
    folder = demo_cube.collections["demo-s2-l2a"].parent
    return sorted(folder.glob(f"*_T{tile}/*.json"))[0]


def pixels(source: GdalSource) -> np.ndarray:
    with opened(source) as dataset:
        return read_array(dataset.GetRasterBand(1), source.description)


# --- resolve_href ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("href", "base", "expected"), [
    ("./red.tif", "https://h.example/cat/item-1/item.json", "https://h.example/cat/item-1/red.tif"),
    ("../x/y.tif", "https://h.example/cat/item-1/item.json", "https://h.example/cat/x/y.tif"),
    ("red.tif", "s3://bucket/cat/item/item.json", "s3://bucket/cat/item/red.tif"),
    ("../b/red.tif", "s3://bucket/cat/item/item.json", "s3://bucket/cat/b/red.tif"),
    ("./red.tif", "file:///data/cat/item/item.json", "file:///data/cat/item/red.tif"),
    ("https://o.example/a.tif", "https://h.example/item.json", "https://o.example/a.tif"),
    ("s3://b/k.tif", "/data/item.json", "s3://b/k.tif"),
    ("/vsicurl/https://o.example/a.tif", "/data/item.json", "/vsicurl/https://o.example/a.tif"),
    ("./red.tif", None, "./red.tif"),
])
def test_resolve_href(href, base, expected):
    assert resolve_href(href, base) == expected


def test_resolve_href_against_a_local_item(tmp_path):
    item = tmp_path / "cat" / "item" / "item.json"
    assert resolve_href("../other/b.tif", str(item)) == str(tmp_path / "cat" / "other" / "b.tif")
    assert resolve_href("./red.tif", str(item.parent) + "/") == str(item.parent / "red.tif")


# --- gdal_source: local, nginx, S3 -------------------------------------------------------------------

def test_local_href_opens_with_no_options(demo_cube):
    item = first_item(demo_cube)
    source = gdal_source("./red.tif", base=str(item))
    assert source.path == str(item.parent / "red.tif") and source.config == {}
    assert "./red.tif" in source.description
    assert pixels(source).shape == (256, 256)
    assert gdal_source(item.parent.joinpath("red.tif").as_uri()).path == str(item.parent / "red.tif")


def test_http_href_reads_the_same_pixels_as_the_local_file(demo_cube, nginx_server):
    item = first_item(demo_cube)
    item_url = f"{nginx_server.url}/{item.relative_to(demo_cube.root).as_posix()}"
    source = gdal_source("./red.tif", base=item_url)
    assert source.path == f"/vsicurl/{item_url.rsplit('/', 1)[0]}/red.tif"
    assert HTTP_DEFAULTS.items() <= source.config.items()
    assert "CPL_VSIL_CURL_ALLOWED_EXTENSIONS" not in source.config
    np.testing.assert_array_equal(pixels(source), pixels(gdal_source(str(item.parent / "red.tif"))))


def test_s3_href_reads_from_the_endpoint_with_the_given_credentials(demo_cube, s3_server):
    item = first_item(demo_cube)
    key = (item.parent / "red.tif").relative_to(demo_cube.root).as_posix()
    assert key in s3_server.keys
    options = S3Options(endpoint=s3_server.endpoint, region=s3_server.region, https=False, virtual_hosting=False)
    credentials = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": SECRET + s3_server.secret_key}
    source = gdal_source(f"s3://{s3_server.bucket}/{key}", s3=options, credentials=credentials,
                         options={"GDAL_PAM_ENABLED": "NO"})
    assert source.path == f"/vsis3/{s3_server.bucket}/{key}"
    assert {"AWS_S3_ENDPOINT": s3_server.endpoint, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_REGION": s3_server.region, "AWS_NO_SIGN_REQUEST": "NO"}.items() <= source.config.items()
    assert SECRET not in repr(source) and SECRET not in source.description
    source = GdalSource(source.path, {**source.config, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key},
                        source.description)
    np.testing.assert_array_equal(pixels(source), pixels(gdal_source(str(item.parent / "red.tif"))))


def test_missing_s3_bucket_gives_an_error_naming_the_href(s3_server):
    options = S3Options(endpoint=s3_server.endpoint, https=False, virtual_hosting=False)
    source = gdal_source("s3://no-such-bucket/a/red.tif", s3=options,
                         credentials={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    with pytest.raises(GdalOpenError, match=re.escape("s3://no-such-bucket/a/red.tif")):
        pixels(source)


def test_s3_options_map_to_gdal_options():
    source = gdal_source("s3://bucket/a/b.tif", s3=S3Options(region="eu-central-1", requester_pays=True))
    assert source.path == "/vsis3/bucket/a/b.tif"
    assert source.config["AWS_REQUEST_PAYER"] == "requester"
    assert source.config["AWS_REGION"] == "eu-central-1"
    assert source.config["AWS_HTTPS"] == "YES" and "AWS_S3_ENDPOINT" not in source.config
    # A public AWS bucket by its https URL stays plain HTTP: no signing, no credentials needed.
    public = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/x/B04.tif"
    assert gdal_source(public).path == f"/vsicurl/{public}"


def test_other_object_stores_and_unsupported_schemes():
    assert gdal_source("gs://bucket/k/x.tif").path == "/vsigs/bucket/k/x.tif"
    assert gdal_source("az://container/k/x.tif").path == "/vsiaz/container/k/x.tif"
    abfs = gdal_source("abfs://container@account.dfs.core.windows.net/k/x.tif")
    assert abfs.path == "/vsiaz/container/k/x.tif" and abfs.config["AZURE_STORAGE_ACCOUNT"] == "account"
    with pytest.raises(ValueError, match=re.escape("ftp://h/x.tif")):
        gdal_source("ftp://h/x.tif")


def test_auth_headers_reach_the_server_but_not_the_path(demo_cube):
    with token_server() as server:
        source = gdal_source(f"{server.url}/echo/a.json", auth_headers={"X-Api-Key": SECRET})
        assert SECRET not in source.path + source.description + repr(source)
        with gdal_config(source.config):
            handle = gdal.VSIFOpenL(source.path, "rb")
            assert handle is not None
            gdal.VSIFReadL(1, 1000, handle)
            gdal.VSIFCloseL(handle)
        assert gdal.GetThreadLocalConfigOption("GDAL_HTTP_HEADERS", None) is None  # restored
    assert server.echoed and all(h.get("X-Api-Key") == SECRET for h in server.echoed)


def test_gdal_http_config():
    assert gdal_http_config() == {}
    assert gdal_http_config("proxy:3128", "u:p", 12.4, True) == {
        "GDAL_HTTP_PROXY": "proxy:3128", "GDAL_HTTP_PROXYUSERPWD": "u:p", "GDAL_HTTP_TIMEOUT": "12",
        "GDAL_HTTP_UNSAFESSL": "YES"}


def test_zarr_paths():
    assert zarr_gdal_path("/data/x.zarr", "red", 3).path == 'ZARR:"/data/x.zarr":/red:3'
    http = zarr_gdal_path("http://host/x.zarr/", "red", 0)
    assert http.path == 'ZARR:"/vsicurl/http://host/x.zarr":/red:0'
    assert "CPL_VSIL_CURL_ALLOWED_EXTENSIONS" not in http.config
    assert zarr_gdal_path("s3://b/x.zarr", "/red").path == 'ZARR:"/vsis3/b/x.zarr":/red'
    with pytest.raises(ValueError, match="-1"):
        zarr_gdal_path("/data/x.zarr", "red", -1)


# --- signing -----------------------------------------------------------------------------------------

def test_pc_tokens_are_cached_per_container_and_other_urls_untouched():
    with token_server() as server:
        signer = PlanetaryComputerSigner(requests_fetcher(), token_url=server.token_url)
        signed = signer.sign(BLOB)
        assert signed.startswith(BLOB + "?") and "sig=sentinel2l2a01-sentinel2-l2-1" in signed
        assert signer.sign(BLOB.replace("B04", "B08")).endswith("sig=sentinel2l2a01-sentinel2-l2-1")
        assert signer.sign(signed) == signed  # idempotent
        other = signer.sign("https://sentinel2l2a01.blob.core.windows.net/other-container/a.tif")
        assert "sig=sentinel2l2a01-other-container-1" in other
        assert server.requests == {("sentinel2l2a01", "sentinel2-l2"): 1, ("sentinel2l2a01", "other-container"): 1}
        with_query = signer.sign(BLOB + "?version=2")
        assert with_query.startswith(BLOB + "?version=2&st=")
        for href in ("https://example.com/a.tif", "s3://b/k.tif", "/data/a.tif"):
            assert signer.sign(href) == href
        assert sum(server.requests.values()) == 2


def test_pc_token_is_refreshed_within_the_margin_of_its_expiry():
    now = [datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)]
    with token_server() as server:
        server.expiry = now[0] + timedelta(minutes=45)
        signer = PlanetaryComputerSigner(requests_fetcher(), server.token_url, margin_s=300, clock=lambda: now[0])
        assert signer.sign(BLOB).endswith("-1")
        now[0] += timedelta(minutes=39)  # 6 minutes left: still good
        assert signer.sign(BLOB).endswith("-1")
        now[0] += timedelta(minutes=2)  # 4 minutes left: inside the 5-minute margin
        assert signer.sign(BLOB).endswith("-2")
        assert server.requests[("sentinel2l2a01", "sentinel2-l2")] == 2


def test_concurrent_signing_asks_once():
    with token_server() as server:
        signer = PlanetaryComputerSigner(requests_fetcher(), server.token_url)
        results: list[str] = []
        threads = [threading.Thread(target=lambda: results.append(signer.sign(BLOB))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(set(results)) == 1 and len(results) == 8
        assert server.requests[("sentinel2l2a01", "sentinel2-l2")] == 1


@pytest.mark.parametrize(("status", "body", "words"), [
    (500, '{"detail": "token backend down"}', "token backend down"),
    (200, "<html>maintenance</html>", "not valid JSON"),
    (200, '{"unexpected": 1}', "without a usable token"),
])
def test_token_server_errors_name_the_url(status, body, words):
    with token_server() as server:
        server.fail_with = (status, body)
        signer = PlanetaryComputerSigner(requests_fetcher(), server.token_url)
        with pytest.raises(HttpError) as raised:
            signer.sign(BLOB)
        assert f"{server.token_url}/sentinel2l2a01/sentinel2-l2" in str(raised.value)
        assert words in str(raised.value)
        if status != 200:
            assert raised.value.status == status


def test_signed_http_source_hides_the_signature():
    with token_server() as server:
        signer = PlanetaryComputerSigner(requests_fetcher(), server.token_url)
        source = gdal_source(BLOB, signer=signer)
    assert source.path.startswith(f"/vsicurl/{BLOB}?") and "sig=sentinel2l2a01" in source.path
    assert source.description == BLOB and "sentinel2l2a01-sentinel2" not in repr(source)


def test_parse_expiry():
    assert parse_expiry("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert parse_expiry("2024-05-01T10:00:00.1234567+02:00") == datetime(2024, 5, 1, 8, 0, 0, 123456,
                                                                          tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="tomorrow"):
        parse_expiry("tomorrow")


def test_bdc_token_only_goes_to_bdc_hosts():
    signer = BdcSigner(SECRET)
    href = "https://data.inpe.br/bdc/data/mod13q1/2014/NDVI.tif"
    assert signer.sign(href) == f"{href}?access_token={SECRET}"
    assert signer.sign(signer.sign(href)) == signer.sign(href)
    assert signer.sign(f"{href}?x=1") == f"{href}?x=1&access_token={SECRET}"
    for other in ("https://evil-inpe.br.example.com/a.tif", "https://example.com/a.tif", "/data/a.tif"):
        assert signer.sign(other) == other
    assert SECRET not in repr(signer)
    with pytest.raises(ValueError, match="empty"):
        BdcSigner("  ")


def test_signer_for_sources():
    fetch = requests_fetcher()
    pc = Source("PC", SourceKind.STAC_API, "https://pc.example/api", signing="planetary-computer")
    bdc = Source("BDC", SourceKind.STAC_API, "https://data.inpe.br/stac", signing="bdc")
    plain = Source("E84", SourceKind.STAC_API, "https://earth-search.example/v1")
    assert isinstance(signer_for(pc, fetch, None), PlanetaryComputerSigner)
    assert signer_for(bdc, fetch, "tok")("https://data.inpe.br/a.tif").endswith("access_token=tok")
    assert signer_for(plain, fetch, "tok") is None
    with pytest.raises(ValueError, match="access token"):
        signer_for(bdc, fetch, None)


def test_real_pc_item_hrefs_are_signed_per_container(shared_data):
    line = (shared_data / "stac" / "pc-sentinel-2-l2a-100-items.ndjson").read_text().splitlines()[0]
    item = json.loads(line)
    with token_server() as server:
        signer = PlanetaryComputerSigner(requests_fetcher(), server.token_url)
        for key in ("B04", "B08", "SCL"):
            href = item["assets"][key]["href"]
            source = gdal_source(href, signer=signer)
            assert source.path.startswith(f"/vsicurl/{href}?") and source.description == href
        assert len(server.requests) == 1 and sum(server.requests.values()) == 1
