"""Header files carry HTTP auth headers to GDAL: their paths, their privacy and lifetime, and GDAL
sending them to a real server that refuses requests without the right header."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from osgeo import gdal
from protected_assets import ITEM_DIR, TOKEN, local_pixels
from token_server import token_server

from cubescope.plugin.cube.header_files import HeaderFiles
from cubescope.plugin.gui.layer_loader import gdal_prefix
from cubescope.plugin.stac.gdal_env import gdal_config
from cubescope.plugin.stac.hrefs import (
    gdal_source,
    plain_url,
    redact,
    redact_text,
    vsicurl_options,
    vsicurl_with_header_file,
)


def test_header_file_paths_parse_back_to_the_plain_url():
    url = "https://data.example.com/cat/a b/red.tif?sig=SECRETSIG&v=2"
    path = vsicurl_with_header_file(url, "/tmp/cubescope-headers-x/headers-1.txt")
    assert path.startswith("/vsicurl?header_file=%2Ftmp%2Fcubescope-headers-x%2Fheaders-1.txt&")
    assert path.endswith("&url=" + quote(url, safe=""))
    assert vsicurl_options(path) == {"header_file": "/tmp/cubescope-headers-x/headers-1.txt", "list_dir": "no",
                                     "url": url}
    assert plain_url(path) == url and plain_url(f"/vsicurl/{url}") == url
    assert redact(path) == "https://data.example.com/cat/a b/red.tif?sig=…&v=2"
    zarr = f'ZARR:"{vsicurl_with_header_file("http://h/x.zarr", "/tmp/h.txt")}":/red:0'
    assert vsicurl_options(zarr)["url"] == "http://h/x.zarr"
    message = f"`{path}' not recognized as a supported file format. Also {zarr}."
    assert redact_text(message) == ("`https://data.example.com/cat/a b/red.tif?sig=…&v=2' not recognized as a "
                                    'supported file format. Also ZARR:"http://h/x.zarr":/red:0.')
    # Options are scoped to the header file and the host, as a prefix of the path GDAL is given.
    prefix = gdal_prefix(path)
    assert path.startswith(prefix) and prefix.endswith("&url=" + quote("https://data.example.com/", safe=""))
    assert gdal_prefix(zarr) == gdal_prefix(vsicurl_with_header_file("http://h/y.zarr", "/tmp/h.txt"))


def test_header_files_are_private_reused_and_removed():
    files = HeaderFiles()
    try:
        first = files.path_for("cfg1", {"X-API-Key": TOKEN})
        assert files.path_for("cfg1", {"X-API-Key": TOKEN}) == first  # one file for many layers
        assert Path(first).read_text() == f"X-API-Key: {TOKEN}\n"
        other_config = files.path_for("cfg2", {"X-API-Key": TOKEN})
        assert other_config != first  # one file per auth configuration
        renewed = files.path_for("cfg1", {"X-API-Key": TOKEN + "2"})  # a renewed token: same file, new content
        assert renewed == first and Path(first).read_text() == f"X-API-Key: {TOKEN}2\n"
        assert Path(other_config).read_text() == f"X-API-Key: {TOKEN}\n"
        files.path_for("cfg1", {"X-API-Key": TOKEN})
        assert stat.S_IMODE(os.stat(first).st_mode) == 0o600
        directory = Path(first).parent
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and Path(other_config).parent == directory
        assert sorted(p.name for p in directory.iterdir()) == sorted({Path(first).name, Path(other_config).name})
        os.remove(first)  # e.g. a temp cleaner: the next use writes it again
        again = files.path_for("cfg1", {"X-API-Key": TOKEN})
        assert Path(again).read_text() == f"X-API-Key: {TOKEN}\n"
        with pytest.raises(ValueError, match="line break"):
            files.path_for("cfg1", {"X-API-Key": "a\r\nX-Injected: 1"})
    finally:
        files.remove_all()
    assert not directory.exists()


def test_header_files_are_gone_when_the_process_exits():
    """A real interpreter writes a header file and exits: atexit removes it (and needs no QGIS or GDAL)."""
    script = ("import os, stat, sys\n"
              "from cubescope.plugin.cube.header_files import header_file\n"
              f"path = header_file('cfg', {{'X-API-Key': {TOKEN!r}}})\n"
              "print(path, oct(stat.S_IMODE(os.stat(path).st_mode)), 'qgis' in sys.modules, 'osgeo' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "build" / "pkg")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    path, mode, qgis_imported, gdal_imported = done.stdout.split()
    assert mode == "0o600" and (qgis_imported, gdal_imported) == ("False", "False")
    assert not Path(path).exists() and not Path(path).parent.exists()


def test_gdal_sends_the_header_file_of_the_path(demo_cube):
    """GDAL 3.6 honours /vsicurl?header_file=: X-API-Key reaches the server from the file, not from an option."""
    with token_server(demo_cube.root, api_key=TOKEN) as server:
        url = server.files_url(f"{ITEM_DIR}/red.tif")
        files = HeaderFiles()
        try:
            denied = gdal.Open(f"/vsicurl/{url}")
            assert denied is None and server.served(401) >= 1
            gdal.VSICurlPartialClearCache(f"/vsicurl/{url}")  # GDAL remembers refusals by URL
            wrong = gdal.Open(vsicurl_with_header_file(url, files.path_for("x", {"X-API-Key": "wrong"})))
            assert wrong is None and server.served(403) >= 1
            gdal.VSICurlPartialClearCache(f"/vsicurl/{url}")
            source = gdal_source(url, header_file=files.path_for("x", {"X-API-Key": TOKEN}))
            assert "GDAL_HTTP_HEADERS" not in source.config and TOKEN not in source.path + repr(source)
            assert source.description == url and url in repr(source) and "header_file" not in repr(source)
            with gdal_config(source.config):
                dataset = gdal.Open(source.path)
                assert dataset is not None, gdal.GetLastErrorMsg()
                pixels = dataset.GetRasterBand(1).ReadAsArray()
                dataset = None
            np.testing.assert_array_equal(pixels, local_pixels(demo_cube, "red"))
        finally:
            files.remove_all()
