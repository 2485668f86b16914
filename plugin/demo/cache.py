"""Where the demo cube lives and how it gets there without ever being half-written.

Generation writes into ``<root>.partial-<pid>`` next to the target and renames it into place
only when complete, with ``manifest.json`` written last: a crash, a cancel or a concurrent
QGIS leaves either the previous cube, a complete new one, or nothing. Reuse only reads the
manifest, so opening QGIS on an existing cube costs one small file read.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import layout

_LOCK = threading.Lock()
#: Leftover partial directories older than this are removed even if their owner looks alive.
_STALE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class DemoCube:
    """Paths of a complete demo cube."""

    root: Path  #: the cube directory (holds manifest.json)
    catalog: Path  #: stac/catalog.json, the root STAC catalog
    collections: dict[str, Path]  #: collection id -> its collection.json
    zarr: Path  #: the Zarr v2 cube of tile A
    truth: Path  #: the truth directory (truth.json and rasters)
    eopf_catalog: Path | None = None  #: eopf/catalog.json: EOPF Zarr products of tile A (demo-eopf-s2-l2a)


def default_demo_dir() -> Path:
    """``$CUBESCOPE_DEMO_DIR``, else the user's cache directory / cubescope / demo-cube-<version>."""
    env = os.environ.get("CUBESCOPE_DEMO_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cubescope" / f"demo-cube-{layout.GENERATOR_VERSION}"


def describe(root: Path) -> DemoCube:
    """The paths of the cube at `root` (does not check that they exist)."""
    return DemoCube(
        root=root,
        catalog=layout.catalog_path(root),
        collections={cid: layout.collection_path(root, cid) for cid in layout.COLLECTION_IDS},
        zarr=layout.zarr_path(root),
        truth=layout.truth_dir(root),
        eopf_catalog=layout.eopf_catalog_path(root),
    )


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / layout.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(root: Path, seed: int = layout.DEFAULT_SEED) -> bool:
    """True if `root` holds a complete cube of this generator version and seed."""
    m = read_manifest(root)
    return bool(m and m.get("complete") is True and m.get("generator_version") == layout.GENERATOR_VERSION
                and m.get("seed") == seed)


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(root: Path) -> None:
    """Remove ``<root>.partial-<pid>``/``.old-<pid>`` left by processes that died mid-way."""
    if not root.parent.is_dir():
        return
    for sib in root.parent.iterdir():
        for marker in (".partial-", ".old-"):
            prefix = root.name + marker
            if not sib.name.startswith(prefix) or not sib.name[len(prefix):].isdigit():
                continue
            pid = int(sib.name[len(prefix):])
            age = time.time() - sib.stat().st_mtime
            if pid != os.getpid() and (not _pid_alive(pid) or age > _STALE_SECONDS):
                shutil.rmtree(sib, ignore_errors=True)


def _manifest(seed: int) -> dict:
    import numpy
    from osgeo import gdal

    return {
        "generator_version": layout.GENERATOR_VERSION,
        "seed": seed,
        "complete": True,
        "created_with": {
            "generator": "cubescope.plugin.demo",
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "gdal": gdal.__version__,
        },
        "layout": {
            "catalog": f"{layout.STAC_DIR}/catalog.json",
            "collections": {cid: f"{layout.STAC_DIR}/{cid}/collection.json" for cid in layout.COLLECTION_IDS},
            "zarr": f"{layout.ZARR_DIR}/{layout.ZARR_NAME}",
            "truth": f"{layout.TRUTH_DIR}/truth.json",
        },
    }


def _install(partial: Path, root: Path, seed: int) -> None:
    """Move the finished `partial` to `root`, replacing an outdated cube there."""
    pid = os.getpid()
    if root.exists():
        if is_complete(root, seed):  # another process finished first
            shutil.rmtree(partial, ignore_errors=True)
            return
        old = root.with_name(f"{root.name}.old-{pid}")
        os.replace(root, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(partial, root)
    except OSError:
        if not is_complete(root, seed):
            raise
        shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def _gdal_exceptions():
    """GDAL/OSR errors as exceptions while generating, restored afterwards: inside QGIS the
    setting is shared by every plugin, so it must not stay switched on."""
    from osgeo import gdal, osr

    previous = (gdal.GetUseExceptions(), osr.GetUseExceptions())
    gdal.UseExceptions()
    osr.UseExceptions()
    try:
        yield
    finally:  # in reverse order: GDAL keeps its error handlers on a stack
        if not previous[1]:
            osr.DontUseExceptions()
        if not previous[0]:
            gdal.DontUseExceptions()


def ensure_demo_cube(
    root: Path | None = None,
    seed: int = layout.DEFAULT_SEED,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> DemoCube:
    """Return the demo cube at `root`, generating it first unless a complete one is there.

    Generation takes some seconds; `progress` receives fractions 0..1 now and then and
    `is_canceled` is polled between items (raising :class:`DemoCubeCanceled`).
    """
    root = Path(root).expanduser().absolute() if root is not None else default_demo_dir().absolute()
    if is_complete(root, seed):
        if progress is not None:
            progress(1.0)
        return describe(root)
    with _LOCK:
        if is_complete(root, seed):
            return describe(root)
        from .generator import generate

        root.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_siblings(root)
        partial = root.with_name(f"{root.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            with _gdal_exceptions():
                generate(partial, seed, progress, is_canceled)
            (partial / layout.MANIFEST).write_text(json.dumps(_manifest(seed), indent=2) + "\n", encoding="utf-8")
            _install(partial, root, seed)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return describe(root)
