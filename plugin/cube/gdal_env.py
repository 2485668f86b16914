"""GDAL options and datasets scoped to the calling thread, with errors in the user's words.

QGIS and other plugins share this process and its GDAL: options are set thread-locally (never
globally) and restored afterwards, and ``gdal.UseExceptions()`` is never called, since it would change
GDAL's behaviour for every plugin. Both error conventions are handled, in case someone else did call it.
GDAL dataset handles are not thread-safe: open one per thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from osgeo import gdal

from ..stac.hrefs import GdalSource, vsicurl_options


class GdalOpenError(Exception):
    """GDAL could not open or read a source; the message names it and carries GDAL's reason."""

    #: GDAL's VSI error number (VSIE_* of cpl_vsi_error.h) when an object store refused a read, so
    #: callers can tell a missing bucket from refused keys without parsing GDAL's English.
    vsi_error: int | None = None
    #: GDAL's own reason alone, without the name of the source.
    reason: str = ""


@contextmanager
def gdal_config(options: Mapping[str, str]) -> Iterator[None]:
    """Set GDAL config options for this thread only, restoring the previous values on exit.

    Options read at request time (HTTP headers, S3 endpoint and keys) must stay set while reading,
    not only while opening: keep the dataset's whole use inside this block.
    """
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    try:
        for key, value in options.items():
            gdal.SetThreadLocalConfigOption(key, str(value))
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


def forget_refusals(paths: Iterable[str]) -> None:
    """Drop what GDAL remembers about the URLs of ``/vsicurl?header_file=`` paths.

    GDAL keeps a URL's answer (existence, size, bytes) by URL, whatever header file the path names:
    a 401 answered before the header file existed (a project opened before its files were recreated,
    a source given its auth configuration later) would keep the URL unreadable all session.
    """
    for path in paths:
        url = vsicurl_options(path).get("url")
        if url:
            gdal.VSICurlPartialClearCache(f"/vsicurl/{url}")


def _last_error(default: str) -> str:
    return gdal.GetLastErrorMsg() or default


def open_raster(source: GdalSource, update: bool = False) -> gdal.Dataset:
    """``gdal.OpenEx`` of a raster; call it inside ``gdal_config(source.config)``.

    Raises GdalOpenError naming ``source.description`` instead of returning None.
    """
    flags = gdal.OF_RASTER | (gdal.OF_UPDATE if update else gdal.OF_READONLY)
    gdal.ErrorReset()
    try:
        dataset = gdal.OpenEx(source.path, flags)
    except RuntimeError as error:  # someone enabled gdal.UseExceptions() in this process
        raise GdalOpenError(f"Cannot open {source.description or source.path}: {error}") from error
    if dataset is None:
        reason = _last_error("GDAL could not open it (not found, not a raster, or access denied)")
        raise GdalOpenError(f"Cannot open {source.description or source.path}: {reason}")
    return dataset


@contextmanager
def opened(source: GdalSource, update: bool = False) -> Iterator[gdal.Dataset]:
    """The dataset of ``source`` with its options set for this thread while the block runs.

    Do not keep the dataset beyond the block: later reads would run without the options.
    """
    with gdal_config(source.config):
        yield open_raster(source, update)


def read_array(band: gdal.Band, description: str):
    """``band.ReadAsArray()`` raising GdalOpenError (with GDAL's reason) instead of returning None."""
    gdal.ErrorReset()
    try:
        data = band.ReadAsArray()
    except RuntimeError as error:
        raise GdalOpenError(f"Cannot read {description}: {error}") from error
    if data is None:
        raise GdalOpenError(f"Cannot read {description}: {_last_error('read failed')}")
    return data


#: VSIE_ObjectNotFound (VSIE_AWSObjectNotFound) of cpl_vsi_error.h, not exposed by the 3.6 bindings.
_VSIE_OBJECT_NOT_FOUND = 8
#: VSIE_HttpError: GDAL 3.10 reports a missing key with it ("HTTP response code: 404") when threads open
#: keys of the same prefix at once, as zarr 3 does when it probes zarr.json, .zgroup and .zmetadata.
_VSIE_HTTP_ERROR = 2


def read_vsi_file(path: str, options: Mapping[str, str], description: str = "") -> bytes | None:
    """The whole content of a small GDAL virtual file (a Zarr chunk), or None when it does not exist.

    Object stores report why an open failed: a missing key is None (Zarr reads it as the fill
    value) but a missing bucket or refused credentials raise GdalOpenError with GDAL's reason.
    """
    with gdal_config(options):
        gdal.VSIErrorReset()
        handle = gdal.VSIFOpenExL(path, "rb", True)
        if handle is None:
            number, message = gdal.VSIGetLastErrorNo(), gdal.VSIGetLastErrorMsg()
            if number in (0, _VSIE_OBJECT_NOT_FOUND) or (
                    number == _VSIE_HTTP_ERROR and message.rstrip().endswith(("code: 404", "code: 410"))):
                return None
            error = GdalOpenError(f"Cannot read {description or path}: {message}")
            error.vsi_error, error.reason = number, message
            raise error
        try:
            gdal.VSIFSeekL(handle, 0, 2)
            size = gdal.VSIFTellL(handle)
            gdal.VSIFSeekL(handle, 0, 0)
            return bytes(gdal.VSIFReadL(1, size, handle)) if size else b""
        finally:
            gdal.VSIFCloseL(handle)


def list_vsi_dir(path: str, options: Mapping[str, str]) -> list[str]:
    """Names in a GDAL virtual directory (an object-store prefix); empty when there are none."""
    with gdal_config(options):
        return [name for name in gdal.ReadDir(path) or [] if name not in (".", "..")]
