"""A real local stand-in for Planetary Computer's SAS token service, and an HTTP echo for GDAL.

`/token/<account>/<container>` answers `{"msft:expiry": ..., "token": ...}` like
`https://planetarycomputer.microsoft.com/api/sas/v1/token/<account>/<container>`; the expiry is
configurable and requests are counted per container so tests can see caching and refreshes.
`/echo/...` answers with the request's headers as JSON, so tests can check what GDAL sent.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def expire_in(self, seconds: float) -> None:
        self.expiry = datetime.now(timezone.utc) + timedelta(seconds=seconds)


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

        do_HEAD = do_GET  # noqa: N815 (http.server's name)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def token_server() -> Iterator[TokenServer]:
    """Start the server on a random loopback port; stopped when the block exits."""
    state = TokenServer()
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
