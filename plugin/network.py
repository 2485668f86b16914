"""STAC requests through QGIS's own network stack, and the GDAL side of the same settings.

QgsBlockingNetworkRequest honours the user's proxy, SSL exceptions, timeout and authentication
configurations (``authcfg``) and is safe to call from a QgsTask's ``run()``: the pure STAC client
gets it as its ``Fetcher``, so the dock, the tasks and Processing share one client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsFeedback,
    QgsNetworkAccessManager,
    QgsSettings,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QByteArray, QCoreApplication, QEventLoop, QUrl
from qgis.PyQt.QtNetwork import QNetworkReply, QNetworkRequest

from .cube.header_files import header_file, header_file_digest
from .log import log
from .stac.hrefs import HTTP_DEFAULTS, gdal_http_config
from .stac.http import MAX_REDIRECTS, Fetcher, HttpError, Response, error_from_response, read_local
from .stac.retries import DEFAULT_POLICY, RetryPolicy, next_wait_s, retry_note, wait_or_cancel
from .stac.signing import signer_for
from .stac.sites import within_auth_scope, without_credentials_note
from .stac.sources import Source

USER_AGENT = b"Cubescope QGIS plugin"
#: How long a request's wait sleeps between two rounds of this thread's events.
_POLL_S = 0.005
_thread_loops = threading.local()


def _thread_event_loop() -> QEventLoop:
    """This thread's QEventLoop, made once: making one gives a thread that Python started (a zarr-python
    3 store worker, a pool thread) the event dispatcher Qt needs there. Without it processEvents() does
    nothing in such a thread, a reply never finished and QGIS's timeout timer never fired (a
    qgis_process time series of a Zarr store over HTTP spun for good on sid). It has no connections,
    and it is deleted with the thread's locals, in its own thread."""
    loop = getattr(_thread_loops, "loop", None)
    if loop is None:
        loop = _thread_loops.loop = QEventLoop()
    return loop


def dispose_in_main_thread(obj) -> None:
    """Hand a QObject made in a worker thread to the GUI thread for deletion.

    Deleting a Python-made QObject in a worker thread calls back into Python (disconnectNotify)
    while holding Qt's connection lock; if the GUI thread is then deleting a widget it holds the GIL
    and waits for that lock: a deadlock seen in testing. Deleted by the GUI thread's event loop,
    it is one thread doing both.
    """
    obj.moveToThread(QCoreApplication.instance().thread())
    sip.transferto(obj, None)
    obj.deleteLater()


def reply_failure(method: str, url: str, status: Any, reason: str, content: bytes, error: Any,
                  error_string: str) -> HttpError | None:
    """What went wrong with a reply (its status, body and Qt error), or None when it succeeded."""
    if status is not None and not 200 <= int(status) < 300:
        return error_from_response(method, url, int(status), reason, content)
    if status is None or error != QNetworkReply.NetworkError.NoError:
        # No complete HTTP answer: none at all, or one cut off after its status line. QGIS aborts
        # a request that exceeds its network timeout, which surfaces as "operation canceled".
        if error == QNetworkReply.NetworkError.OperationCanceledError:
            return HttpError(method, url, None, f"timed out after {QgsNetworkAccessManager.timeout() / 1000:.0f} s")
        return HttpError(method, url, None, error_string or "no answer")
    return None


def forget_answer(url: QUrl) -> None:
    """Remove ``url``'s answer from QGIS's network disk cache.

    QgsBlockingNetworkRequest stores every answer there, though STAC requests are always sent to the
    server. When a server answers a 5xx for a URL the cache holds, Qt hands over the cached copy's
    status (200) and headers with the 5xx error, and the error page followed by the cached body
    (Qt 5.15): the message would lose the server's status and words. Keeping no STAC answer also
    keeps search pages from pushing the user's map tiles out of the cache.
    """
    cache = QgsNetworkAccessManager.instance().cache()
    if cache is not None:
        cache.remove(url)


