"""The one place that turns an asset href into what GDAL opens, with the GDAL options it needs.

Hosts keep growing (HTTP, S3 with custom endpoints, signed URLs, Zarr arrays); keeping the mapping in
a single module means a new host type is taught once and every reader (layers, time series,
composites, Processing) gets it. Pure: no QGIS imports; GDAL itself is not imported either.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from .sites import within_auth_scope
from .zarr_hrefs import split_zarr_href

if TYPE_CHECKING:
    from .s3_options import S3Options

#: GDAL options for reading COGs and Zarr over HTTP with few round trips (../shared/ENVIRONMENT.md).
#: CPL_VSIL_CURL_ALLOWED_EXTENSIONS is deliberately absent: it hides Zarr chunk keys such as ``0.0``,
#: which GDAL then silently reads as the fill value.
HTTP_DEFAULTS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 1024 * 1024),
    # Asset reads retried by GDAL itself: 429, 500, 502, 503 and 504, after 0.5 s then about twice as
    # long (GDAL 3.6's backoff). GDAL 3.6 reads no Retry-After and knows no GDAL_HTTP_RETRY_CODES (newer
    # GDALs' default codes are these ones): catalog requests have their own policy (`retries`).
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_TIMEOUT": "30",
}

_URL_SCHEMES = ("http", "https")
#: Schemes urljoin does not know; relative hrefs against them are joined as POSIX paths.
_OBJECT_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
_SECRET_PARAMS = frozenset({"token", "access_token", "sig", "signature", "key", "api_key", "apikey", "code",
                            "x-amz-signature", "x-amz-credential", "x-amz-security-token", "skoid", "sktid"})
#: GDAL's option syntax for /vsicurl/: ``/vsicurl?name=value&...&url=<url-encoded URL>``.
VSICURL_OPTIONS = "/vsicurl?"
#: A /vsicurl? path inside a message (GDAL quotes paths with ` ' or ").
_VSICURL_IN_TEXT = re.compile(r"/vsicurl\?[^\s'\"`]+")
_HEADER_FILE_OPTION = re.compile(r"(/vsicurl\?header_file=)[^&\"]*")
_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@dataclass(frozen=True)
class GdalSource:
    """Something GDAL can open, and the options to set (thread-locally) while opening and reading it."""

    path: str
    """What ``gdal.Open`` or ``QgsRasterLayer(path, name, "gdal")`` gets."""
    config: dict[str, str] = field(default_factory=dict, hash=False)
    """GDAL config options (``gdal.SetThreadLocalConfigOption`` or ``rasterio.Env(**config)``); may hold
    credentials, so it is never shown in ``repr``."""
    description: str = ""
    """Where it came from, for messages: the original href, never a signature or a credential."""
    srs: str = ""
    """The CRS to take when the file declares none ("EPSG:32634" from the item: EOPF Zarr arrays)."""

    def __repr__(self) -> str:
        return f"GdalSource(path={redact_text(redact(self.path))!r}, config_keys={sorted(self.config)!r}, " \
               f"description={self.description!r})"


def redact(url: str) -> str:
    """``url`` with the values of secret-looking query parameters (SAS signatures, tokens) hidden.

    A ``/vsicurl?header_file=...`` path becomes the URL it reads: messages name what users know.
    """
    if url.startswith(VSICURL_OPTIONS):
        url = plain_url(url)
    head, sep, query = url.partition("?")
    if not sep:
        return url
    params = []
    for param in query.split("&"):
        name, eq, _value = param.partition("=")
        params.append(f"{name}=…" if eq and name.lower() in _SECRET_PARAMS else param)
    return f"{head}?{'&'.join(params)}"


def redact_text(text: str) -> str:
    """A message (GDAL's, QGIS's) with every ``/vsicurl?`` path in it replaced by its redacted URL."""
    return _VSICURL_IN_TEXT.sub(lambda match: redact(match.group(0)), text)


def vsicurl_with_header_file(url: str, header_file: str) -> str:
    """The GDAL path of ``url`` read with the HTTP headers kept in the file ``header_file``.

    QGIS opens a layer from its path alone, and GDAL 3.6 ignores ``GDAL_HTTP_HEADERS`` given as a
    path-specific option to /vsicurl/; the ``header_file`` option of the path itself is read by GDAL
    at each request, so the secret stays in that (private) file, never in the path or a project.
    ``list_dir=no``: without it GDAL 3.6 lists the "directory" of such a path, does not find the
    file in it and refuses to open it (checked with 3.6.2). ``url`` stays last: the Zarr driver
    appends its chunk keys to the path.
    """
    return (f"{VSICURL_OPTIONS}header_file={quote(header_file, safe='')}&list_dir=no"
            f"&url={quote(url, safe='')}")


def with_header_file(path: str, header_file: str) -> str:
    """``path`` (a /vsicurl? path, or a ZARR:"..." one around it) naming ``header_file`` instead of
    the header file it named; other paths unchanged. The URL and other options stay as they were."""
    return _HEADER_FILE_OPTION.sub(lambda m: f"{m.group(1)}{quote(header_file, safe='')}", path)


def _vsicurl_part(path: str) -> str:
    """The /vsicurl? path in ``path`` (itself, or the store of ``ZARR:"...":/var``), else ''."""
    inner = path.split('"')[1] if path.startswith('ZARR:"') and path.count('"') >= 2 else path
    return inner if inner.startswith(VSICURL_OPTIONS) else ""


def vsicurl_options(path: str) -> dict[str, str]:
    """The decoded options (``url``, ``header_file`` ...) of a ``/vsicurl?`` path; {} for other paths."""
    part = _vsicurl_part(path)
    options = {}
    for option in part[len(VSICURL_OPTIONS):].split("&") if part else ():
        name, _, value = option.partition("=")
        options[name] = unquote(value)
    return options


def plain_url(path: str) -> str:
    """The URL a /vsicurl/ or /vsicurl? path reads (for messages and provenance); other paths unchanged."""
    if path.startswith("/vsicurl/"):
        return path[len("/vsicurl/"):]
    return vsicurl_options(path).get("url", path) if path.startswith(VSICURL_OPTIONS) else path


#: ``ZARR:"<store>":/<variable>[:<index>]``, the href of a Zarr slice.
_ZARR_HREF = re.compile(r'^ZARR:"([^"]+)":/([^:"]+)(?::(\d+))?$')


def _scheme(href: str) -> str:
    """The URL scheme, or '' for local paths (including Windows drive letters such as ``C:\\``)."""
    scheme = urlsplit(href).scheme.lower()
    return "" if len(scheme) <= 1 else scheme


def _is_url(href: str) -> bool:
    return bool(_scheme(href))


def resolve_href(href: str, base: str | None = None) -> str:
    """``href`` made absolute against ``base``, the URL or path of the document that holds it.

    STAC items written as self-contained catalogs use ``./red.tif`` and ``../x/y.tif``; GDAL needs
    the absolute URL or path. Absolute hrefs and GDAL paths (``/vsi...``) are returned unchanged.
    """
    href = href.strip()
    if not href or _is_url(href) or href.startswith("/vsi") or os.path.isabs(href) or not base:
        return href
    scheme = _scheme(base)
    if scheme in _URL_SCHEMES or scheme == "file":
        return urljoin(base, href)
    if scheme:  # s3://bucket/key and friends: POSIX path arithmetic below the bucket
        parts = urlsplit(base)
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(parts.path), href))
        return urlunsplit((parts.scheme, parts.netloc, joined, "", ""))
    folder = base if base.endswith(("/", os.sep)) or Path(base).is_dir() else os.path.dirname(base)
    return os.path.normpath(os.path.join(folder, href))


def _file_path(file_url: str) -> str:
    """The filesystem path of a ``file://`` URL (``file:///C:/x`` becomes ``C:/x`` on Windows)."""
    path = unquote(urlsplit(file_url).path)
    if len(path) > 2 and path[0] == "/" and path[2] == ":":
        path = path[1:]
    return path


