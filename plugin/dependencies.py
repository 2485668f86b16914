"""Which optional Python packages are missing, and which tested versions to install for them.

Standalone on purpose (standard library only, no package-relative imports): the plugin calls it at
load time, before anything that might need the missing packages, and the Makefile runs it as a script.

The versions come from ``locks/<generation>.txt``, uv-compiled locks of ``requirements.txt`` for each
Python/numpy generation we test (``py311-numpy1``...); ``locks/<generation>.system.txt`` names what
the distribution provides, which pip never installs. What is missing goes, pinned, without dependency
resolution, into ``<QGIS profile>/python/cubescope-packages``, which the plugin puts on ``sys.path``
before site-packages: that works on PEP 668 systems and never touches the system's or the user's
site-packages.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shlex
import site
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS_FILE = Path(__file__).with_name("requirements.txt")
LOCKS_DIR = Path(__file__).with_name("locks")
PACKAGES_FOLDER_NAME = "cubescope-packages"
STAGING_NAME = ".staging"
# Written into the packages folder: what it was installed for. Its compiled modules are for that
# Python; on another one they would shadow the system's working copies with broken ones.
GENERATION_MARKER = "cubescope-generation.txt"

# Packages QGIS (or the OS) compiled against its own GDAL/PROJ/GEOS/Qt. pip must never replace
# them: a numpy 2 or a rasterio wheel with its own libgdal inside QGIS is a crash waiting to happen.
PINNED_DISTRIBUTIONS = ("numpy", "GDAL", "rasterio", "pandas", "pyproj", "scipy", "PyQt5")
NEVER_INSTALLED = frozenset(
    {"numpy", "gdal", "rasterio", "pandas", "pyproj", "scipy", "pyqt5", "pyqt6", "sip", "pyqt5-sip",
     "pyqt6-sip", "pyqt5-qt5", "pyqt6-qt6"}
)


def canonical(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` and ``typing-extensions`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- Versions and specifiers (PEP 440, without importing pip or packaging) --------------------------

_VERSION = re.compile(
    r"""v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)
    (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>\d+)?)?
    (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?""",
    re.VERBOSE | re.IGNORECASE,
)
_PRE_ORDER = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_NO_DEV = 1 << 62  # sorts a final release after its .devN


@dataclass(frozen=True)
class Version:
    """A parsed PEP 440 version; ``key`` orders it as pip does."""

    epoch: int
    release: tuple[int, ...]
    pre: tuple[int, int] | None
    post: int | None
    dev: int | None
    local: tuple[tuple[int, int | str], ...]

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            return None
        g = match.groupdict()
        pre = (_PRE_ORDER[g["pre_l"].lower()], int(g["pre_n"] or 0)) if g["pre_l"] else None
        post_n = g["post_n1"] or g["post_n2"]
        post = int(post_n or 0) if (g["post_n1"] or g["post_l"]) else None
        dev = int(g["dev_n"] or 0) if g["dev_l"] else None
        local = tuple(
            (1, int(part)) if part.isdigit() else (0, part.lower())
            for part in re.split(r"[-_.]", g["local"] or "") if part
        )
        return cls(int(g["epoch"] or 0), tuple(int(p) for p in g["release"].split(".")), pre, post, dev, local)

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    @property
    def is_unknown(self) -> bool:
        """A placeholder, not a version: ``0+unknown`` (a setuptools-scm build without git, Debian's
        shapely) or ``999`` (xarray's fallback, what Debian's xarray 2023.01 reports)."""
        return self.epoch == 0 and (not any(self.release) or self.release == (999,))

    def key(self, with_local: bool = False) -> tuple:
        release = list(self.release)
        while release and release[-1] == 0:
            release.pop()
        if self.pre is None and self.post is None and self.dev is not None:
            pre = (-1, 0)  # 1.0.dev0 < 1.0a1
        else:
            pre = self.pre if self.pre is not None else (3, 0)
        post = -1 if self.post is None else self.post
        dev = _NO_DEV if self.dev is None else self.dev
        return (self.epoch, tuple(release), pre, post, dev) + ((self.local,) if with_local else ())


_CLAUSE = re.compile(r"\s*(~=|===|==|!=|<=|>=|<|>)\s*([^\s,;]+)\s*")


def _satisfies_clause(version: Version, text: str, op: str, wanted: str) -> bool:
    if op == "===":
        return text.strip().lower() == wanted.lower()
    if op in ("==", "!=") and wanted.endswith(".*"):
        prefix = Version.parse(wanted[:-2])
        if prefix is None:
            raise ValueError(f"not a version prefix: {wanted!r}")
        padded = version.release + (0,) * len(prefix.release)
        equal = version.epoch == prefix.epoch and padded[: len(prefix.release)] == prefix.release
        return equal if op == "==" else not equal
    bound = Version.parse(wanted)
    if bound is None:
        raise ValueError(f"not a version: {wanted!r}")
    if op == "~=":
        if len(bound.release) < 2:
            raise ValueError(f"~= needs at least two release numbers: {wanted!r}")
        prefix = ".".join(map(str, bound.release[:-1]))
        return _satisfies_clause(version, text, ">=", wanted) and _satisfies_clause(version, text, "==", prefix + ".*")
    if op in ("==", "!="):
        # ``==1.0`` matches 1.0+local; ``==1.0+local`` only that local version.
        equal = version.key(bool(bound.local)) == bound.key(bool(bound.local))
        return equal if op == "==" else not equal
    mine, theirs = version.key(), bound.key()
    if op == ">=":
        return mine >= theirs
    if op == "<=":
        return mine <= theirs
    same_release = mine[:2] == theirs[:2]  # epoch and release, trailing zeros aside
    if op == ">":  # never a post-release of the bound itself (PEP 440)
        return mine > theirs and not (same_release and version.post is not None and bound.post is None)
    # op == "<": never a pre-release of the bound itself, so 3.0.0b1 fails <3
    return mine < theirs and not (same_release and version.is_prerelease and not bound.is_prerelease)


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets every comma-joined clause of ``specifier`` (``>=2.12,<3``).

    Like pip judging an installed distribution: a pre-release is accepted when it meets the clauses.
    Raises ValueError on a version or clause that is not PEP 440.
    """
    parsed = Version.parse(version)
    if parsed is None:
        raise ValueError(f"not a version: {version!r}")
    for clause in filter(str.strip, specifier.split(",")):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise ValueError(f"not a version specifier: {clause!r} (in {specifier!r})")
        if not _satisfies_clause(parsed, version, *match.groups()):
            return False
    return True


# -- Requirements and what is missing ----------------------------------------------------------------

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


# -- Generations and their locks ---------------------------------------------------------------------

_GENERATION = re.compile(r"py(\d)(\d+)-numpy(\d+)")


def numpy_version() -> str | None:
    version = installed_version("numpy")
    if version is None and is_importable("numpy"):
        version = str(getattr(importlib.import_module("numpy"), "__version__", "")) or None
    return version


def generation() -> str:
    """``py311-numpy1``: the running Python's minor version and its numpy's major version."""
    numpy = numpy_version()
    if numpy is None:
        raise LookupError(f"numpy is not installed in this Python ({sys.executable}); QGIS always brings it")
    return f"py{sys.version_info.major}{sys.version_info.minor}-numpy{numpy.split('.')[0]}"


def lock_for(gen: str, locks_dir: Path = LOCKS_DIR) -> tuple[Path, bool]:
    """The lock for ``gen`` and True, or the closest (same numpy major, nearest Python) and False."""
    exact = locks_dir / f"{gen}.txt"
    if exact.is_file():
        return exact, True
    wanted = _GENERATION.fullmatch(gen)
    if wanted is None:
        raise ValueError(f"not a generation like py311-numpy1: {gen!r}")
    candidates = []
    for path in locks_dir.glob("py*-numpy*.txt"):
        found = _GENERATION.fullmatch(path.name.removesuffix(".txt"))
        if found and found[1] == wanted[1] and found[3] == wanted[3]:
            # Nearest minor; on a tie the newer, whose pins more likely have wheels for newer Pythons.
            candidates.append((abs(int(found[2]) - int(wanted[2])), -int(found[2]), path))
    if not candidates:
        tested = sorted(p.name for p in locks_dir.glob("py*-numpy*.txt") if not p.name.endswith(".system.txt"))
        raise LookupError(f"No tested lock for {gen} (numpy {wanted[3]}); tested: {', '.join(tested)}")
    return min(candidates)[2], False


def system_lock(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".txt") + ".system.txt")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    via: frozenset[str]
    """Canonical names of the locked packages that need it; ``-r <file>`` for a requirements file."""


