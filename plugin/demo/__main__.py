"""``python -m cubescope.plugin.demo [DIR] [--seed N]``: build (or find) the demo cube, print its root."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import DEFAULT_SEED, ensure_demo_cube


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cubescope.plugin.demo", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, help="cube directory (default: the user cache)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    start = time.monotonic()

    tty = sys.stderr.isatty()
    shown: list[int] = []

    def progress(fraction: float) -> None:
        step = int(fraction * 10)
        if not tty and shown and shown[-1] == step:  # logs get one line per 10 %
            return
        shown.append(step)
        bar = "#" * int(fraction * 30)
        end = "" if tty else "\n"
        print(f"\r  demo cube [{bar:<30}] {fraction:4.0%}", end=end, file=sys.stderr, flush=True)

    cube = ensure_demo_cube(args.root, seed=args.seed, progress=progress)
    print(f"\r  demo cube ready in {time.monotonic() - start:.1f} s{' ' * 30}", file=sys.stderr)
    print(cube.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
