"""Benchmark fixtures: the data set (written once), nginx over it, and a 25 ms-each-way proxy in front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench_data import BenchData, ensure_bench_data
from latency_proxy import LatencyProxy
from servers.nginx import NginxServer, start_nginx

#: One way; a round trip costs twice this, as from a European desktop to a US bucket and back.
DELAY_S = 0.025


@pytest.fixture(scope="session")
def bench_data() -> BenchData:
    return ensure_bench_data()


@pytest.fixture(scope="session")
def bench_nginx(bench_data: BenchData) -> Iterator[NginxServer]:
    server = start_nginx(bench_data.root, probe="index.html")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def slow_link(bench_nginx: NginxServer) -> Iterator[LatencyProxy]:
    """A fresh proxy per benchmark: no connection survives from one measurement to the next."""
    host, port = bench_nginx.url.rsplit("//", 1)[1].split(":")
    with LatencyProxy(host, int(port), DELAY_S) as proxy:
        yield proxy
