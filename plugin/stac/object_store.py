"""Static STAC catalogs kept in object stores (``s3://``, ``gs://``, ``az://``), read through GDAL.

The catalog walker only knows Fetchers, and neither QGIS's network stack nor `requests` can read an
``s3://`` URL or sign an S3 request. GDAL already reads the assets of such catalogs with the source's
endpoint, region and keys (`hrefs.gdal_source`), so the JSON documents go the same way: one mapping,
one set of options, and a bucket GDAL can read (a Copernicus DIAS store, requester-pays AWS) is a
catalog the dock can browse. Every other URL goes on to the wrapped HTTP fetcher unchanged.

Pure: no QGIS; GDAL is imported on the first object-store read only, so the rest of the STAC layer
does without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .hrefs import gdal_source
from .http import Fetcher, HttpError, Response, error_from_response

if TYPE_CHECKING:
    from .s3_options import S3Options

#: Schemes read through GDAL's object-store handlers (the same set `hrefs.gdal_source` maps).
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")

# VSIE_* numbers of GDAL's cpl_vsi_error.h (not exposed by the 3.6 bindings), with the HTTP status
# S3 answered and our words.
_VSIE_OBJECT_NOT_FOUND = 8
_VSI_ERRORS: dict[int, tuple[int, str, str]] = {
    6: (403, "Forbidden", "access denied to the bucket or object"),
    7: (404, "Not Found", "no such bucket"),
    _VSIE_OBJECT_NOT_FOUND: (404, "Not Found", "no such object in the bucket"),
    9: (403, "Forbidden", "the access key was refused"),
    10: (403, "Forbidden", "the secret key does not match the access key"),
}
#: VSIE_HttpError: an answer without an S3 error document (a 403 to an unsigned request, a 5xx).
_VSIE_HTTP_ERROR = 2
_HTTP_CODE = re.compile(r"HTTP response code: (\d{3})\b")

#: Names of GDAL options whose values are secrets, blanked out of any message.
_SECRET_OPTION = re.compile(r"KEY|SECRET|TOKEN|SAS|PASSWORD|SESSION|CONNECTION_STRING", re.IGNORECASE)


def is_object_store_url(url: str) -> bool:
    """True for ``s3://bucket/key`` and the other object-store URLs GDAL reads."""
    return urlsplit(url.strip()).scheme.lower() in OBJECT_STORE_SCHEMES


class ObjectStoreFetcher:
    """A Fetcher that GETs object-store URLs with GDAL and hands every other request to `fallback`.

    `s3` and `credentials` are the source's, as for its assets; `options` (the QGIS proxy and timeout,
    see `hrefs.gdal_http_config`) are merged last. Keys stay in memory: never in `repr` or messages.
    GDAL reads cannot be cancelled midway; the per-request `timeout_s` bounds them instead.
    """

    def __init__(
        self,
        fallback: Fetcher,
        s3: S3Options | None = None,
        credentials: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.fallback = fallback
        self.s3 = s3
        self._credentials = dict(credentials or {})
        self._options = dict(options or {})

    def __repr__(self) -> str:
        return f"ObjectStoreFetcher(fallback={self.fallback!r}, s3={self.s3!r}, " \
               f"credentials={sorted(self._credentials)!r})"

    def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Response:
        if not is_object_store_url(url):
            return self.fallback(method, url, json_body=json_body, headers=headers, timeout_s=timeout_s)
        if method.upper() != "GET":
            raise HttpError(method, url, problem=f"cannot {method} an object in a bucket")
        return read_object(url, s3=self.s3, credentials=self._credentials,
                           options={"GDAL_HTTP_TIMEOUT": str(max(1, round(timeout_s))), **self._options})


def read_object(
    url: str,
    *,
    s3: S3Options | None = None,
    credentials: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
) -> Response:
    """The object at `url` as a Response, or an HttpError naming `url` (never a key) and the reason.

    Always read afresh, as an HTTP fetcher would: GDAL keeps what it read (and what it found
    missing) for the whole QGIS session, whatever the keys, so a catalog updated in its bucket would
    otherwise stay old, or a bucket read with one source's keys be answered from memory for another.
    """

    from .gdal_env import GdalOpenError, read_vsi_file

    url = url.strip()
    try:
        source = gdal_source(url, s3=s3, credentials=credentials, options=options)
    except ValueError as error:  # s3:// without a bucket
        raise HttpError("GET", url, problem=str(error)) from None
    # Read afresh, not from GDAL's cache (an edited catalog; another source's keys), without clearing
    # that cache process-wide while other threads read through it.
    config = {**source.config, "CPL_VSIL_CURL_NON_CACHED": source.path}
    try:
        content = read_vsi_file(source.path, config, url)
    except GdalOpenError as error:
        raise _error(url, error.vsi_error, error.reason or str(error), credentials or {}) from None
    if content is None:  # read_vsi_file's answer for a missing key (Zarr reads it as the fill value)
        raise _error(url, _VSIE_OBJECT_NOT_FOUND, "", {})
    path = urlsplit(url).path.lower()
    content_type = "application/json" if path.endswith((".json", ".geojson")) else ""
    return Response(url, 200, {"content-type": content_type}, content, "GET")


def _error(url: str, number: int | None, reason: str, credentials: Mapping[str, str]) -> HttpError:
    """The HttpError for a failed read: an S3 error code becomes its HTTP status, so hints and
    broken-link handling (a missing item is skipped, not fatal) work as for catalogs over HTTP."""
    message = _without_secrets(reason, credentials)
    if number in _VSI_ERRORS:
        status, phrase, problem = _VSI_ERRORS[number]
        return HttpError("GET", url, status, problem, reason=phrase,
                         server_message=message if message.lower() != problem else "")
    code = _HTTP_CODE.fullmatch(message) if number == _VSIE_HTTP_ERROR else None
    if code:  # GDAL's whole message is the status: say it as for catalogs over HTTP
        return error_from_response("GET", url, int(code.group(1)), "", b"")
    return HttpError("GET", url, None, message or "GDAL could not read it")


def _without_secrets(text: str, credentials: Mapping[str, str]) -> str:
    """`text` with the value of any secret option replaced, should GDAL ever quote one."""
    for name, value in credentials.items():
        if value and len(value) >= 4 and _SECRET_OPTION.search(name):
            text = text.replace(value, "…")
    return text.strip()
