"""A Dask cluster with real worker processes on loopback, as a user's "scale out" setting points to.

Processes (not threads) so tests see what a remote cluster does: tasks and data are pickled and run
in other interpreters, away from the QGIS process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