_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def parse_lock(text: str) -> dict[str, LockedPackage]:
    """``name==version`` lines with uv's (or pip-compile's) ``# via`` annotations under each."""
    pins: dict[str, tuple[str, str]] = {}
    via: dict[str, set[str]] = {}
    current: str | None = None
    in_via = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not raw[0].isspace():
            in_via = False
            current = None
            if line.startswith("#") or line.startswith("-"):
                continue
            match = _PIN.match(line)
            if match is None:
                raise ValueError(f"lock line {line_no}: expected name==version, got {raw!r}")
            current = canonical(match[1])
            pins[current] = (match[1], match[2])
            via[current] = set()
        elif current is not None and line.startswith("#"):
            comment = line[1:]
            if comment.strip().startswith("via"):
                in_via = True
                parents = [comment.strip()[3:].strip()]
            elif in_via and comment[:1].isspace():
                parents = [comment.strip()]
            else:
                in_via = False
                parents = []
            via[current].update(p if p.startswith("-") else canonical(p) for p in parents if p)
    return {name: LockedPackage(shown, version, frozenset(via[name])) for name, (shown, version) in pins.items()}


def lock_closure(lock: dict[str, LockedPackage], roots: list[str]) -> list[str]:
    """``roots`` and every locked package with one of them among its ancestors (following ``via``)."""
    children: dict[str, set[str]] = {}
    for name, package in lock.items():
        for parent in package.via:
            children.setdefault(parent, set()).add(name)
    found: set[str] = set()
    queue = [canonical(r) for r in roots if canonical(r) in lock]
    while queue:
        name = queue.pop()
        if name not in found:
            found.add(name)
            queue.extend(children.get(name, ()))
    return sorted(found)


