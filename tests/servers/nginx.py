"""nginx serving a directory over HTTP with Range requests, as a cloud bucket serves COGs and Zarr.

GDAL's `/vsicurl/` needs byte ranges (and merges them into multi-range requests), which Python's
`http.server` lacks; Debian's nginx-light has both and starts in milliseconds.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .ports import HOST, free_port, http_ok
from .process import ServerProcess, temp_dir

NGINX = Path("/usr/sbin/nginx")

# `max_ranges` is left unset on purpose: unset means any number of ranges per request.
_CONF = """\
worker_processes 2;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    types {{
        application/json json;
        application/geo+json geojson;
        image/tiff tif tiff;
        image/png png;
        image/jpeg jpg jpeg;
        text/plain txt;
    }}
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    server {{
        listen {host}:{port};
        root {root};
        location = /internal/status {{ return 200 "ok\\n"; }}
    }}
}}
"""


@dataclass
class NginxServer:
    """A running nginx: `url` serves `root` (e.g. `url + "/stac/catalog.json"`)."""

    url: str
    root: Path
    process: ServerProcess
    tmp: Path

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_nginx(root: Path, probe: str = "stac/catalog.json") -> NginxServer:
    """Serve `root`; ready once `probe` (a file under root) is answered, which proves workers can read it."""
    with ExitStack() as cleanup:
        tmp = temp_dir("nginx", cleanup)
        port = free_port()
        # Workers drop to `nobody` when the master runs as root and could not read a 0700 checkout.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = tmp / "nginx.conf"
        conf.write_text(_CONF.format(user=user, tmp=tmp, host=HOST, port=port, root=root.resolve()))
        argv = [NGINX, "-p", tmp, "-c", conf, "-e", tmp / "error.log", "-g", "daemon off;"]
        process = ServerProcess.start("nginx", argv, tmp / "stderr.log", extra_logs=(tmp / "error.log",))
        cleanup.callback(process.stop)
        url = f"http://{HOST}:{port}"
        process.wait_ready(lambda: http_ok(f"{url}/{probe}"))
        cleanup.pop_all()
    return NginxServer(url, root, process, tmp)
