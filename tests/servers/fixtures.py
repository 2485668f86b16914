"""Session fixtures for the real local servers, all loaded with the demo cube.

Each server starts once per test session on a random loopback port and is stopped (its whole process
group killed, its temp dir removed) at the end even when tests fail. A server that cannot start
raises with its own log: that is a broken environment, reported as an error, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .bdc_services import BdcServer, start_wlts, start_wtss
from .dask_cluster import start_bare_dask_cluster, start_dask_cluster
from .nginx import NginxServer, start_nginx
from .s3 import S3Server, demo_subset, start_s3
from .stac_light import StacLightServer, start_stac_light
from .stac_pgstac import StacFullServer, start_stac_full

if TYPE_CHECKING:
    from cubescope.plugin.demo import DemoCube


@pytest.fixture(scope="session")
def nginx_server(demo_cube: DemoCube) -> Iterator[NginxServer]:
    """The demo cube over HTTP with Range requests, like a public bucket of COGs and Zarr."""
    server = start_nginx(demo_cube.root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stac_api_light(demo_cube: DemoCube, nginx_server: NginxServer) -> Iterator[StacLightServer]:
    """rustac's STAC API (core search only) whose asset hrefs point at `nginx_server`."""
    server = start_stac_light(demo_cube.catalog, demo_cube.root, nginx_server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stac_api_full(demo_cube: DemoCube, nginx_server: NginxServer) -> Iterator[StacFullServer]:
    """stac-fastapi-pgstac (filter, query, sortby) whose asset hrefs point at `nginx_server`."""
    server = start_stac_full(demo_cube.catalog, demo_cube.root, nginx_server.url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(demo_cube: DemoCube) -> Iterator[S3Server]:
    """moto S3 with part of the demo cube (keys are paths relative to the demo root)."""
    server = start_s3(demo_cube.root, demo_subset(demo_cube.root, demo_cube.catalog))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler address of a two-process Dask cluster on loopback."""
    cluster = start_dask_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def dask_cluster_without_cubescope(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler address of a two-process Dask cluster whose Python has odc-stac but not Cubescope."""
    cluster = start_bare_dask_cluster(tmp_path_factory.mktemp("bare-dask"))
    try:
        yield cluster.address
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def wtss_server(demo_cube: DemoCube) -> Iterator[BdcServer]:
    """A WTSS v2 server (brazil-data-cube/wtss-spec) whose coverage is the demo's Sentinel-2 COGs."""
    server = start_wtss(demo_cube.root / "stac")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def wlts_server(demo_cube: DemoCube) -> Iterator[BdcServer]:
    """A WLTS server (brazil-data-cube/wlts-spec) whose collection is the demo's land-cover map."""
    server = start_wlts(demo_cube.root / "stac")
    try:
        yield server
    finally:
        server.stop()
