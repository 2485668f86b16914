"""The packages folder in the QGIS profile: where it is, what it was installed for, and putting it on
``sys.path`` before site-packages."""

from __future__ import annotations

import importlib
import os
import site
import sys
from pathlib import Path

from .locks import generation

PACKAGES_FOLDER_NAME = "cubescope-packages"
# Written into the packages folder: what it was installed for. Its compiled modules are for that
# Python; on another one they would shadow the system's working copies with broken ones.
GENERATION_MARKER = "cubescope-generation.txt"


def packages_folder(profile_dir: str | Path) -> Path:
    """``<QGIS profile>/python/cubescope-packages``, from ``QgsApplication.qgisSettingsDirPath()``."""
    return Path(profile_dir) / "python" / PACKAGES_FOLDER_NAME


def default_packages_folder() -> Path:
    """The default QGIS profile's packages folder on this system (the plugin passes its own profile)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home()))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return packages_folder(base / "QGIS" / "QGIS3" / "profiles" / "default")


def _is_site_packages(entry: str, site_dirs: set[str]) -> bool:
    return os.path.normcase(os.path.abspath(entry)) in site_dirs or Path(entry).name.lower() in (
        "site-packages", "dist-packages")


def activate_packages_folder(path: str | Path) -> bool:
    """Put ``path`` on sys.path as ``site.addsitedir`` would, but before the first site-packages.

    So a package installed there because the system's copy failed its spec wins; safe because the
    folder only ever holds pinned packages, never numpy, GDAL or PyQt. Idempotent. False when there
    is no folder; ValueError when it was installed for another Python/numpy generation.
    """
    folder = os.path.abspath(path)
    if not os.path.isdir(folder):
        return False
    if any(entry and os.path.abspath(entry) == folder for entry in sys.path):
        return True
    marker = Path(folder, GENERATION_MARKER)
    if marker.is_file():
        installed_for = marker.read_text(encoding="utf-8").strip()
        running = generation()
        if installed_for != running:
            raise ValueError(f"{folder} holds packages installed for {installed_for}, this QGIS runs {running}: "
                             "not used; delete the folder and install again")
    before = set(sys.path)
    site.addsitedir(folder)  # appends the folder, then what its .pth files add
    added = [entry for entry in sys.path if entry not in before]
    rest = [entry for entry in sys.path if entry in before]
    site_dirs = {os.path.normcase(os.path.abspath(p))
                 for p in [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]}
    index = next((i for i, entry in enumerate(rest) if entry and _is_site_packages(entry, site_dirs)), len(rest))
    sys.path[:] = rest[:index] + added + rest[index:]
    importlib.invalidate_caches()
    return True
