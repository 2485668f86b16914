"""The checks plugins.qgis.org runs on an uploaded plugin ZIP, offline, so `make package` fails first.

The official upload validator (QGIS-Django's plugins/validator.py) refuses a ZIP that is over 25 MB,
holds a path with `..` or a leading `/`, a `.pyc`, a `__MACOSX`, `.git` or `__pycache__` folder, a
corrupt member, no `<package>/__init__.py`, no `[general]` metadata with the required keys, a
package folder name that is not ASCII, an author with a slash, or no `<package>/LICENSE`. It also
fetches the tracker/repository/homepage URLs; without network we check that they are URLs.
More than one top folder is a warning there; here it is an error, as "Install from ZIP" needs one.

Usage: python tests/tools/validate_package.py PLUGIN.zip  -> exit 1 with one line per problem.
"""

from __future__ import annotations

import configparser
import re
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

MAX_BYTES = 25_000_000
REQUIRED_METADATA = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                     "tracker", "repository")
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
PLACEHOLDER_URLS = {"tracker": "http://bugs", "repository": "http://repo", "homepage": "http://homepage"}


def problems(path: Path) -> list[str]:
    """Every reason the official repository would refuse ``path``; empty when it would accept it."""
    found: list[str] = []
    if path.stat().st_size > MAX_BYTES:
        found.append(f"{path.stat().st_size} bytes, over the repository's {MAX_BYTES}")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        return [*found, f"not a ZIP: {error}"]
    with archive:
        names = archive.namelist()
        for name in names:
            if ".." in name or name.startswith("/"):
                found.append(f"{name}: path information is refused")
            if name.endswith((".pyc", ".pyo")):
                found.append(f"{name}: compiled Python is refused")
            if set(name.split("/")) & set(FORBIDDEN_DIRS):
                found.append(f"{name}: inside a refused folder ({', '.join(FORBIDDEN_DIRS)})")
        if (bad := archive.testzip()) is not None:
            found.append(f"{bad}: corrupt member (CRC)")
        if not names or "/" not in names[0]:
            return [*found, "no folder inside: not a plugin"]
        tops = sorted({name.split("/")[0] for name in names})
        if len(tops) != 1:
            found.append(f"expected one top folder, found {tops}")
        package = names[0].split("/")[0]  # the repository takes the first member's folder
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]+", package):
            found.append(f"{package}: the top folder must be an ASCII name")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{required}" not in names:
                found.append(f"{package}/{required} is missing")
        if f"{package}/metadata.txt" in names:
            found += metadata_problems(archive.read(f"{package}/metadata.txt").decode("utf-8"), package, names)
    return found


def metadata_problems(text: str, package: str, names: list[str]) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive there
    parser.read_string(text)
    if not parser.has_section("general"):
        return ["metadata.txt has no [general] section"]
    general = dict(parser.items("general"))
    found = [f"metadata.txt lacks {key}" for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    if "/" in general.get("author", ""):
        found.append("metadata.txt: the author may not contain a slash")
    for key in ("tracker", "repository", "homepage"):
        url = general.get(key)
        if url is None:
            continue
        parts = urlparse(url)
        if url == PLACEHOLDER_URLS[key] or not (parts.scheme and parts.netloc):
            found.append(f"metadata.txt: {key}={url!r} is not a real URL")
    icon = general.get("icon", "").removeprefix("./")
    if icon and f"{package}/{icon}" not in names:
        found.append(f"metadata.txt: icon {icon} is not in the package")
    return found


if __name__ == "__main__":
    zip_path = Path(sys.argv[1])
    reasons = problems(zip_path)
    for reason in reasons:
        print(f"{zip_path.name}: {reason}", file=sys.stderr)
    sys.exit(1 if reasons else 0)
