"""When a catalog request is tried again: 429 and 503 (and 502/504), with bounded exponential
backoff that honours the server's ``Retry-After``, and waits that a cancel cuts short.

Both network stacks (QGIS's and requests) use this policy, so a rate-limited catalog is treated the
same from the dock, a task and Processing. Pure: no QGIS imports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: Statuses that say "later", not "never": rate limiting and a gateway or server that is busy.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: How often a wait looks at the cancel flag.
CANCEL_POLL_S = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait; every wait is bounded, and so is their sum."""

    attempts: int = 4
    """Requests in all, the first one included."""
    first_delay_s: float = 0.5
    """The wait after the first failure when the server gives no Retry-After; doubled each time."""
    max_wait_s: float = 30.0
    """No single wait is longer, whatever Retry-After asks."""
    budget_s: float = 60.0
    """The waits of one request add up to no more than this."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        if self.first_delay_s < 0 or self.max_wait_s < 0 or self.budget_s < 0:
            raise ValueError(f"retry delays must not be negative, got {self!r}")


DEFAULT_POLICY = RetryPolicy()


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta seconds or an HTTP date); None if absent
    or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def next_wait_s(policy: RetryPolicy, status: int | None, headers: Mapping[str, str], attempt: int,
                waited_s: float) -> float | None:
    """How long to wait before attempt ``attempt + 1`` after ``status``; None to give up.

    ``attempt`` counts from 1 (the request just answered); ``waited_s`` is what was waited already.
    """
    if status not in RETRY_STATUSES or attempt >= policy.attempts:
        return None
    asked = retry_after_s(_header(headers, "retry-after"))
    wait = asked if asked is not None else policy.first_delay_s * 2 ** (attempt - 1)
    wait = min(wait, policy.max_wait_s)
    if waited_s + wait > policy.budget_s:
        return None
    return wait


def wait_or_cancel(seconds: float, is_canceled: Callable[[], bool] | None) -> bool:
    """Wait ``seconds`` in short steps; False as soon as ``is_canceled()`` turns true."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()  # never set: its bounded wait is an interruptible sleep for this thread
    while True:
        if is_canceled is not None and is_canceled():
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        pause.wait(min(left, CANCEL_POLL_S))


def retry_note(method: str, url: str, status: int | None, wait_s: float, attempt: int, policy: RetryPolicy) -> str:
    """The log line for a retry."""
    return (f"{method} {url} -> HTTP {status}: trying again in {wait_s:.1f} s "
            f"(attempt {attempt + 1} of {policy.attempts})")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
