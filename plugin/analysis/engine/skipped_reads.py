"""The inputs a run's block reads left out, gathered from every reading thread and Dask worker.

A read that fails (a 404, a file that is not a GeoTIFF, a truncated tile) does not stop the run: the
loader calls :func:`left_out` and the slice gets no pixels from that file, as if the item did not
cover the block. The run's :class:`Gathering` puts a run id into the
load options that reach every read, and afterwards holds what was left out, each input once (a
cluster's workers keep their own record, drained with ``client.run``). With
``fail_fast`` the first failure stops the run instead (:class:`StopAtFirstBadInputError`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ...stac.unreadable import (
    SkippedInputs,
    StopAtFirstBadInputError,
    UnreadableInputError,
    cause_of,
    display_url,
)

#: Load option keys (lower case: never taken for GDAL options, see reader.gdal_read_options).
RUN_KEY = "cubescope_run"
FAIL_FAST_KEY = "cubescope_fail_fast"
CLUSTER_KEY = "cubescope_on_cluster"



def _runs() -> dict[str, SkippedInputs]:
    """The runs of this process, by id. Kept on the threading module, not in a global of this one: the
    engine's code goes to Dask workers by value, and a global would go along with its locks."""
    return vars(threading).setdefault("_cubescope_skipped_reads", {})


class Gathering:
    """One run's record of left-out inputs; ``options`` go into the load's GDAL options."""

    def __init__(self, fail_fast: bool = False, client: Any = None) -> None:
        self.run = uuid.uuid4().hex
        self.inputs = SkippedInputs()
        self.options: dict[str, str] = {RUN_KEY: self.run}
        if fail_fast:
            self.options[FAIL_FAST_KEY] = "1"
        self._client = client
        if client is not None:  # workers are other processes: each keeps its own record, collected at the end
            self.options[CLUSTER_KEY] = "1"
        _runs()[self.run] = self.inputs

    def collect(self) -> SkippedInputs:
        """Everything left out so far (a cluster's reports drained from its queue)."""
        if self._client is not None:
            from .executor import ByValue

            for found in self._client.run(ByValue(_drain), _cluster_key(self.run)).values():
                for url, cause in found:
                    self.inputs.add(url, cause)
        return self.inputs

    def close(self) -> None:
        _runs().pop(self.run, None)

    def __enter__(self) -> Gathering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _messages(error: BaseException) -> str:
    """The error's message with those of the errors it came from: rasterio says "Chunk and warp failed",
    the GDAL error under it says which tile of which file could not be decoded."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "; ".join(part for part in reversed(parts) if part)


def _cluster_key(run: str) -> str:
    return f"cluster:{run}"


def _drain(key: str) -> list[tuple[str, str]]:
    """What this worker left out for one run, forgotten here once handed over."""
    inputs = _runs().pop(key, None)
    return [(item.url, item.cause) for item in inputs] if inputs is not None else []


def known_bad(env: Mapping[str, Any], uri: str) -> bool:
    """Whether this run already left ``uri`` out (here, in this process): not asked for again."""
    run = str(env.get(RUN_KEY, ""))
    inputs = _runs().get(_cluster_key(run) if env.get(CLUSTER_KEY) else run)
    return inputs is not None and inputs.contains(display_url(uri))


def left_out(env: Mapping[str, Any], uri: str, error: BaseException) -> None:
    """Record that ``uri`` could not be read, or raise: the run stops at the first bad input when
    asked to, and a load outside any gathering (a caller without the policy) fails as it always did."""
    url = display_url(uri)
    cause = error.cause if isinstance(error, UnreadableInputError) else cause_of(_messages(error))
    if env.get(FAIL_FAST_KEY):
        raise StopAtFirstBadInputError(url, cause) from error
    run = str(env.get(RUN_KEY, ""))
    if env.get(CLUSTER_KEY):  # on a Dask worker: its own record, which the run drains (Gathering.collect)
        _runs().setdefault(_cluster_key(run), SkippedInputs()).add(url, cause)
        return
    inputs = _runs().get(run)
    if inputs is None:
        raise error
    inputs.add(url, cause)


def report_skipped(inputs: SkippedInputs, say: Callable[[str], None]) -> None:
    """Say which inputs a run left out, by URL and cause ("Warning: " lines, which the dock and the
    Processing feedback show as warnings)."""
    if not len(inputs):
        return
    say(f"Warning: {inputs.summary()}; the result is computed from the others:")
    for line in inputs.lines():
        say(f"Warning:   {line}")
