"""The plugin's optional packages (``requirements.txt``) and which of them this Python does not meet."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from .versions import Version, satisfies

# The plugin folder, beside this package: packaged with the plugin and shared with the test locks.
REQUIREMENTS_FILE = Path(__file__).parent.parent / "requirements.txt"

_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


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

    @property
    def specifier(self) -> str:
        """The version clauses alone: ``>=2.12,<3`` for ``zarr>=2.12,<3``."""
        match = _REQUIREMENT.match(self.spec)
        return re.sub(r"\s+", "", match.group(2)) if match else ""


@dataclass(frozen=True)
class Missing:
    """A requirement this Python does not meet, and why, in the user's words."""

    requirement: Requirement
    reason: str
    """``not installed``, or ``zarr 3.0.0 installed, needs >=2.12,<3``."""

    @property
    def name(self) -> str:
        return self.requirement.name


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
    """True when ``module`` can be found, without importing it (cheap at plugin start)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # find_spec("a.b") imports "a"; a missing parent raises instead of returning None.
        return False


def installed_version(name: str) -> str | None:
    """The version the first distribution called ``name`` on sys.path declares, if any."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _known(version: str | None) -> str | None:
    parsed = Version.parse(version) if version else None
    return version if parsed is not None and not parsed.is_unknown else None


def unmet_reason(requirement: Requirement) -> str | None:
    """Why ``requirement`` is not met here, or None when it is.

    A distribution that declares no usable version (``0+unknown``, no metadata) is asked its module's
    ``__version__``; when that says nothing either, a module that imports is trusted.
    """
    if not is_importable(requirement.module):
        return "not installed"
    version = _known(installed_version(requirement.name))
    if version is None:
        try:
            module = importlib.import_module(requirement.module)
        except Exception as error:  # noqa: BLE001 (whatever an import raises makes it unusable)
            return f"installed but does not import ({type(error).__name__}: {error})"
        version = _known(str(getattr(module, "__version__", "") or "") or None)
        if version is None:
            return None
    specifier = requirement.specifier
    if specifier and not satisfies(version, specifier):
        return f"{requirement.name} {version} installed, needs {specifier}"
    return None


def missing_requirements(requirements: list[Requirement] | None = None) -> list[Missing]:
    """Requirements not importable, or installed in a version their spec does not allow."""
    found = []
    for requirement in read_requirements() if requirements is None else requirements:
        reason = unmet_reason(requirement)
        if reason is not None:
            found.append(Missing(requirement, reason))
    return found
