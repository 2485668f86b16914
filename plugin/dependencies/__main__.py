"""``python plugin/dependencies ...`` (as the README runs it) or ``python -m
cubescope.plugin.dependencies ...``: see :mod:`.cli`."""

import sys
from pathlib import Path

if __package__:
    from .cli import main
else:
    # Run as a folder, outside the cubescope package: the folder is sys.path[0], which cannot hold its
    # relative imports; its parent makes it the top-level package `dependencies`, standard library only.
    sys.path[0] = str(Path(__file__).parent.parent)
    from dependencies.cli import main

sys.exit(main(sys.argv))