def gdal_http_config(
    proxy: str | None = None,
    proxy_userpwd: str | None = None,
    timeout_s: float | None = None,
    unsafe_ssl: bool = False,
) -> dict[str, str]:
    """The GDAL side of the user's QGIS network settings, so assets go through the same proxy."""
    config: dict[str, str] = {}
    if proxy:
        config["GDAL_HTTP_PROXY"] = proxy
    if proxy_userpwd:
        config["GDAL_HTTP_PROXYUSERPWD"] = proxy_userpwd
    if timeout_s:
        config["GDAL_HTTP_TIMEOUT"] = str(max(1, round(timeout_s)))
    if unsafe_ssl:
        config["GDAL_HTTP_UNSAFESSL"] = "YES"
    return config


def headers_option(headers: Mapping[str, str]) -> str:
    """``GDAL_HTTP_HEADERS`` value: one ``Name: value`` per line (GDAL >= 3.6)."""
    for name, value in headers.items():
        if any(c in f"{name}{value}" for c in "\r\n"):
            raise ValueError(f"HTTP header {name!r} contains a line break")
    return "\r\n".join(f"{name}: {value}" for name, value in headers.items())


def s3_config(s3: S3Options | None, credentials: Mapping[str, str] | None = None) -> dict[str, str]:
    """GDAL ``/vsis3/`` options for an endpoint (custom object stores, requester-pays buckets).

    Without credentials the request is unsigned (public buckets), unless AWS credentials are visible
    in the environment or ``~/.aws``, which GDAL then uses as the AWS CLI would.
    """
    config: dict[str, str] = {}
    if s3 is not None:
        endpoint = s3.endpoint.strip().rstrip("/")
        https = s3.https
        if endpoint.lower().startswith(("http://", "https://")):
            https = endpoint.lower().startswith("https://")
            endpoint = endpoint.split("://", 1)[1]
        if endpoint:
            config["AWS_S3_ENDPOINT"] = endpoint
        config["AWS_HTTPS"] = "YES" if https else "NO"
        config["AWS_VIRTUAL_HOSTING"] = "TRUE" if s3.virtual_hosting else "FALSE"
        if s3.region:
            config["AWS_REGION"] = s3.region
        if s3.requester_pays:
            config["AWS_REQUEST_PAYER"] = "requester"
    if credentials:
        config["AWS_NO_SIGN_REQUEST"] = "NO"
        config.update(credentials)
    elif not _aws_credentials_in_environment():
        config["AWS_NO_SIGN_REQUEST"] = "YES"
    return config