def qgis_fetcher(authcfg: str = "", feedback: QgsFeedback | None = None, scope: str = "",
                 retry: RetryPolicy = DEFAULT_POLICY) -> Fetcher:
    """A Fetcher that goes through QgsNetworkAccessManager; cancelling ``feedback`` aborts the request
    in flight (or a retry's wait) and raises "cancelled".

    ``authcfg`` is applied only to requests within ``scope``, the catalog's URL (else the first URL
    fetched), by `sites.within_auth_scope`: a ``next`` link or a redirect to another site goes without
    it, and the log says so, naming both hosts. 429/502/503/504 are tried again as ``retry`` says,
    in waits that ``feedback``'s cancel cuts short. The timeout is QGIS's own network timeout
    (Settings › Network), as users expect; the per-call ``timeout_s`` of the Fetcher protocol only
    applies to local files (none).
    """
    home = [scope]
    is_canceled = feedback.isCanceled if feedback is not None else None

    def fetch(
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Response:
        if "://" not in url or url.startswith("file://"):
            return read_local(method, url)
        if not home[0]:
            home[0] = url  # the landing page: the site the credentials were given for
        first, attempt, waited, hops = url, 1, 0.0, 0
        with_credentials = bool(authcfg) and within_auth_scope(home[0], url)
        if authcfg and not with_credentials:
            log(without_credentials_note("link", home[0], url), "warning")
        while True:
            status, reason, response_headers, content = _send(method, url, json_body, headers,
                                                              authcfg if with_credentials else "", is_canceled)
            if feedback is not None and feedback.isCanceled():
                raise HttpError(method, url, None, "cancelled")
            location = response_headers.get("location") if 300 <= status < 400 else None
            if location:
                hops += 1
                target = bytes(QUrl(url).resolved(QUrl(location)).toEncoded()).decode()
                if hops > MAX_REDIRECTS:
                    raise HttpError(method, first, status, problem=f"more than {MAX_REDIRECTS} redirects, the "
                                    f"last to {target}")
                if status == 303 or (status in (301, 302) and method.upper() == "POST"):
                    method, json_body = "GET", None
                allowed = within_auth_scope(home[0], target)
                # the caller's own headers (a Zarr store's auth) stay on the site it sent them to
                drop_headers = bool(headers) and not within_auth_scope(first, target)
                if (with_credentials and not allowed) or drop_headers:
                    log(without_credentials_note(f"redirect (HTTP {status})", url, target), "warning")
                headers = None if drop_headers else headers
                url, with_credentials = target, with_credentials and allowed
                continue
            wait = next_wait_s(retry, status, response_headers, attempt, waited)
            if wait is not None:
                log(retry_note(method, url, status, wait, attempt, retry), "info")
                if not wait_or_cancel(wait, is_canceled):
                    raise HttpError(method, url, None, "cancelled")
                attempt, waited = attempt + 1, waited + wait
                continue
            if not 200 <= status < 300:
                raise error_from_response(method, url, status, reason, content)
            return Response(url=url, status=status, headers=response_headers, content=content)

    return fetch


def _send(method: str, url: str, json_body: Any, headers: Mapping[str, str] | None, authcfg: str,
          is_canceled: Callable[[], bool] | None = None) -> tuple[int, str, dict[str, str], bytes]:
    """One request through QGIS's network stack, no redirect followed: (status, reason, lower-case
    headers, body); HttpError when no HTTP answer came (refused, timed out, cut off).

    Not QgsBlockingNetworkRequest: it follows a redirect itself, whatever host it names, applies the
    auth configuration again there and has no bound on a redirect loop (A -> B -> A). Here Qt is
    told not to follow (ManualRedirectPolicy) and ``authcfg`` is applied to this request only. No
    QObject is made from Python and no signal connected: one made in this worker thread would call
    back into Python (disconnectNotify) under Qt's connection lock when deleted, which deadlocks
    against a GUI thread deleting a widget (seen in testing). This thread's events are processed
    every few milliseconds until the reply is finished (a blocking wait for the next event lost its
    wake-up once in testing); QGIS's network timeout (Settings › Network) aborts a silent server,
    and ``is_canceled()`` aborts the request at once.
    """
    loop = _thread_event_loop()  # before the request: QGIS starts its timeout timer when sending it
    request = QNetworkRequest(QUrl(url))
    request.setRawHeader(b"User-Agent", USER_AGENT)
    request.setRawHeader(b"Accept", b"application/geo+json, application/json;q=0.9, */*;q=0.1")
    for key, value in (headers or {}).items():
        request.setRawHeader(key.encode(), value.encode())
    request.setAttribute(QNetworkRequest.Attribute.RedirectPolicyAttribute,
                         QNetworkRequest.RedirectPolicy.ManualRedirectPolicy)
    request.setAttribute(QNetworkRequest.Attribute.CacheLoadControlAttribute,
                         QNetworkRequest.CacheLoadControl.AlwaysNetwork)
    request.setAttribute(QNetworkRequest.Attribute.CacheSaveControlAttribute, False)
    manager = QgsApplication.authManager()
    if authcfg:
        applied = manager.updateNetworkRequest(request, authcfg)
        if isinstance(applied, tuple):  # PyQt returns (ok, request) for the in/out parameter
            applied, request = applied
        if not applied:
            raise HttpError(method, url, None, f"the authentication configuration '{authcfg}' could not be applied")
    forget_answer(request.url())  # a copy kept from before: Qt would mix it into a 5xx answer
    network = QgsNetworkAccessManager.instance()
    if method.upper() == "POST":
        request.setHeader(QNetworkRequest.KnownHeaders.ContentTypeHeader, "application/json")
        reply = network.post(request, QByteArray(json.dumps(json_body if json_body is not None else {}).encode()))
    else:
        reply = network.get(request)
    try:
        if authcfg:
            manager.updateNetworkReply(reply, authcfg)
        pause = threading.Event()  # never set: a bounded wait between two looks at the reply
        while not reply.isFinished():
            if is_canceled is not None and is_canceled():
                reply.abort()
                raise HttpError(method, url, None, "cancelled")
            loop.processEvents()
            if not reply.isFinished():
                pause.wait(_POLL_S)
        status = reply.attribute(QNetworkRequest.Attribute.HttpStatusCodeAttribute)
        reason = str(reply.attribute(QNetworkRequest.Attribute.HttpReasonPhraseAttribute) or "")
        content = bytes(reply.readAll())
        failure = reply_failure(method, url, status, reason, content, reply.error(), reply.errorString())
        if status is None or (failure is not None and failure.status is None):
            raise failure if failure is not None else HttpError(method, url, None, "no answer")
        response_headers = {bytes(k).decode("latin-1").lower(): bytes(reply.rawHeader(k)).decode("latin-1")
                            for k in reply.rawHeaderList()}
        return int(status), reason, response_headers, content
    finally:
        # The wrapper goes with the reply, in one step under the GIL: deleted with sip.delete, a wrapper
        # still referenced (a frame, a traceback) stayed in sip's map, and the next reply Qt put at the
        # same address came back as that deleted wrapper ("wrapped C/C++ object of type QNetworkReply
        # has been deleted", seen in the WTSS/WLTS dock tests).
        sip.transferback(reply)
        del reply


def auth_headers(authcfg: str, url: str) -> dict[str, str]:
    """The HTTP headers QGIS's auth manager adds for ``authcfg`` (Basic, API header, OAuth2 ...).

    Used to give GDAL the same credentials for reading assets; the values are kept in memory only.
    """
    if not authcfg:
        return {}
    request = QNetworkRequest(QUrl(url))
    ok = QgsApplication.authManager().updateNetworkRequest(request, authcfg)
    if isinstance(ok, tuple):  # PyQt returns (ok, request) for the in/out parameter
        ok, request = ok
    if not ok:
        raise PermissionError(f"The authentication configuration '{authcfg}' could not be applied to {url}")
    return {bytes(k).decode("latin-1"): bytes(request.rawHeader(k)).decode("latin-1") for k in request.rawHeaderList()}


def s3_credentials(authcfg: str) -> dict[str, str]:
    """AWS-style keys from an auth configuration (QGIS's "AWS S3" method, or Basic: user = key id)."""
    if not authcfg:
        return {}
    config = QgsAuthMethodConfig()
    loaded = QgsApplication.authManager().loadAuthenticationConfig(authcfg, config, True)
    if isinstance(loaded, tuple):
        loaded, config = loaded
    if not loaded:
        raise PermissionError(f"The authentication configuration '{authcfg}' could not be loaded")
    credentials = {
        "AWS_ACCESS_KEY_ID": config.config("username"),
        "AWS_SECRET_ACCESS_KEY": config.config("password"),
    }
    if config.config("region"):
        credentials["AWS_REGION"] = config.config("region")
    return {k: v for k, v in credentials.items() if v}


def qgis_gdal_http_config() -> dict[str, str]:
    """GDAL's HTTP options from the user's QGIS network settings (proxy, timeout)."""
    settings = QgsSettings()
    proxy = proxy_userpwd = None
    if settings.value("proxy/proxyEnabled", False, type=bool):
        host = settings.value("proxy/proxyHost", "", type=str)
        port = settings.value("proxy/proxyPort", "", type=str)
        proxy = f"{host}:{port}" if port else host
        user = settings.value("proxy/proxyUser", "", type=str)
        if user:
            proxy_userpwd = f"{user}:{settings.value('proxy/proxyPassword', '', type=str)}"
    timeout_ms = QgsNetworkAccessManager.timeout()
    timeout_s = timeout_ms / 1000 if timeout_ms else None
    return gdal_http_config(proxy=proxy, proxy_userpwd=proxy_userpwd, timeout_s=timeout_s)


def scope_gdal_options(prefix: str, options: Mapping[str, str]) -> None:
    """Give GDAL options (credentials, headers) to every path under ``prefix`` only, in memory.

    Path-specific options keep one source's keys away from other hosts and never reach a project
    file or the log; they are set again from the auth manager when a project is reopened.
    """
    for key, value in options.items():
        gdal.SetPathSpecificOption(prefix, key, value)


def source_token(authcfg: str) -> str:
    """An access token kept in an auth configuration (the password of a Basic config, or "token")."""
    if not authcfg:
        return ""
    config = QgsAuthMethodConfig()
    loaded = QgsApplication.authManager().loadAuthenticationConfig(authcfg, config, True)
    if isinstance(loaded, tuple):
        loaded, config = loaded
    return (config.config("token") or config.config("password")) if loaded else ""


@dataclass
class AssetAccess:
    """How to read a source's assets: its URL signer (caches tokens) and S3 keys, in memory only,
    and the private file of its HTTP auth headers."""

    signer: Callable[[str], str] | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    header_file: str = ""
    """Path of the file GDAL reads the source's auth headers from (``cube.header_files``); '' if none."""
    headers: dict[str, str] = field(default_factory=dict)
    """The same headers, for reads Cubescope makes itself (a Zarr cube's metadata and pixels)."""

    def __repr__(self) -> str:  # never show keys or headers in logs or tracebacks
        return (f"AssetAccess(signer={self.signer!r}, credentials={sorted(self.credentials)}, "
                f"header_file={self.header_file!r}, headers={sorted(self.headers)})")


def sends_auth_headers(source: Source) -> bool:
    """Whether the source's auth configuration is sent as HTTP headers with asset requests.

    Not for object stores (their config holds S3 keys, never HTTP credentials) nor signed sources
    (the signature is the credential; BDC's config holds the token it puts in the query).
    """
    return bool(source.authcfg) and source.s3 is None and not source.signing


_HEADER_SOURCES: dict[str, str] = {}
"""authcfg -> a URL it was applied to, for the header files written for it (`refresh_header_files`)."""


def refresh_header_files() -> list[str]:
    """Main thread: apply each auth configuration with a header file again and rewrite the file when
    its headers changed (an OAuth2 token refreshed by QGIS, a key edited in the auth manager):
    open layers send the new headers with their next request. Returns the configurations whose
    file changed; one that can no longer be applied keeps its file and is named in the log."""
    changed = []
    for authcfg, url in list(_HEADER_SOURCES.items()):
        if not header_file_digest(authcfg):
            continue  # its file was removed (plugin unloaded): no secret is written again
        try:
            headers = auth_headers(authcfg, url)
        except PermissionError as error:
            log(f"Cubescope could not refresh the credentials of {url}: {error}", "warning")
            continue
        before = header_file_digest(authcfg)
        if headers:
            header_file(authcfg, headers)
        if header_file_digest(authcfg) != before:
            changed.append(authcfg)
    if changed:
        # GDAL remembers a URL's refusal (a 401 with the expired token) whatever the header file
        # says now; forgetting what it read costs a re-read, about once an hour.
        gdal.VSICurlClearCache()
    return changed


def asset_access(source: Source) -> AssetAccess:
    """Built on the main thread: the auth manager may ask for its master password, and QGIS 3.22's
    deadlocks when a worker thread uses it while the GUI thread does."""
    token = source_token(source.authcfg) if source.signing == "bdc" else None
    signer = signer_for(source, qgis_fetcher(), token)
    credentials = s3_credentials(source.authcfg) if source.s3 is not None else {}
    headers = auth_headers(source.authcfg, source.url) if sends_auth_headers(source) else {}
    if headers:
        _HEADER_SOURCES[source.authcfg] = source.url
    return AssetAccess(signer, credentials, header_file(source.authcfg, headers) if headers else "", headers)


def apply_gdal_http_settings() -> dict[str, str]:
    """GDAL's HTTP options for the layers QGIS itself renders: the COG/Zarr defaults that matter
    over HTTP and the user's proxy and timeout. Options the user set (environment) are left alone."""
    applied = {}
    # Not process-wide: EMPTY_DIR would hide local files' .ovr/.aux.xml from every QGIS layer
    # (Cubescope's own readers set it per thread for remote paths).
    defaults = {k: v for k, v in HTTP_DEFAULTS.items() if k != "GDAL_DISABLE_READDIR_ON_OPEN"}
    for key, value in {**defaults, **qgis_gdal_http_config()}.items():
        if gdal.GetConfigOption(key) is None:
            gdal.SetConfigOption(key, value)
            applied[key] = value
    return applied
