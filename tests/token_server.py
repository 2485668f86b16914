"""A real local stand-in for Planetary Computer's SAS token service, and an HTTP echo for GDAL.

`/token/<account>/<container>` answers `{"msft:expiry": ..., "token": ...}` like
`https://planetarycomputer.microsoft.com/api/sas/v1/token/<account>/<container>`; the expiry is
configurable and requests are counted per container so tests can see caching and refreshes.
`/echo/...` answers with the request's headers as JSON, so tests can check what GDAL sent.
`/files/...` serves a directory like a protected bucket: only to requests carrying the API key header
(401 without it, 403 with a wrong one), with HEAD and byte ranges (206, Content-Range, multi-range
as multipart/byteranges) as GDAL's `/vsicurl/` needs.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RANGE = re.compile(r"(\d*)-(\d*)")


@dataclass
class TokenServer:
    """State shared with the handler; change `expiry` or `fail_with` between requests."""

    url: str = ""
    expiry: datetime = field(default_factory=lambda: datetime(2031, 1, 1, tzinfo=timezone.utc))
    fail_with: tuple[int, str] | None = None
    """(status, body) answered instead of a token (and on every other path but /echo)."""
    requests: Counter = field(default_factory=Counter)
    """(account, container) -> number of token requests."""
    echoed: list[dict[str, str]] = field(default_factory=list)
    """Headers of each /echo request."""
    files: Path | None = None
    """Directory served under `/files/`, only with the right `api_header`."""
    api_key: str = ""
    api_header: str = "X-API-Key"
    file_requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of each `/files/` request."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def expire_in(self, seconds: float) -> None:
        self.expiry = datetime.now(timezone.utc) + timedelta(seconds=seconds)

    def files_url(self, relative: str) -> str:
        return f"{self.url}/files/{relative}"

    def served(self, status: int) -> int:
        """How many `/files/` requests were answered with ``status``."""
        with self.lock:
            return sum(1 for _, _, answered in self.file_requests if answered == status)


def _ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Inclusive (first, last) byte ranges of a ``Range: bytes=...`` header; None if unsatisfiable."""
    ranges = []
    for spec in header.split("=", 1)[1].split(","):
        match = _RANGE.fullmatch(spec.strip())
        if match is None:
            return None
        first, last = match.groups()
        if not first:  # suffix range: the last N bytes
            first, last = str(max(0, size - int(last))), str(size - 1)
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start > end:
            return None
        ranges.append((start, end))
    return ranges


def _handler(state: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, text: str | bytes, content_type: str = "application/json") -> None:
            body = text.encode() if isinstance(text, str) else text
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if parts[0] == "files" and state.files is not None:
                self._file("/".join(parts[1:]))
                return
            if parts[0] == "echo":
                with state.lock:
                    state.echoed.append(dict(self.headers.items()))
                self._answer(200, json.dumps(dict(self.headers.items())))
                return
            fail = state.fail_with
            if parts[0] != "token" or len(parts) != 3:
                self._answer(*(fail or (404, '{"detail": "Not Found"}')))
                return
            with state.lock:
                state.requests[(parts[1], parts[2])] += 1
                count = state.requests[(parts[1], parts[2])]
                expiry = state.expiry
            if fail is not None:
                self._answer(*fail)
                return
            token = f"st=2024-01-01&se={expiry:%Y-%m-%d}&sp=rl&sr=c&sig={parts[1]}-{parts[2]}-{count}"
            document = {"msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "token": token}
            self._answer(200, json.dumps(document))

        def _file(self, relative: str) -> None:
            status, headers, body = self._file_answer(relative)
            # Counted before answering: the client may check the count as soon as it has the answer.
            with state.lock:
                state.file_requests.append((self.command, relative, status))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _file_answer(self, relative: str) -> tuple[int, dict[str, str], bytes]:
            """(status, headers, body) of a `/files/` request."""
            json_type = {"Content-Type": "application/json"}
            key = self.headers.get(state.api_header)
            if key is None:
                return 401, json_type, b'{"detail": "API key required"}'
            if key.strip() != state.api_key.strip():  # HTTP ignores whitespace around a value
                return 403, json_type, b'{"detail": "Wrong API key"}'
            path = (state.files / unquote(relative)).resolve()
            if state.files.resolve() not in path.parents or not path.is_file():
                return 404, json_type, b'{"detail": "Not Found"}'
            data = path.read_bytes()
            headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            header = self.headers.get("Range", "")
            if not header.startswith("bytes="):
                return 200, headers, data
            ranges = _ranges(header, len(data))
            if not ranges:
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            if len(ranges) == 1:
                first, last = ranges[0]
                return 206, {**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"}, data[first:last + 1]
            boundary = "cubescope-byteranges"
            body = b"".join(
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {first}-{last}/{len(data)}\r\n\r\n".encode() + data[first:last + 1]
                for first, last in ranges) + f"\r\n--{boundary}--\r\n".encode()
            return 206, {**headers, "Content-Type": f"multipart/byteranges; boundary={boundary}"}, body

        do_HEAD = do_GET  # noqa: N815 (http.server's name)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def token_server(files: Path | None = None, api_key: str = "", api_header: str = "X-API-Key"
                 ) -> Iterator[TokenServer]:
    """Start the server on a random loopback port; stopped when the block exits.

    With ``files``, that directory is served under `/files/` to requests whose ``api_header`` is
    ``api_key`` (e.g. ``Authorization`` and ``Basic ...``).
    """
    state = TokenServer(files=files, api_key=api_key, api_header=api_header)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="token-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
