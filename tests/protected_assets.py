"""The demo item behind the protected test server: where it is, the token guarding it, the auth
methods that send the token, and the pixels the protected copy must give (the local ones)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from token_server import TokenServer

from cubescope.plugin.cube.gdal_env import opened, read_array
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
