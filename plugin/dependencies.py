"""Which optional Python packages are missing, and how to install them without breaking QGIS.

Standalone on purpose (standard library only, no package-relative imports): the plugin calls it
at load time, before anything that might need the missing packages, and `make setup` runs it as a
script to produce the same pip constraints a user's QGIS gets.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS_FILE = Path(__file__).with_name("requirements.txt")

# Packages QGIS (or the OS) compiled against its own GDAL/PROJ/GEOS/Qt. pip must never replace
# them: a numpy 2 or a rasterio wheel with its own libgdal inside QGIS is a crash waiting to happen.
PINNED_DISTRIBUTIONS = ("numpy", "GDAL", "rasterio", "pandas", "pyproj", "scipy", "PyQt5")


@dataclass(frozen=True)
class Requirement:
    """One optional package of the plugin."""

    spec: str
    """pip requirement, e.g. ``pystac-client>=0.7``."""
    module: str
    """Import name probed to decide whether it is installed, e.g. ``pystac_client``."""
    enables: str
    """What the user loses without it, in their words."""

    @property
    def name(self) -> str:
        return re.split(r"[<>=!~\[ ]", self.spec, maxsplit=1)[0]


def read_requirements(path: Path = REQUIREMENTS_FILE) -> list[Requirement]:
    """Parse ``spec  # module | enables`` lines."""
    requirements = []
    for line_no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, sep, comment = line.partition("#")
        module, bar, enables = comment.partition("|")
        if not sep or not bar or not module.strip():
            raise ValueError(f"{path}:{line_no}: expected 'spec  # module | what it enables', got {raw!r}")
        requirements.append(Requirement(spec.strip(), module.strip(), enables.strip()))
    return requirements


def is_importable(module: str) -> bool:
    """True when ``module`` can be imported, without importing it (cheap at plugin start)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # find_spec("a.b") imports "a"; a missing parent raises instead of returning None.
        return False


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def is_satisfied(requirement: Requirement) -> bool:
    """Importable, and not older than the spec's ``>=`` bound (Debian 12's shapely 1.8 is too old)."""
    if not is_importable(requirement.module):
        return False
    bound = re.search(r">=\s*([\w.]+)", requirement.spec)
    if not bound:
        return True
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return True  # importable but not installed by pip (vendored by a distribution): trust it
    return _version_tuple(installed) >= _version_tuple(bound.group(1))


def missing_requirements(requirements: list[Requirement] | None = None) -> list[Requirement]:
    """Requirements not importable, or installed in a version older than the spec allows."""
    return [r for r in (requirements or read_requirements()) if not is_satisfied(r)]


def constraint_lines() -> list[str]:
    """``name==version`` for every protected distribution installed in this Python."""
    lines = []
    for dist in PINNED_DISTRIBUTIONS:
        try:
            lines.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return lines


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


def pip_command(requirements: list[Requirement], constraints_file: Path) -> list[str]:
    """The pip command that installs ``requirements`` into the user's site-packages."""
    command = [python_executable(), "-m", "pip", "install", "--disable-pip-version-check"]
    in_virtualenv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    if not in_virtualenv:
        command.append("--user")
    command += ["--constraint", str(constraints_file)]
    if sys.platform.startswith("linux"):
        # Built against the system GEOS that QGIS loads: a wheel's own GEOS gets its symbols bound to
        # QGIS's inside the QGIS process and geometry results go wrong (needs libgeos-dev and a compiler).
        command += ["--no-binary", "shapely"]
    command += [r.spec for r in requirements]
    return command


def _main(argv: list[str]) -> int:
    if argv[1:] == ["constraints"]:
        print("\n".join(constraint_lines()))
        return 0
    if argv[1:] == ["missing"]:
        for r in missing_requirements():
            print(f"{r.name}: {r.enables}")
        return 0
    print(f"usage: {argv[0]} constraints|missing", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
