"""Private files of HTTP headers for GDAL's ``/vsicurl?header_file=<file>&url=<url>`` paths.

QGIS renders a layer from its path alone, and GDAL 3.6 ignores ``GDAL_HTTP_HEADERS`` set for a
/vsicurl/ path prefix; a header file named in the path is read by GDAL at every request. So the
secret (an API key, a Basic or Bearer ``Authorization``) is written to disk, but only here: one
private directory per process (0700, ``tempfile.mkdtemp``), files 0600 (``tempfile.mkstemp``), one
per (auth configuration, header set) however many layers use it, all removed when the plugin unloads
or the process exits. Paths go into layer sources and projects; the headers never do.
No QGIS and no GDAL here.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping

from ..stac.hrefs import headers_option

_PREFIX = "cubescope-headers-"


class HeaderFiles:
    """The header files of one process; safe to use from several threads."""

    def __init__(self) -> None:
        self._directory = ""
        self._files: dict[tuple[str, str], str] = {}
        """(authcfg, digest of the headers) -> file; a digest, so the values are not kept twice."""
        self._lock = threading.Lock()

    def path_for(self, authcfg: str, headers: Mapping[str, str]) -> str:
        """The file holding ``headers`` (``Name: value`` lines), written on first use or if deleted."""
        if not headers:
            raise ValueError("A header file needs at least one header")
        # Latin-1 both ways: the auth manager's header bytes are decoded as Latin-1 (network.auth_headers).
        text = (headers_option(headers).replace("\r\n", "\n") + "\n").encode("latin-1")
        key = (authcfg, hashlib.sha256(text).hexdigest())
        with self._lock:
            path = self._files.get(key)
            if path is None or not os.path.isfile(path):
                path = self._write(text)
                self._files[key] = path
            return path

    def _write(self, content: bytes) -> str:
        if not self._directory or not os.path.isdir(self._directory):
            self._directory = tempfile.mkdtemp(prefix=_PREFIX)  # 0700: only this user can list it
        descriptor, path = tempfile.mkstemp(prefix="headers-", suffix=".txt", dir=self._directory)  # 0600
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        return path

    def remove_all(self) -> None:
        """Delete every file and the directory; layers still using them can no longer authenticate."""
        with self._lock:
            if self._directory:
                shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = ""
            self._files.clear()


_FILES = HeaderFiles()
atexit.register(_FILES.remove_all)


def header_file(authcfg: str, headers: Mapping[str, str]) -> str:
    """This process's private file of ``headers`` for the auth configuration ``authcfg``."""
    return _FILES.path_for(authcfg, headers)


def remove_header_files() -> None:
    """Called when the plugin unloads (and at exit): no secret outlives the session on disk."""
    _FILES.remove_all()
