"""What a server or a network library said, squashed to one line a person can read.

The server's own explanation in an error body (JSON fields, an HTML title, plain text) and the root
cause of a `requests` failure; `http.HttpError` carries them to the message bar.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

#: How much of a server's message is kept: enough to read, not a whole HTML page.
MESSAGE_CHARS = 300


def server_message(content: bytes, limit: int = MESSAGE_CHARS) -> str:
    """The server's own explanation in an error body: JSON fields, an HTML title, or plain text."""
    text = content.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if document is not None:
        return _json_message(document)[:limit]
    if re.search(r"<\s*(html|head|body|title)\b", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        if title and title.group(1).strip():
            return squash(html.unescape(title.group(1)))[:limit]
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return squash(text)[:limit]


def _json_message(document: Any) -> str:
    if isinstance(document, dict):
        for key in ("description", "detail", "message", "error", "title", "code"):
            value = document.get(key)
            if value:
                return _json_message(value) if not isinstance(value, str) else squash(value)
        return squash(json.dumps(document))
    if isinstance(document, list):
        # FastAPI validation errors: [{"loc": [...], "msg": "..."}, ...]
        parts = []
        for entry in document:
            if isinstance(entry, dict) and "msg" in entry:
                where = ".".join(str(p) for p in entry.get("loc", []) if p != "body")
                parts.append(f"{where}: {entry['msg']}" if where else str(entry["msg"]))
            else:
                parts.append(_json_message(entry))
        return "; ".join(parts)
    return squash(str(document))


def squash(text: str) -> str:
    """Runs of whitespace (newlines of a body, indentation of a traceback) as one space."""
    return re.sub(r"\s+", " ", text).strip()


def root_cause(error: BaseException) -> str:
    """The first exception in the chain that says something: `requests` wraps urllib3's, often wordless."""
    while error.__context__ is not None and not str(error):
        error = error.__context__
    return squash(str(error))[:MESSAGE_CHARS]


def connection_problem(error: Exception) -> str:
    """A `requests` ConnectionError in a few words (refused, host not found...), else its own text."""
    text = str(error)
    if "refused" in text.lower():
        return "connection refused"
    if re.search(r"Name or service not known|nodename nor servname|getaddrinfo failed|Temporary failure in name",
                 text):
        return "host not found"
    if "timed out" in text.lower():
        return "connection timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection without answering"
    return squash(text)[:MESSAGE_CHARS]
