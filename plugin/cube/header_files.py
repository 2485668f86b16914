"""Private files of HTTP headers for GDAL's ``/vsicurl?header_file=<file>&url=<url>`` paths.

QGIS renders a layer from its path alone, and GDAL 3.6 ignores ``GDAL_HTTP_HEADERS`` set for a
/vsicurl/ path prefix; a header file named in the path is read by GDAL at every request. So the
secret (an API key, a Basic or Bearer ``Authorization``) is written to disk, but only here: one
private directory per process (0700, ``tempfile.mkdtemp``), files 0600 (``tempfile.mkstemp``), one
per auth configuration however many layers use it, all removed when the plugin unloads or the
process exits. Paths go into layer sources and projects; the headers never do. When the headers
change (an OAuth2 token refreshed) the file keeps its path and gets the new content, replaced
atomically: layers already open send the new token with their next request.
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
        self._files: dict[str, tuple[str, str]] = {}
        """authcfg -> (file, digest of its content); a digest, so the values are not kept twice."""
        self._lock = threading.Lock()

    def path_for(self, authcfg: str, headers: Mapping[str, str]) -> str:
        """The file holding ``headers`` (``Name: value`` lines) for ``authcfg``: written on first
        use or if deleted, and rewritten in place (same path) when the headers changed."""
        if not headers:
            raise ValueError("A header file needs at least one header")
        # Latin-1 both ways: the auth manager's header bytes are decoded as Latin-1 (network.auth_headers).
        text = (headers_option(headers).replace("\r\n", "\n") + "\n").encode("latin-1")
        digest = hashlib.sha256(text).hexdigest()
        with self._lock:
            path, written = self._files.get(authcfg, ("", ""))
            if not path or not os.path.isfile(path) or written != digest:
                path = self._write(text, path if path and os.path.isfile(path) else "")
                self._files[authcfg] = (path, digest)
            return path

    def digest(self, authcfg: str) -> str:
        with self._lock:
            return self._files.get(authcfg, ("", ""))[1]

    def _write(self, content: bytes, replace: str = "") -> str:
        if not self._directory or not os.path.isdir(self._directory):
            self._directory = tempfile.mkdtemp(prefix=_PREFIX)  # 0700: only this user can list it
        descriptor, path = tempfile.mkstemp(prefix="headers-", suffix=".txt", dir=self._directory)  # 0600
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        if replace:  # GDAL reads the file at each request: it sees the old or the new one, never half
            os.replace(path, replace)
            return replace
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


def header_file_digest(authcfg: str) -> str:
    """A digest of the headers in ``authcfg``'s file ('' if none): tells when they changed."""
    return _FILES.digest(authcfg)


def remove_header_files() -> None:
    """Called when the plugin unloads (and at exit): no secret outlives the session on disk."""
    _FILES.remove_all()
