"""Minimal wheels and installed distributions made by hand, so pip tests need no index and no network."""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path


def _metadata(name: str, version: str, requires: list[str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    return "\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n"


def _escaped(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str], requires: list[str] = ()) -> Path:
    """A pure-Python ``py3-none-any`` wheel with ``files`` (path -> text) and a valid RECORD."""
    info = f"{_escaped(name)}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = _metadata(name, version, list(requires))
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: cubescope-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, text in contents.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    contents[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{_escaped(name)}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return wheel


def make_installed(site_dir: Path, name: str, version: str, files: dict[str, str] | None = None) -> Path:
    """A distribution as a system package manager leaves it: a ``.dist-info`` beside its modules."""
    info = site_dir / f"{_escaped(name)}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(_metadata(name, version, []))
    for path, text in (files or {}).items():
        (site_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (site_dir / path).write_text(text)
    return info
