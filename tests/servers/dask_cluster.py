"""A Dask cluster with real worker processes on loopback, as a user's "scale out" setting points to.

Processes (not threads) so tests see what a remote cluster does: tasks and data are pickled and run
in other interpreters, away from the QGIS process.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .ports import HOST, STARTUP_TIMEOUT, free_port, port_open
from .process import ServerProcess, ServerStartError, server_env

if TYPE_CHECKING:
    from distributed import LocalCluster


def start_dask_cluster(local_directory: Path, n_workers: int = 2) -> LocalCluster:
    """Start a scheduler and `n_workers` single-threaded worker processes on 127.0.0.1.

    Workers spill and lock files under `local_directory`, not the /tmp/dask-scratch-space other runs share.
    """
    # Imported here: every test session loads the fixtures, and distributed takes ~0.3 s to import.
    from distributed import LocalCluster

    return LocalCluster(
        processes=True,
        n_workers=n_workers,
        threads_per_worker=1,
        host="127.0.0.1",
        local_directory=str(local_directory),
        dashboard_address=None,
        # Without a dashboard the scheduler still serves /health on an HTTP port, by default the
        # fixed 8787 that a user's own cluster may hold: ask for a free one instead.
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


@dataclass
class BareDaskCluster:
    """`dask scheduler` and `dask worker` processes, stopped together."""

    address: str
    processes: list[ServerProcess]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def start_bare_dask_cluster(folder: Path, n_workers: int = 2) -> BareDaskCluster:
    """A scheduler and `n_workers` single-threaded workers whose Python cannot import Cubescope (no
    PYTHONPATH), like a user's cluster that has odc-stac but not the plugin; returned once every worker
    has joined. Tasks only run there if Cubescope's code travels with them (pickled by value)."""
    from distributed import Client

    port = free_port()
    dask = Path(sys.executable).with_name("dask")
    env = server_env()
    check = subprocess.run([sys.executable, "-c", "import cubescope"], env=env, cwd=folder, capture_output=True)
    if check.returncode == 0:
        raise RuntimeError("the bare cluster's Python must not see Cubescope, but it imports it")
    cluster = BareDaskCluster(f"tcp://{HOST}:{port}", [])
    try:
        scheduler = ServerProcess.start(
            "dask scheduler", [dask, "scheduler", "--host", HOST, "--port", str(port), "--dashboard-address",
                               f"{HOST}:0"], folder / "scheduler.log", env=env, cwd=folder)
        cluster.processes.append(scheduler)
        scheduler.wait_ready(lambda: port_open(port))
        workers = ServerProcess.start(
            "dask worker", [dask, "worker", cluster.address, "--nworkers", str(n_workers), "--nthreads", "1",
                            "--dashboard-address", f"{HOST}:0", "--local-directory", str(folder)],
            folder / "worker.log", env=env, cwd=folder)
        cluster.processes.append(workers)
        with Client(cluster.address, timeout=STARTUP_TIMEOUT, set_as_default=False) as client:
            try:
                client.wait_for_workers(n_workers, timeout=STARTUP_TIMEOUT)
            except TimeoutError as error:
                raise ServerStartError(f"dask workers did not join\n{workers.logs()}") from error
    except BaseException:
        cluster.stop()
        raise
    return cluster
