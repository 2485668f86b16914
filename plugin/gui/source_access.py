"""The current source's access to its assets (URL signer, S3 keys, auth headers), read from the QGIS
authentication manager on the GUI thread and kept while that source stays selected.

Why read here and hand the result to tasks: QGIS 3.22's auth manager can deadlock when the GUI thread
loads a configuration while a worker thread uses it, so background tasks only get what was read.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QObject, QTimer

from ..network import AssetAccess, asset_access, refresh_header_files
from ..stac.sources import Source

CREDENTIALS_REFRESH_MS = 5 * 60 * 1000
"""How often header files are rewritten from the auth manager (OAuth2 tokens live about an hour)."""


class SourceAccess(QObject):
    """One source's :class:`AssetAccess` at a time; header files of open layers are refreshed on a
    timer (an OAuth2 token QGIS renewed reaches the layers already loaded)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._read: tuple[Source, AssetAccess] | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(CREDENTIALS_REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def of(self, source: Source) -> AssetAccess:
        """GUI thread: the signer and keys of ``source``, read once while it stays the one asked for
        (tokens are cached). Raises ValueError or PermissionError for an unusable configuration."""
        access = self.already_read(source)
        if access is None:
            access = asset_access(source)
            self._read = (source, access)
        return access

    def already_read(self, source: Source | None) -> AssetAccess | None:
        """What :meth:`of` read for ``source``; None if nothing was."""
        if self._read is None or self._read[0] is not source:
            return None
        return self._read[1]

    def keys(self, source: Source | None) -> dict[str, str] | None:
        """The S3 keys already read for ``source``, for its background tasks: None lets a Zarr task
        read them itself; a static catalog goes unsigned."""
        access = self.already_read(source)
        return access.credentials if access is not None else None

    def headers(self, source: Source | None) -> dict[str, str] | None:
        """The auth headers already read for ``source`` (a protected Zarr store on http)."""
        access = self.already_read(source)
        return (access.headers or None) if access is not None else None

    def refresh(self) -> list[str]:
        """Apply the auth configurations again (GUI thread): rewrite changed header files and forget
        the cached access of a source whose configuration changed, so its next task reads it anew."""
        changed = refresh_header_files()
        if self._read is not None and self._read[0].authcfg in changed:
            self._read = None
        return changed
