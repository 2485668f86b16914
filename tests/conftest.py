"""Shared fixtures: the demo cube (generated once per machine, reused), the real servers, QGIS."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_series import search_demo
from stac_fault_server import FaultServer

from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.demo import DemoCube, ensure_demo_cube
from cubescope.plugin.demo.truth import load_truth
from cubescope.plugin.stac.http import local_fetcher, requests_fetcher
from cubescope.plugin.stac.sources import Source, SourceKind

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

pytest_plugins = ["servers.fixtures", "protected_assets", "demo_dock"]

# A fresh QGIS authentication database per run, before pytest-qgis starts QGIS: tests store keys
# in it with a master password of their own, never in the user's.
_AUTH_DIR = tempfile.mkdtemp(prefix="cubescope-auth-")
os.environ.setdefault("QGIS_AUTH_DB_DIR_PATH", _AUTH_DIR)


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Remove the run's auth database, then end the process with pytest's own status.

    Python's final clean-up would free what is left of QGIS, Qt and GDAL objects after exitQgis; in
    one fresh-clone run of 606 passed tests that aborted the process ("corrupted size vs. prev_size
    while consolidating"), not yet traced, and a passed run would have read as failed. The tests
    have all run and been reported by then, and the atexit handlers still run; only the interpreter's
    teardown is skipped.
    """
    shutil.rmtree(_AUTH_DIR, ignore_errors=True)
    if _EXIT_STATUS and not config.option.collectonly:
        atexit._run_exitfuncs()  # as a normal exit does: private header files are removed there
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


@pytest.fixture(scope="session")
def demo_cube() -> DemoCube:
    """The demo cube with its ground truth; generation is deterministic, so a cached copy is reused."""
    return ensure_demo_cube(REPO / "build" / "cache" / "demo-cube")


@pytest.fixture(scope="session")
def truth(demo_cube) -> dict:
    """The demo cube's ground truth (``truth/truth.json``): shared by every test, so only read it."""
    return load_truth(demo_cube.root)


@pytest.fixture(scope="session")
def catalog_items(demo_cube) -> list[dict]:
    """The demo cube's Sentinel-2 items from its static catalog, as the dock gets them (local hrefs)."""
    found = search_demo(Source("demo", SourceKind.STATIC, str(demo_cube.catalog)), local_fetcher())
    assert len(found) == 74
    return found


@pytest.fixture(scope="module")
def cog_reader(catalog_items):
    """A pixel reader over :func:`catalog_items`, kept open for a module's tests."""
    with CogStackReader(catalog_items) as reader:
        yield reader


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real-world data beside the project; a user's fresh clone has none, so tests using it skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-world data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture()
def unused_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    from servers.ports import free_port

    return free_port()


def settle_tasks(qtbot, timeout_ms: int = 30_000) -> None:
    """Cancel QGIS background tasks a test left running and wait (bounded) until they end, so that
    widgets are not deleted under tasks still reporting to them and no test sees another's tasks."""
    from qgis.core import QgsApplication

    manager = QgsApplication.taskManager()
    manager.cancelAll()
    qtbot.waitUntil(lambda: manager.countActiveTasks() == 0, timeout=timeout_ms)


@pytest.fixture(scope="module")
def gdal_raises():
    """GDAL calls raise RuntimeError in a module that wants it, and only there: the rest of the suite
    tests the plugin as QGIS runs it, with GDAL's default of returning None (a module-level
    ``gdal.UseExceptions()`` switched it for every test collected after it)."""
    from osgeo import gdal

    previous = gdal.GetUseExceptions()
    gdal.UseExceptions()
    yield
    if not previous:
        gdal.DontUseExceptions()



@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A scriptable STAC fault server on 127.0.0.1 (tests/stac_fault_server.py), one per test."""
    fault = FaultServer().start()
    try:
        yield fault
    finally:
        fault.stop()


@pytest.fixture(scope="module")
def fetch() -> Iterator:
    """The pure client's requests fetcher, one per module."""
    with requests_fetcher() as fetcher:
        yield fetcher