# -- What to install, where, and the command --------------------------------------------------------


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


def packages_folder(profile_dir: str | Path) -> Path:
    """``<QGIS profile>/python/cubescope-packages``, from ``QgsApplication.qgisSettingsDirPath()``."""
    return Path(profile_dir) / "python" / PACKAGES_FOLDER_NAME


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


# -- The packages folder on sys.path -----------------------------------------------------------------


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


# -- Command line --------------------------------------------------------------------------------------


def default_packages_folder() -> Path:
    """The default QGIS profile's packages folder on this system (the plugin passes its own profile)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home()))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return packages_folder(base / "QGIS" / "QGIS3" / "profiles" / "default")


def describe_plan(plan: Plan) -> list[str]:
    lines = [plan.lock_note, f"Into {plan.folder}:"]
    lines += [f"  {pin}: {pin.reason}" for pin in plan.install]
    if plan.kept:
        lines.append("Kept as installed: " + ", ".join(plan.kept))
    lines += [f"Not installed by pip: {m.name} ({m.reason}); the distribution provides it" for m in plan.unavailable]
    return lines


def _main(argv: list[str]) -> int:
    command = argv[1:2]
    try:
        if argv[1:] == ["generation"]:
            print(generation())
            return 0
        if argv[1:] == ["missing"]:
            for m in missing_requirements():
                print(f"{m.name}: {m.requirement.enables}")
            return 0
        if command == ["plan"] and len(argv) in (2, 4) and argv[2:3] in ([], ["--target"]):
            plan = plan_install(missing_requirements(), Path(argv[3]) if len(argv) == 4 else default_packages_folder())
            print("\n".join(f"# {line}" for line in describe_plan(plan)), file=sys.stderr)
            if plan.install:
                print(shlex.join(plan.command()))
            return 0
        if argv[1:] == ["constraints"]:
            print("\n".join(constraint_lines()))
            return 0
    except LookupError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"usage: {argv[0]} generation | missing | plan [--target FOLDER] | constraints", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
