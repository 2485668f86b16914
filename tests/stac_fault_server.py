"""A small real HTTP server with scripted answers, for the failures real catalogs show.

Each (method, path) is answered by a fixed `Reply` or by a function of the request; every request is
recorded so tests can check what the client sent. A reply's delay is slept in the server's own
thread (bounded, and cut short at shutdown), so a "slow server" is really slow on the wire.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    """bytes or str as is; anything else is sent as JSON."""
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    """The decoded JSON body, None when there was none."""


Handler = Union[Reply, Callable[[Recorded], Reply]]


class FaultServer:
    """`url` is http://<host>:<random port>; `route()` scripts answers; `requests` records them.

    ``host`` is 127.0.0.1 unless told: another loopback address (127.0.0.2) is another site for the
    credentials rule (`sites.within_auth_scope`), which is how tests play "another host"."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Recorded] = []
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer((host, 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fault-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # wakes slow replies so their threads end
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def sleep(self, seconds: float) -> None:
        self._release.wait(seconds)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                recorded = Recorded(self.command, parts.path, parse_qs(parts.query),
                                    {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(recorded)
                handler = server.routes.get((self.command, parts.path))
                if handler is None:
                    reply = Reply(404, f"nothing scripted for {self.command} {parts.path}", "text/plain")
                else:
                    reply = handler(recorded) if callable(handler) else handler
                if reply.delay_s:
                    server.sleep(reply.delay_s)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing left to do

            do_GET = _answer  # noqa: N815 (http.server's naming)
            do_POST = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler
