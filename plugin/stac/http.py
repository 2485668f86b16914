"""HTTP for the STAC layer: one Response type, one error type, and an injected fetcher.

The catalog code never opens sockets itself: it calls a `Fetcher`. The QGIS glue passes one that
goes through QGIS's network stack (proxy, SSL exceptions, authcfg); Processing under `qgis_process`
and the tests pass `requests_fetcher()`. Errors carry what a person needs to act on them: the
method and URL, the HTTP status, and the server's own words (worded by `error_text`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlparse

from .error_text import connection_problem, root_cause, server_message, squash
from .retries import DEFAULT_POLICY, RetryPolicy, next_wait_s, retry_note, wait_or_cancel
from .sites import within_auth_scope, without_credentials_note

#: Redirects followed for one request before giving up.
MAX_REDIRECTS = 10

#: How much of a non-JSON answer is quoted.
QUOTE_CHARS = 200

_HINTS = {
    401: "the server needs credentials: set an authentication configuration on the connection",
    403: "the credentials were refused or lack access: check the connection's authentication",
    404: "check the URL (a STAC API URL is its landing page, a static catalog its catalog.json)",
    429: "the server is rate limiting: wait a little and try again",
}


class HttpError(Exception):
    """A request that did not give a usable answer.

    `status` is the HTTP status, or None when there was no HTTP answer (connection refused, host not
    found, timeout, missing local file). `problem` says what went wrong in our words ("connection
    refused", "timed out after 30 s", "the answer is not JSON"); `server_message` is the server's own
    explanation, trimmed. `hint` says what to try, for the message bar.
    """

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None = None,
        problem: str = "",
        *,
        reason: str = "",
        server_message: str = "",
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.server_message = server_message
        self.problem = problem
        super().__init__(self._describe())

    def __reduce__(self) -> tuple:
        # picklable (a Dask worker or a Processing subprocess may raise it)
        return (_rebuild_http_error, (self.method, self.url, self.status, self.problem, self.reason,
                                      self.server_message))

    def _describe(self) -> str:
        where = f"{self.method} {self.url}"
        if self.status is not None and not 200 <= self.status < 300:
            text = f"{where} -> HTTP {self.status} {self.reason}".rstrip()
        else:
            text = where
        details = [part for part in (self.problem, self.server_message) if part]
        return f"{text}: {': '.join(details)}" if details else text

    @property
    def hint(self) -> str:
        if self.status in _HINTS:
            return _HINTS[self.status]
        if self.status is not None and self.status >= 500:
            return "the server failed: try again later, or report its message to the catalog's operator"
        if self.status is None and "timed out" in self.problem:
            return "the server is slow or unreachable: try again, or raise the timeout in QGIS's network settings"
        if self.status is None and self.problem in ("no such file", "is a directory, not a JSON file"):
            return "check the path of the catalog file"
        if self.status is None:
            return "check the URL, your network connection and QGIS's proxy settings"
        if 200 <= self.status < 300:
            return "check that the URL points at a STAC API landing page or a STAC catalog.json"
        return ""


def _rebuild_http_error(method: str, url: str, status: int | None, problem: str, reason: str,
                        server_message: str) -> HttpError:
    return HttpError(method, url, status, problem, reason=reason, server_message=server_message)


@dataclass(frozen=True)
class Response:
    """A successful (2xx) answer. Header names are lower case."""

    url: str
    status: int
    headers: dict[str, str]
    content: bytes
    method: str = field(default="GET")
    """The request method, only used to word errors."""

    def json(self) -> Any:
        return parse_json(self, self.method)


class Fetcher(Protocol):
    """Performs one request; raises HttpError for non-2xx answers, connection errors and timeouts."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Response: ...


def parse_json(response: Response, method: str = "GET") -> Any:
    """The decoded JSON of `response`, or an HttpError that quotes what came instead."""
    text = response.content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError as error:
        content_type = response.headers.get("content-type", "")
        quote = squash(text)[:QUOTE_CHARS] or "(empty answer)"
        if "json" in content_type:
            problem = f"the answer is not valid JSON ({error})"
        else:
            problem = f"the answer is not JSON ({content_type or 'no content type'})"
        raise HttpError(method, response.url, response.status, problem=problem, server_message=quote) from None



def error_from_response(method: str, url: str, status: int, reason: str, content: bytes) -> HttpError:
    """The HttpError for a non-2xx answer, worded the same whichever network stack received it."""
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return HttpError(method, url, status, reason=reason, server_message=server_message(content))


def local_path(url: str) -> Path | None:
    """The file a `file://` URL or a plain path names; None for network URLs."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:\\..." parses with scheme "c"
        return None
    return Path(url).expanduser()


def read_local(method: str, url: str) -> Response:
    """Read a local file as if it had been fetched, so static catalogs on disk share the HTTP code."""
    path = local_path(url)
    if path is None:
        raise HttpError(method, url, problem="not a local path")
    if method != "GET":
        raise HttpError(method, url, problem=f"cannot {method} a local file")
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise HttpError(method, url, problem="no such file") from None
    except IsADirectoryError:
        raise HttpError(method, url, problem="is a directory, not a JSON file") from None
    except OSError as error:
        raise HttpError(method, url, problem=f"cannot read: {error.strerror or error}") from None
    content_type = "application/json" if path.suffix.lower() in (".json", ".geojson") else ""
    return Response(str(path), 200, {"content-type": content_type}, content, method)


def local_fetcher() -> Fetcher:
    """A Fetcher for local files only: static catalogs on disk need no HTTP library."""

    def fetch(
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Response:
        return read_local(method, url)

    return fetch


class RequestsFetcher:
    """A Fetcher on `requests` (for Processing, `qgis_process` and tests); also reads local files.

    `headers` go with every request to the connection's own site (an API key, a token): `scope`, the
    catalog's URL, or else the first URL fetched (`sites.within_auth_scope`). Redirects are followed
    here, at most `MAX_REDIRECTS`, and a `next` link or redirect to another site goes without those
    headers (and without the session's auth), which `log` is told, naming both hosts. 429/502/503/504
    are tried again as `retry` says (`retries`), in waits that `is_canceled` cuts short. The timeout
    bounds each request, body included, not only each socket read. Use it as a context manager, or
    call `close()`, to release the connections of a session it created.
    """

    def __init__(self, headers: Mapping[str, str] | None = None, session: Any = None, *, scope: str = "",
                 log: Callable[[str], None] | None = None, retry: RetryPolicy = DEFAULT_POLICY,
                 is_canceled: Callable[[], bool] | None = None) -> None:
        try:
            import requests
        except ImportError as error:
            raise ImportError("Reading STAC catalogs outside QGIS needs the Python package 'requests'") from error
        self._requests = requests
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self.headers = {"Accept": "application/geo+json, application/json;q=0.9, */*;q=0.1"}
        self.credentials = dict(headers or {})
        """Headers that are the connection's credentials: only ever sent within `scope`."""
        self.scope = scope
        self.log = log if log is not None else logging.getLogger("cubescope").warning
        self.retry = retry
        self.is_canceled = is_canceled

    def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> Response:
        if local_path(url) is not None:
            return read_local(method, url)
        if not self.scope:
            self.scope = url  # the landing page: the site the credentials were given for
        first, attempt, waited, hops = url, 1, 0.0, 0
        with_credentials = within_auth_scope(self.scope, url)
        if self.credentials and not with_credentials:
            self.log(without_credentials_note("link", self.scope, url))
        while True:
            status, reason, answer_headers, content = self._send(method, url, json_body, headers, timeout_s,
                                                                 with_credentials)
            location = answer_headers.get("location") if 300 <= status < 400 else None
            if location:
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise HttpError(method, first, status, problem=f"more than {MAX_REDIRECTS} redirects, the "
                                    f"last to {urljoin(url, location)}")
                target = urljoin(url, location)
                if status == 303 or (status in (301, 302) and method.upper() == "POST"):
                    method, json_body = "GET", None
                allowed = within_auth_scope(self.scope, target)
                # the caller's own headers (a Zarr store's auth) stay on the site it sent them to
                drop_headers = bool(headers) and not within_auth_scope(first, target)
                if (with_credentials and self.credentials and not allowed) or drop_headers:
                    self.log(without_credentials_note(f"redirect (HTTP {status})", url, target))
                headers = None if drop_headers else headers
                url, with_credentials = target, with_credentials and allowed
                continue
            if 200 <= status < 300:
                return Response(url, status, answer_headers, content, method)
            wait = next_wait_s(self.retry, status, answer_headers, attempt, waited)
            if wait is None:
                raise error_from_response(method, url, status, reason, content)
            self.log(retry_note(method, url, status, wait, attempt, self.retry))
            if not wait_or_cancel(wait, self.is_canceled):
                raise HttpError(method, url, None, "cancelled")
            attempt, waited = attempt + 1, waited + wait

    def _send(self, method: str, url: str, json_body: Any, headers: Mapping[str, str] | None, timeout_s: float,
              with_credentials: bool) -> tuple[int, str, dict[str, str], bytes]:
        """One request, no redirect followed: (status, reason, lower-case headers, body)."""
        requests = self._requests
        sent = {**self.headers, **(self.credentials if with_credentials else {}), **(headers or {})}
        deadline = time.monotonic() + timeout_s
        try:
            answer = self.session.request(method, url, json=json_body, headers=sent, timeout=(timeout_s, timeout_s),
                                          stream=True, allow_redirects=False,
                                          auth=None if with_credentials else _no_auth)
            try:
                chunks = []
                for chunk in answer.iter_content(64 * 1024):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise requests.Timeout()
                content = b"".join(chunks)
            finally:
                answer.close()
        except requests.Timeout:
            raise HttpError(method, url, problem=f"timed out after {timeout_s:g} s") from None
        except requests.exceptions.SSLError as error:
            raise HttpError(method, url, problem=f"SSL error: {root_cause(error)}") from None
        except requests.ConnectionError as error:
            raise HttpError(method, url, problem=connection_problem(error)) from None
        except requests.RequestException as error:
            raise HttpError(method, url, problem=root_cause(error)) from None
        lowered = {k.lower(): v for k, v in answer.headers.items()}
        return answer.status_code, answer.reason or "", lowered, content

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> RequestsFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _no_auth(request: Any) -> Any:
    """requests' auth for a request to another site: nothing (not the session's auth, not ~/.netrc)."""
    return request


def requests_fetcher(headers: Mapping[str, str] | None = None, session: Any = None, **options: Any) -> RequestsFetcher:
    """A `requests`-based Fetcher that also reads local paths and file:// URLs (see RequestsFetcher)."""
    return RequestsFetcher(headers, session, **options)


@contextmanager
def fetcher_for_call(fetch: Fetcher | None, local_only: bool = False) -> Iterator[Fetcher]:
    """``fetch`` when the caller gave one (QGIS's, in the plugin); else one for this call only: local
    files when ``local_only``, else a requests session whose connections are closed after the call."""
    if fetch is not None:
        yield fetch
    elif local_only:
        yield local_fetcher()
    else:
        with requests_fetcher() as own:
            yield own
