"""Where a connection's credentials may go: the one rule for catalog requests and asset reads alike.

A catalog's credentials (Basic, an API-key header, a token) belong to its own site. Items of a
private catalog often point at public buckets or CDNs, and a hostile or careless server can hand out
a ``next`` link or a redirect to any host: what goes there goes without them. Pure: no QGIS imports.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` ('' for local paths)."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def _is_address(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-f:]+", host)) or "." not in host


def within_auth_scope(scope: str, url: str) -> bool:
    """Whether credentials given for the source at ``scope`` may be sent with a request to ``url``.

    A catalog's auth headers (an API key, a Bearer token) must not reach third parties: items of a
    private catalog often point at public buckets or CDNs. They go to the catalog's own host, any
    port, and to hosts of the same parent domain (``stac.example.org`` -> ``data.example.org``, but
    not ``example.org``'s neighbours when the catalog sits on ``example.org`` itself: those are
    other sites under a public suffix). An IP address or a single-label host (``localhost``) only
    covers itself. A source without a host (a local catalog) puts no limit: its user set the auth
    configuration for the assets.
    """
    own = host_of(scope) if "://" in scope else ""
    if not own:
        return True
    target = host_of(url)
    if target == own:
        return True
    if _is_address(own) or own.count(".") < 2:
        return False
    parent = own.split(".", 1)[1]
    return target.endswith("." + parent)


def without_credentials_note(what: str, from_url: str, to_url: str) -> str:
    """The log line for a request sent on to another site without the connection's credentials."""
    return (f"Cubescope followed a {what} from {host_of(from_url) or from_url} to another site, "
            f"{host_of(to_url) or to_url}, without the connection's credentials ({to_url})")
