"""Signing asset hrefs for catalogs whose storage needs it: Planetary Computer SAS tokens, BDC tokens.

Signatures expire, so layers and projects keep the unsigned href and sign it when GDAL is about to
read it (see ``hrefs.gdal_source(signer=...)``). Signers are called from worker threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from .http import HttpError

if TYPE_CHECKING:
    from .http import Fetcher

PC_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
#: Hosts of the Brazil Data Cube's data servers: its token is only ever sent to them.
BDC_HOSTS = ("inpe.br",)

_ISO_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def parse_expiry(text: str) -> datetime:
    """An ISO 8601 timestamp as aware UTC; tolerates 'Z' and 7-digit fractions (Python 3.9 does not)."""
    match = _ISO_RE.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    main, fraction, zone = match.groups()
    micros = (fraction or ".")[1:].ljust(6, "0")[:6]
    when = datetime.fromisoformat(f"{main}.{micros}")
    if zone in (None, "Z"):
        return when.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    hours, minutes = int(zone[1:3]), int(zone[-2:])
    return (when - sign * timedelta(hours=hours, minutes=minutes)).replace(tzinfo=timezone.utc)


def _add_query(href: str, query: str) -> str:
    base, _, fragment = href.partition("#")
    joined = f"{base}&{query}" if "?" in base else f"{base}?{query}"
    return f"{joined}#{fragment}" if fragment else joined


def _blob_container(href: str) -> tuple[str, str] | None:
    """(account, container) of an Azure Blob URL, else None."""
    parts = urlsplit(href)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host.endswith(".blob.core.windows.net"):
        return None
    container = parts.path.lstrip("/").split("/", 1)[0]
    return (host.split(".", 1)[0], container) if container else None


@dataclass(frozen=True)
class _Token:
    token: str
    expiry: datetime


class PlanetaryComputerSigner:
    """Appends Planetary Computer SAS tokens to Azure Blob hrefs, one token per storage container.

    A token is reused until ``margin_s`` before it expires, so a long time-series read never sends an
    expired signature, and a fresh one is fetched after that; other hosts are returned unchanged.
    """

    def __init__(
        self,
        fetch: Fetcher,
        token_url: str = PC_TOKEN_URL,
        margin_s: float = 300,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._fetch = fetch
        self._token_url = token_url.rstrip("/")
        self._margin = timedelta(seconds=margin_s)
        self._clock = clock
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._lock = threading.Lock()

    def __call__(self, href: str) -> str:
        return self.sign(href)

    def sign(self, href: str) -> str:
        target = _blob_container(href)
        if target is None or "sig" in parse_qs(urlsplit(href).query):
            return href  # not Azure Blob storage, or already signed
        return _add_query(href, self.token_for(*target))

    def token_for(self, account: str, container: str) -> str:
        """The SAS token (a query string) for a container, fetched when missing or about to expire."""
        with self._lock:  # one request per container even when many threads sign at once
            cached = self._tokens.get((account, container))
            if cached is not None and self._clock() < cached.expiry - self._margin:
                return cached.token
            token = self._request(account, container)
            self._tokens[(account, container)] = token
            return token.token

    def _request(self, account: str, container: str) -> _Token:
        url = f"{self._token_url}/{quote(account)}/{quote(container)}"
        response = self._fetch("GET", url)
        try:
            document: Any = response.json()
            token = str(document["token"]).lstrip("?")
            expiry = parse_expiry(str(document["msft:expiry"]))
        except (ValueError, KeyError, TypeError) as error:
            raise HttpError("GET", url, response.status,
                            problem=f"the token service answered without a usable token ({error})") from error
        if not token:
            raise HttpError("GET", url, response.status, problem="the token service answered with an empty token")
        return _Token(token, expiry)


class BdcSigner:
    """Adds the Brazil Data Cube ``access_token`` query parameter to hrefs on BDC's own servers.

    The token is a personal credential: hrefs on other hosts are returned unchanged so it never
    leaks to them.
    """

    def __init__(self, access_token: str, hosts: tuple[str, ...] = BDC_HOSTS) -> None:
        if not access_token.strip():
            raise ValueError("The Brazil Data Cube access token is empty")
        self._token = access_token.strip()
        self._hosts = tuple(h.lower().lstrip(".") for h in hosts)

    def __call__(self, href: str) -> str:
        return self.sign(href)

    def __repr__(self) -> str:
        return f"BdcSigner(hosts={self._hosts!r})"

    def sign(self, href: str) -> str:
        parts = urlsplit(href)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not any(host == h or host.endswith("." + h) for h in self._hosts):
            return href
        if "access_token" in parse_qs(parts.query):
            return href
        return _add_query(href, f"access_token={quote(self._token, safe='')}")


def signer_for(source: Any, fetch: Fetcher, token: str | None = None) -> Callable[[str], str] | None:
    """The signer a source's ``signing`` setting asks for ('planetary-computer', 'bdc'), or None.

    Keep the returned signer for the source's lifetime: it caches tokens.
    """
    signing = (getattr(source, "signing", "") or "").strip().lower()
    if not signing:
        return None
    if signing in ("planetary-computer", "pc"):
        return PlanetaryComputerSigner(fetch)
    if signing == "bdc":
        if not token:
            raise ValueError("Brazil Data Cube assets need an access token: put it in the connection's "
                             "authentication configuration")
        return BdcSigner(token)
    raise ValueError(f"Unknown URL signing {signing!r} (expected 'planetary-computer' or 'bdc')")
