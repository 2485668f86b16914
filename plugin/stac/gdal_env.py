"""GDAL options and datasets scoped to the calling thread, with errors in the user's words.

QGIS and other plugins share this process and its GDAL: options are set thread-locally (never
globally) and restored afterwards, and ``gdal.UseExceptions()`` is never called, since it would change
GDAL's behaviour for every plugin. Both error conventions are handled, in case someone else did call it.
GDAL dataset handles are not thread-safe: open one per thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from osgeo import gdal

from .hrefs import GdalSource, vsicurl_options


class GdalOpenError(Exception):
    """GDAL could not open or read a source; the message names it and carries GDAL's reason."""

    #: GDAL's VSI error number (VSIE_* of cpl_vsi_error.h) when an object store refused a read, so
    #: callers can tell a missing bucket from refused keys without parsing GDAL's English.
    vsi_error: int | None = None
    #: GDAL's own reason alone, without the name of the source.
    reason: str = ""


#: Set with every thread-local configuration (see gdal_config).
THREAD_LOCAL_DEFAULTS = {"GDAL_NUM_THREADS": "1"}


@contextmanager
def gdal_config(options: Mapping[str, str]) -> Iterator[None]:
    """Set GDAL config options for this thread only, restoring the previous values on exit.

    Options read at request time (HTTP headers, S3 endpoint and keys) must stay set while reading,
    not only while opening: keep the dataset's whole use inside this block.

    GDAL's own threads are off unless ``options`` ask for them (GDAL_NUM_THREADS): a GDAL worker thread
    does not see this thread's options, so GDAL 3.13's Zarr driver, which reads coordinate arrays
    and chunks on its worker pool, asked S3 for them without the keys ("URL rejected: Bad path").
    """
    options = {**THREAD_LOCAL_DEFAULTS, **options}
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    try:
        for key, value in options.items():
            gdal.SetThreadLocalConfigOption(key, str(value))
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


_ZARR_STORE = re.compile(r'^ZARR:"([^"]+)"')
#: Options GDAL reads at each request (object store keys and endpoints, HTTP headers and auth).
_REQUEST_OPTION_PREFIXES = ("AWS_", "GDAL_HTTP_", "AZURE_", "GS_", "OSS_", "SWIFT_", "CPL_AWS_", "CPL_GS_")


def share_with_gdal_threads(path: str) -> None:
    """Give this thread's request options to GDAL's own threads, for the Zarr store of ``path`` only.

    GDAL 3.13's Zarr driver reads a store's coordinate arrays and chunks in its worker threads, which
    do not see this thread's options: on S3 it asked for them without the keys ("URL rejected: Bad
    path", no georeferencing). Path-specific options reach those threads for paths under the store
    alone: kept in memory, never written, never sent to another host (as the layers' own are).
    """
    store = _ZARR_STORE.match(path)
    if not store or not hasattr(gdal, "GetConfigOptions"):  # GDAL < 3.7 has no worker-thread reads there
        return
    prefix = store.group(1).rstrip("/") + "/"
    # This thread's options and the global ones, as GDAL itself would see them here.
    for key, value in (gdal.GetConfigOptions() or {}).items():
        if key.startswith(_REQUEST_OPTION_PREFIXES) and value is not None:
            gdal.SetPathSpecificOption(prefix, key, value)


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


def open_saying_why(path: str) -> tuple[gdal.Dataset | None, str]:
    """(the raster at ``path``, "") or (None, GDAL's reason): with OF_VERBOSE_ERROR GDAL says an HTTP 404
    rather than "not recognised". GDAL remembers a URL that failed for the session and then only says
    it "does not exist": such a URL is asked once more, afresh, for the server's status (a request only
    for a file that already failed). Call it inside the options of ``path`` (gdal_config)."""
    dataset, message = _open_verbose(path)
    if dataset is None and path.startswith("/vsicurl") and "HTTP" not in message:
        gdal.VSICurlPartialClearCache(path)
        dataset, message = _open_verbose(path)
    return dataset, message


def _open_verbose(path: str) -> tuple[gdal.Dataset | None, str]:
    gdal.ErrorReset()
    try:
        dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY | gdal.OF_VERBOSE_ERROR)
    except RuntimeError as error:  # someone enabled gdal.UseExceptions()
        return None, str(error)
    return dataset, "" if dataset is not None else gdal.GetLastErrorMsg()


@contextmanager
def opened(source: GdalSource, update: bool = False) -> Iterator[gdal.Dataset]:
    """The dataset of ``source`` with its options set for this thread while the block runs.

    Do not keep the dataset beyond the block: later reads would run without the options.
    """
    with gdal_config(source.config):
        share_with_gdal_threads(source.path)
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
