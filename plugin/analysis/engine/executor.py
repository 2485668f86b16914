"""Running block computations locally (threads) or on a Dask cluster, results streamed to a writer.

Each block of the result is its own small dask graph (its reads and its reduction); at most a few
blocks are in flight and every finished block is handed to ``consume`` (the COG writer) at once, so
memory is bounded by the block size, not by the extent. Locally the blocks run in a thread pool,
each with dask's synchronous scheduler (numpy and GDAL release the GIL); on a cluster they are
submitted with ``Client.compute`` and gathered as they complete. The same functions run in both
places, so the results are identical.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

#: Seconds to wait for a Dask scheduler before giving up (no hang on a wrong address).
CONNECT_TIMEOUT_S = 10.0


class Canceled(Exception):  # noqa: N818 (public API name)
    """The user cancelled the job; nothing was written."""


class SchedulerUnreachable(ConnectionError):  # noqa: N818 (public API name)
    """The Dask scheduler did not answer; the message says where and what to try."""


#: Attribute of a block thread holding its :class:`BlockState` (on the thread object, not in a module
#: global: the analysis modules travel to Dask workers pickled by value; there it is absent).
STATE_ATTRIBUTE = "_cubescope_block"


class BlockState:
    """What a block computing in a local run shares with the runner: the run's stop event, set once
    the run is cancelled or failed (a block still reading gives up before its next time slice
    instead of reading on for a result nobody takes), and the time slices it has read so far (the
    runner's progress between two finished blocks: over a slow link one block takes seconds)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._reads = 0
        self._lock = threading.Lock()  # the chunk loader's reader threads count for the block

    @property
    def reads(self) -> int:
        return self._reads

    def read(self, slices: int = 1) -> None:
        with self._lock:
            self._reads += slices


def block_state() -> BlockState | None:
    """The state of the block this thread computes in a local run (None elsewhere)."""
    return getattr(threading.current_thread(), STATE_ATTRIBUTE, None)


def _compute_local(task: Any, state: BlockState | None = None) -> Any:
    """One block with ``state`` as this thread's :func:`block_state`."""
    thread = threading.current_thread()
    setattr(thread, STATE_ATTRIBUTE, state)
    try:
        return _compute_block(task)
    finally:
        setattr(thread, STATE_ATTRIBUTE, None)


def _compute_block(task: Any) -> Any:
    """One block with dask's synchronous scheduler, inside one rasterio environment.

    odc-stac enters a rasterio ``Env`` around every read; with an outer one already active these
    are cheap option updates instead of a GDAL environment set up and torn down per file (~1 ms).
    The scheduler is passed as the function itself: named ("sync"), dask would first import
    ``distributed`` to look for a client (0.3 s of import under the import lock, in the middle of
    the first blocks) and then ask for one on every block.
    """
    import dask
    from dask.local import get_sync

    try:
        import rasterio
    except ImportError:  # pragma: no cover - odc-stac depends on rasterio
        (result,) = dask.compute(task, scheduler=get_sync)
        return result
    with rasterio.Env():
        (result,) = dask.compute(task, scheduler=get_sync)
    return result


#: Seconds a thread waits for the pool's other threads to take their share of :func:`in_every_thread`
#: (they finish the block they are computing first).
EVERY_THREAD_WAIT_S = 120.0


def in_every_thread(pool: ThreadPoolExecutor, threads: int, job: Callable[[], None]) -> None:
    """Run ``job`` once in each of the ``threads`` threads of ``pool`` (starting those it has not started
    yet) and wait for them: each call holds its thread at a barrier until all have arrived, so no thread
    takes two. Should a thread stay busy past :data:`EVERY_THREAD_WAIT_S`, the barrier breaks and the
    calls left run in whichever threads are free (that thread's ``job`` may then not run)."""
    barrier = threading.Barrier(threads)

    def once() -> None:
        try:
            job()
        finally:
            try:
                barrier.wait(EVERY_THREAD_WAIT_S)
            except threading.BrokenBarrierError:
                pass

    wait([pool.submit(once) for _ in range(threads)])


#: What each local block thread runs when a run ends (the loaders close the files they keep open in
#: that thread). Registered by the loaders themselves, so that this module needs none of them.
_THREAD_CLEANUPS: list[Callable[[], None]] = []


def at_run_end_in_each_thread(cleanup: Callable[[], None]) -> None:
    """Have ``cleanup`` run in every local block thread after each run, succeeded or not."""
    if cleanup not in _THREAD_CLEANUPS:
        _THREAD_CLEANUPS.append(cleanup)


def _clean_up_thread() -> None:
    for cleanup in list(_THREAD_CLEANUPS):
        cleanup()


class BlockRunner:
    """Computes dask-delayed blocks and hands each result over as soon as it is ready."""

    def __init__(self, client: Any = None, threads: int = 0, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.client = client
        self.threads = threads or os.cpu_count() or 2
        self.timeout_s = timeout_s
        """How long a cluster may be without workers before the job fails (instead of waiting forever)."""

    @property
    def description(self) -> str:
        if self.client is not None:
            return f"Dask cluster {self.client.scheduler.address}"
        return f"{self.threads} local thread(s)"

    def run(
        self,
        tasks: Sequence[tuple[Any, Any]],
        consume: Callable[[Any, Any], None],
        is_canceled: Callable[[], bool] = lambda: False,
        progress: Callable[[float, int], None] | None = None,
        reads_per_block: int = 0,
    ) -> None:
        """Compute every ``(key, delayed)`` and call ``consume(key, result)`` in this thread.

        ``progress(done, total)`` follows the finished blocks; locally, given how many time slices a
        block reads (``reads_per_block``), ``done`` also counts the blocks in flight by the slices
        they have read. Raises :class:`Canceled` when ``is_canceled()`` turns true, after dropping
        what is queued.
        """
        if self.client is not None:
            self._run_distributed(tasks, consume, is_canceled, progress)
        else:
            self._run_local(tasks, consume, is_canceled, progress, reads_per_block)

    def _run_local(self, tasks, consume, is_canceled, progress, reads_per_block) -> None:
        limit = self.threads * 2
        pending: dict[Future, tuple[Any, BlockState]] = {}
        queue = list(tasks)
        done_count = 0
        shown = 0.0
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="cubescope-block") as pool:
            try:
                while queue or pending:
                    if is_canceled():
                        raise Canceled("Cancelled")
                    while queue and len(pending) < limit:
                        key, task = queue.pop(0)
                        state = BlockState(stop)
                        pending[pool.submit(_compute_local, task, state)] = (key, state)
                    finished, _ = wait(list(pending), timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        key, _state = pending.pop(future)
                        consume(key, future.result())
                        done_count += 1
                    if progress is not None:
                        in_flight = sum(min(state.reads / reads_per_block, 0.99) for _key, state in pending.values()
                                        ) if reads_per_block > 0 else 0.0
                        if done_count + in_flight > shown:
                            shown = done_count + in_flight
                            progress(shown, len(tasks))
            finally:
                stop.set()  # cancelled or failed: the blocks still running stop reading (BlockState)
                for future in pending:
                    future.cancel()
                # The loads keep their files open in these threads for the next block. Closed here, by
                # the threads that opened them: left to the garbage collector (a failed block's
                # traceback keeps the threads alive), GDAL closed them in another thread and crashed.
                in_every_thread(pool, self.threads, _clean_up_thread)

    def _run_distributed(self, tasks, consume, is_canceled, progress) -> None:
        limit = max(4, 2 * sum(self.client.nthreads().values()))
        pending: dict[Any, Any] = {}
        queue = list(tasks)
        done_count = 0
        ready = threading.Event()
        watch = {"since": None, "checked": 0.0}
        try:
            while queue or pending:
                if is_canceled():
                    raise Canceled("Cancelled")
                while queue and len(pending) < limit:
                    key, task = queue.pop(0)
                    future = self.client.compute(task)
                    future.add_done_callback(lambda _future: ready.set())
                    pending[future] = key
                finished = [future for future in pending if future.done()]
                if not finished:
                    ready.wait(0.5)
                    ready.clear()
                    self._check_workers(watch)
                    continue
                for future in finished:
                    key = pending.pop(future)
                    consume(key, future.result())
                    future.release()
                    done_count += 1
                    if progress is not None:
                        progress(done_count, len(tasks))
        finally:
            if pending:
                self.client.cancel(list(pending))


    def _check_workers(self, watch: dict) -> None:
        """SchedulerUnreachable when the cluster has had no worker for ``timeout_s`` (they died)."""
        now = time.monotonic()
        if now - watch["checked"] < 2.0:
            return
        watch["checked"] = now
        if self.client.nthreads():
            watch["since"] = None
        elif watch["since"] is None:
            watch["since"] = now
        elif now - watch["since"] > self.timeout_s:
            raise SchedulerUnreachable(
                f"The Dask cluster {self.client.scheduler.address} lost all its workers; check their logs "
                "(a worker that cannot import odc-stac or runs out of memory dies), or compute locally.")


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` on ``address``, or SchedulerUnreachable within ``timeout_s``."""
    try:
        from distributed import Client
    except ImportError as error:
        raise SchedulerUnreachable(
            f"Cannot use the Dask scheduler {address}: the 'distributed' package is not installed "
            "(pip install \"dask[distributed]\"), or leave the scheduler empty to compute locally") from error
    text = address.strip()
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        client = Client(text, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise SchedulerUnreachable(
            f"Cannot reach the Dask scheduler at {text} within {timeout_s:g} s ({_short(error)}). Check the "
            "address (tcp://host:8786) and that the scheduler is running, or leave the scheduler empty "
            "to compute locally.") from None
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError) as error:
        client.close()
        raise SchedulerUnreachable(
            f"The Dask scheduler at {text} has no workers (none joined within {timeout_s:g} s: "
            f"{_short(error)}). Start workers (dask worker {text}), or leave the scheduler empty to compute "
            "locally.") from None
    return client


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


@contextmanager
def block_runner(scheduler: str = "", threads: int = 0, timeout_s: float = CONNECT_TIMEOUT_S
                 ) -> Iterator[BlockRunner]:
    """A runner on the scheduler at ``scheduler`` (empty: local threads), closed afterwards."""
    if not scheduler.strip():
        yield BlockRunner(threads=threads)
        return
    client = connect(scheduler, timeout_s)
    try:
        yield BlockRunner(client=client, timeout_s=timeout_s)
    finally:
        client.close()


def _send_code_by_value() -> None:
    """Let cloudpickle copy this package's code into what it pickles (see :class:`ByValue`)."""
    import sys

    import cloudpickle

    plugin = __name__.split(".analysis.")[0]
    if plugin not in sys.modules:  # running from pickled code on a worker: it is all by value already
        return
    # Every pure layer: the engine's readers call the GDAL helpers of cube/ and the STAC helpers of
    # stac/, and the products submit their own block functions.
    for layer in ("stac", "cube", "analysis", "products"):
        module = sys.modules.get(f"{plugin}.{layer}")
        if module is not None and module.__name__ not in cloudpickle.list_registry_pickle_by_value():
            cloudpickle.register_pickle_by_value(module)


class ByValue:
    """A callable (or class) that pickles as its own code, so Dask workers need odc-stac, not Cubescope.

    Dask pickles task graphs with plain pickle, which refers to functions by module name: a worker
    would have to import ``cubescope``. This wrapper pickles as ``cloudpickle.loads(<the code>)``.
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self._payload: bytes | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.target(*args, **kwargs)

    def __reduce__(self) -> tuple:
        import cloudpickle

        if self._payload is None:  # once: every task of the graph carries the same function
            _send_code_by_value()
            self._payload = cloudpickle.dumps(self.target)
        return cloudpickle.loads, (self._payload,)
