"""The demo item behind the protected test server: where it is, the token guarding it, the auth
methods that send the token, and the pixels the protected copy must give (the local ones).

Also the fixtures of the tests that use it (the auth method, the server, its auth config, the layers a
test makes): ``conftest.py`` registers this module as a pytest plugin, so test modules take them by
name without importing them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qgis.core import Qgis, QgsApplication, QgsRasterLayer
from qgis.PyQt import sip
from qgis_auth import store_auth_config
from token_server import TokenServer, token_server

from cubescope.plugin.stac.gdal_env import opened, read_array
from cubescope.plugin.stac.hrefs import gdal_source
from cubescope.plugin.stac.sources import Source, SourceKind

TOKEN = "T0ken-That-Must-Never-Leak-4d1f"
ITEM_DIR = "stac/demo-s2-l2a/S2A_MSIL2A_20240418T092029_R093_T34TGR"
ZARR = "zarr/demo-s2-l2a-34TGR.zarr"
BANDS = ("red", "green", "blue")
#: QGIS 3.22's header methods: EsriToken sends an API token in its own header, Basic an Authorization.
METHODS = {
    "EsriToken": ({"token": TOKEN}, "X-Esri-Authorization", f"Bearer {TOKEN}"),
    "Basic": ({"username": "cubescope", "password": TOKEN}, "Authorization",
              "Basic " + base64.b64encode(f"cubescope:{TOKEN}".encode()).decode()),
}


def _item_path(demo_cube) -> Path:
    return demo_cube.root / ITEM_DIR / f"{ITEM_DIR.rsplit('/', 1)[1]}.json"


def protected_item(demo_cube, server: TokenServer) -> dict:
    """The demo item with absolute asset hrefs on the protected server."""
    item = json.loads(_item_path(demo_cube).read_text())
    for asset in item["assets"].values():
        asset["href"] = server.files_url(f"{ITEM_DIR}/{Path(asset['href']).name}")
    item["links"] = []
    return item


def local_item(demo_cube) -> dict:
    """The demo item as its static catalog has it (relative hrefs, resolved from its self link)."""
    path = _item_path(demo_cube)
    item = json.loads(path.read_text())
    item["links"] = [{"rel": "self", "href": str(path)}]
    return item


def source_for(server: TokenServer, authcfg: str = "") -> Source:
    return Source(name="Protected assets", kind=SourceKind.STAC_API, url=f"{server.url}/stac", authcfg=authcfg)


def local_pixels(demo_cube, band: str) -> np.ndarray:
    source = gdal_source(str(demo_cube.root / ITEM_DIR / f"{band}.tif"))
    with opened(source) as dataset:
        return read_array(dataset.GetRasterBand(1), source.description)


# --- fixtures (conftest registers this module as a pytest plugin) -------------------------------

@pytest.fixture(params=sorted(METHODS))
def method(request) -> str:
    return request.param


@pytest.fixture()
def protected(demo_cube, method) -> Iterator[TokenServer]:
    """The demo cube under /files/, only for requests carrying the header ``method`` sends."""
    _values, header, value = METHODS[method]
    with token_server(demo_cube.root, api_key=value, api_header=header) as server:
        yield server


@pytest.fixture()
def secrets(method) -> tuple[str, ...]:
    """What must never leak: the token and the header value carrying it (Basic: base64 of user:token)."""
    return TOKEN, METHODS[method][2].split()[-1]


@pytest.fixture()
def authcfg(qgis_app, method) -> Iterator[str]:
    config_id = store_auth_config(method, f"protected assets ({method})", METHODS[method][0])
    yield config_id
    QgsApplication.authManager().removeAuthenticationConfig(config_id)


@pytest.fixture()
def track() -> Iterator[Callable[[QgsRasterLayer], QgsRasterLayer]]:
    """Layers a test makes are deleted when it ends, even when it fails: a failed test's traceback
    would keep them alive past QGIS's exit, which crashes and hides the report."""
    made: list[QgsRasterLayer] = []
    yield lambda layer: made.append(layer) or layer
    for layer in made:
        if not sip.isdeleted(layer):
            sip.delete(layer)


def layer_pixels(layer: QgsRasterLayer, band: int = 1) -> np.ndarray:
    """A band as QGIS's GDAL provider reads it (the path QGIS renders from, in QGIS's thread)."""
    provider = layer.dataProvider()
    block = provider.block(band, layer.extent(), layer.width(), layer.height())
    # the demo's COGs and Zarr
    dtype = {Qgis.DataType.UInt16: np.uint16, Qgis.DataType.Float32: np.float32}[block.dataType()]
    assert block.isValid()
    return np.frombuffer(bytes(block.data()), dtype=dtype).reshape(layer.height(), layer.width())


def new_requests(server: TokenServer, since: int) -> list[int]:
    with server.lock:
        return [status for _, _, status in server.file_requests[since:]]
