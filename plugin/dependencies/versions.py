"""Distribution names and versions as pip compares them: PEP 503 names, PEP 440 versions and specifiers.

Without importing pip or packaging: neither is guaranteed inside QGIS's Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def canonical(name: str) -> str:
    """PEP 503 name: ``Typing_Extensions`` and ``typing-extensions`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
