"""Free loopback ports and bounded readiness polls.

Servers are started on random ports so parallel runs and leftover processes never collide; readiness is
polled against a deadline so a broken server fails the run quickly instead of hanging it.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """Return a TCP port the kernel just reported as free on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers with a 2xx status within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def port_open(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    what: str,
    timeout: float = STARTUP_TIMEOUT,
) -> None:
    """Poll `ready` until it is true; raise as soon as `alive` turns false or the deadline passes.

    The short backoff only paces the polls; every wait is bounded by `timeout`.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if ready():
            return
        if not alive():
            raise RuntimeError(f"{what} exited before it was ready")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f} s")
