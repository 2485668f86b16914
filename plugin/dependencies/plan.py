"""What an install puts into the packages folder and why: the missing requirements' closure from the
lock, pinned, without what is installed or what the distribution compiled; and the pip command."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .locks import LOCKS_DIR, generation, lock_closure, lock_for, parse_lock, system_lock
from .requirements import Missing, installed_version
from .versions import canonical

STAGING_NAME = ".staging"

# Packages QGIS (or the OS) compiled against its own GDAL/PROJ/GEOS/Qt. pip must never replace
# them: a numpy 2 or a rasterio wheel with its own libgdal inside QGIS is a crash waiting to happen.
PINNED_DISTRIBUTIONS = ("numpy", "GDAL", "rasterio", "pandas", "pyproj", "scipy", "PyQt5")
NEVER_INSTALLED = frozenset(
    {"numpy", "gdal", "rasterio", "pandas", "pyproj", "scipy", "pyqt5", "pyqt6", "sip", "pyqt5-sip",
     "pyqt6-sip", "pyqt5-qt5", "pyqt6-qt6"}
)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    reason: str
    """Why it is installed: the requirement's unmet reason, or ``needed by dask``."""

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Plan:
    """Exactly what an install would put into the packages folder, and why."""

    generation: str
    lock: Path
    exact: bool
    """False when no lock was tested for this generation and the closest one is used."""
    folder: Path
    install: tuple[Pin, ...]
    kept: tuple[str, ...]
    """Locked dependencies already installed here (``packaging 23.0``): kept as they are."""
    unavailable: tuple[Missing, ...]
    """Missing requirements pip must not or cannot install (the distribution provides them)."""

    @property
    def lock_note(self) -> str:
        if self.exact:
            return f"Versions from the lock tested for {self.generation} ({self.lock.name})."
        return (f"No lock was tested for {self.generation}; using the closest one, {self.lock.name}: "
                "these versions are untested with this Python.")

    @property
    def staging(self) -> Path:
        """pip installs here first; the installer then moves the result into ``folder``."""
        return self.folder / STAGING_NAME

    def command(self) -> list[str]:
        return pip_command(self.install, self.staging)



def plan_install(missing: list[Missing], folder: Path, gen: str | None = None,
                 locks_dir: Path = LOCKS_DIR) -> Plan:
    """The missing requirements' closure from the lock, pinned, without what is installed or protected."""
    gen = gen or generation()
    lock_path, exact = lock_for(gen, locks_dir)
    lock = parse_lock(lock_path.read_text(encoding="utf-8"))
    system = system_lock(lock_path)
    never = NEVER_INSTALLED | (set(parse_lock(system.read_text(encoding="utf-8"))) if system.is_file() else set())
    by_name = {canonical(m.name): m for m in missing}
    install, kept = [], []
    unavailable = [m for name, m in by_name.items() if name in never or name not in lock]
    closure = lock_closure(lock, list(by_name))
    for name in closure:
        package = lock[name]
        if name in never:
            continue
        if name in by_name:
            install.append(Pin(package.name, package.version, by_name[name].reason))
            continue
        have = installed_version(package.name)
        if have is not None:
            kept.append(f"{package.name} {have}")
            continue
        needers = sorted(p for p in package.via if p in closure)
        install.append(Pin(package.name, package.version, "needed by " + (", ".join(needers) or "the lock")))
    return Plan(gen, lock_path, exact, Path(folder), tuple(install), tuple(kept), tuple(unavailable))


def python_executable() -> str:
    """The Python interpreter behind this process: inside QGIS ``sys.executable`` is QGIS itself."""
    if Path(sys.executable).name.lower().startswith("python"):
        return sys.executable
    prefix = Path(sys.exec_prefix)
    if os.name == "nt":
        candidates = [prefix / "python.exe", prefix / "python3.exe"]
    else:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        candidates = [prefix / "bin" / f"python{version}", prefix / "bin" / "python3"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(
        "Cannot find the Python interpreter of this QGIS; looked for " + ", ".join(map(str, candidates))
    )


def pip_command(pins: tuple[Pin, ...] | list[Pin], target: Path) -> list[str]:
    """pip installing exactly ``pins`` into ``target``: no resolution, no site-packages, no PEP 668 refusal."""
    command = [python_executable(), "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
               "--target", str(target)]
    if sys.platform.startswith("linux") and any(canonical(p.name) == "shapely" for p in pins):
        # Built against the system GEOS that QGIS loads: a wheel's own GEOS gets its symbols bound to
        # QGIS's inside the QGIS process and geometry results go wrong (needs libgeos-dev and a compiler).
        command += ["--no-binary", "shapely"]
    return command + [str(p) for p in pins]


def constraint_lines() -> list[str]:
    """``name==version`` for every protected distribution installed in this Python."""
    lines = []
    for dist in PINNED_DISTRIBUTIONS:
        version = installed_version(dist)
        if version is not None:
            lines.append(f"{dist}=={version}")
    return lines
