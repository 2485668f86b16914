"""Build the ZIP that QGIS's Plugin Manager "Install from ZIP" accepts: cubescope/<plugin files>.

Only what the plugin needs at run time goes in: no tests, caches, venvs, build or dev files.
Usage: python tests/tools/package.py OUTPUT_DIR  -> prints the ZIP's path
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INCLUDE = ["metadata.txt", "__init__.py", "LICENSE", "README.md", "plugin", "ui", "resources"]
EXCLUDE_DIRS = {"__pycache__", "screenshots"}
EXCLUDE_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def tracked_files() -> set[Path] | None:
    """Files git knows about, so stray local files never ship; None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {REPO / line for line in out.splitlines() if line}


def plugin_files() -> list[Path]:
    known = tracked_files()
    files = []
    for name in INCLUDE:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in candidates:
            relative = file.relative_to(REPO)
            if EXCLUDE_DIRS & set(relative.parts) or file.suffix in EXCLUDE_SUFFIXES:
                continue
            if known is not None and file not in known:
                continue
            files.append(file)
    return files


def build(output_dir: Path) -> Path:
    metadata = configparser.ConfigParser()
    metadata.read(REPO / "metadata.txt", encoding="utf-8")
    version = metadata["general"]["version"]
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"cubescope-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in plugin_files():
            archive.write(file, Path("cubescope") / file.relative_to(REPO))
    partial.replace(target)
    return target


if __name__ == "__main__":
    from validate_package import problems

    built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist")
    refused = problems(built)
    for reason in refused:
        print(f"{built.name}: the plugin repository would refuse it: {reason}", file=sys.stderr)
    if refused:
        built.unlink()
        sys.exit(1)
    print(built)