def _aws_credentials_in_environment() -> bool:
    if any(os.environ.get(name) for name in _AWS_ENV):
        return True
    aws_dir = Path(os.environ.get("AWS_CONFIG_FILE", Path.home() / ".aws" / "config")).parent
    return (aws_dir / "credentials").is_file()


def _object_store(scheme: str, netloc: str, key: str, s3: S3Options | None,
                  credentials: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """GDAL path and options of an object-store URL (s3://, gs://, az://, abfs://)."""
    config = dict(HTTP_DEFAULTS)
    if scheme == "s3":
        config.update(s3_config(s3, credentials))
        return f"/vsis3/{netloc}/{key}", config
    if scheme in ("gs", "gcs"):
        config.update(credentials or {"GS_NO_SIGN_REQUEST": "YES"})
        return f"/vsigs/{netloc}/{key}", config
    # az://container/key, abfs[s]://container@account.dfs.core.windows.net/key
    container, _, host = netloc.partition("@")
    if host:
        config["AZURE_STORAGE_ACCOUNT"] = host.split(".", 1)[0]
    config.update(credentials or {})
    return f"/vsiaz/{container}/{key}", config


def gdal_source(
    href: str,
    *,
    base: str | None = None,
    s3: S3Options | None = None,
    signer: Callable[[str], str] | None = None,
    auth_headers: Mapping[str, str] | None = None,
    header_file: str = "",
    credentials: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
    auth_scope: str = "",
) -> GdalSource:
    """What GDAL opens for an asset ``href`` of the item at ``base``.

    - local paths and ``file://`` URLs: the path itself;
    - ``http(s)://``: ``/vsicurl/`` of the URL, signed by ``signer`` first (Planetary Computer, BDC);
      ``auth_headers`` (from QGIS's auth manager) go into ``GDAL_HTTP_HEADERS``, never into the path,
      which serves Cubescope's own readers; with ``header_file`` (a private file holding those
      headers, see ``cube.header_files``) the path is ``/vsicurl?header_file=...&url=...`` instead,
      which also works for layers QGIS opens and renders by path alone;
    - ``s3://``: ``/vsis3/`` with the endpoint options of ``s3``; ``credentials`` (AWS keys from the
      auth manager) are merged into ``config`` only;
    - ``gs://``: ``/vsigs/``; ``az://`` and ``abfs://``: ``/vsiaz/``.

    ``auth_scope`` (the source's URL) limits where ``auth_headers``/``header_file`` go
    (:func:`within_auth_scope`); ``options`` (e.g. :func:`gdal_http_config`) are merged last.
    """
    zarr = _ZARR_HREF.match(href)
    if zarr:  # one 2-D slice of a Zarr cube (`analysis.zarr_items`): the store is mapped as any href
        store, variable, index = zarr.groups()
        return zarr_gdal_path(resolve_href(store, base), variable, int(index) if index else None, s3=s3,
                              credentials=credentials, auth_headers=auth_headers, header_file=header_file,
                              options=options, auth_scope=auth_scope)
    resolved = resolve_href(href, base)
    inside = split_zarr_href(resolved)
    if inside:  # an array inside a Zarr hierarchy (EOPF products): the store is mapped as any href
        return zarr_gdal_path(inside[0], inside[1], s3=s3, credentials=credentials, auth_headers=auth_headers,
                              header_file=header_file, options=options, auth_scope=auth_scope)
    scheme = _scheme(resolved)
    config: dict[str, str] = {}
    if not scheme:
        path = resolved
        if path.startswith(("/vsicurl", "/vsis3", "/vsigs", "/vsiaz")):
            config.update(HTTP_DEFAULTS)
    elif scheme == "file":
        path = _file_path(resolved)
    elif scheme in _URL_SCHEMES:
        url = signer(resolved) if signer is not None else resolved
        config.update(HTTP_DEFAULTS)
        if auth_scope and not within_auth_scope(auth_scope, resolved):
            header_file, auth_headers = "", None  # another site's asset: the source's secret stays home
        if header_file:  # the file holds the headers: GDAL_HTTP_HEADERS too would send them twice
            path = vsicurl_with_header_file(url, header_file)
        else:
            path = f"/vsicurl/{url}"
            if auth_headers:
                config["GDAL_HTTP_HEADERS"] = headers_option(auth_headers)
    elif scheme in _OBJECT_SCHEMES:
        parts = urlsplit(resolved)
        if not parts.netloc:
            raise ValueError(f"{href!r} names no bucket or container")
        path, config = _object_store(scheme, parts.netloc, parts.path.lstrip("/"), s3, credentials)
    else:
        raise ValueError(f"Cannot read {href!r}: the scheme '{scheme}://' is not supported "
                         "(use http(s)://, s3://, gs://, az://, file:// or a local path)")
    config.update(options or {})
    origin = href if resolved == href else f"{href} ({resolved})"
    return GdalSource(path=path, config=config, description=redact(origin))


def zarr_gdal_path(
    url: str,
    variable: str,
    time_index: int | None = None,
    *,
    s3: S3Options | None = None,
    credentials: Mapping[str, str] | None = None,
    auth_headers: Mapping[str, str] | None = None,
    header_file: str = "",
    options: Mapping[str, str] | None = None,
    auth_scope: str = "",
) -> GdalSource:
    """``ZARR:"<store>":/<variable>[:<time index>]`` for GDAL's Zarr driver.

    GDAL 3.6's classic raster API opens a 3-D array only one 2-D slice at a time, hence the trailing
    index. Signed URLs cannot be used here: GDAL appends chunk keys to the store URL, after the query.
    """
    if not variable.strip("/"):
        raise ValueError("A Zarr variable name is required")
    if time_index is not None and time_index < 0:
        raise ValueError(f"The time index must be >= 0, not {time_index}")
    # Without the trailing slash: in a /vsicurl? path the URL is encoded, so rstrip below cannot remove it.
    store = gdal_source(url.rstrip("/") or url, s3=s3, auth_headers=auth_headers, header_file=header_file,
                        credentials=credentials, options=options, auth_scope=auth_scope)
    path = f'ZARR:"{store.path.rstrip("/")}":/{variable.strip("/")}'
    if time_index is not None:
        path += f":{time_index}"
    suffix = f" [{time_index}]" if time_index is not None else ""
    return GdalSource(path=path, config=store.config, description=f"{redact(url)} /{variable.strip('/')}{suffix}")
