"""Train / validation / test splits by spatial blocks, so that neighbouring chips never leak across splits.

The plane is cut into square blocks of ``block_size`` (CRS units, metres for UTM) from the origin; each
block gets a split from a hash of (seed, column, row), deterministic on any machine. A chip keeps its
split only when its footprint grown by ``buffer`` touches blocks of that one split; otherwise it is
skipped as crossing a split boundary, so two chips of different splits are always at least
``buffer`` apart and never overlap.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class BlockSplitter:
    """Which split a place belongs to."""

    block_size: float
    """Side of a block in CRS units."""
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    """Expected shares of train, validation and test blocks."""
    buffer: float = 0.0
    """Minimum distance between chips of different splits (CRS units)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.block_size) and self.block_size > 0):
            raise ValueError(f"The block size must be a positive number, got {self.block_size!r}")
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions) or sum(self.fractions) <= 0:
            raise ValueError(f"Split fractions must be three non-negative numbers, got {self.fractions!r}")
        if self.buffer < 0:
            raise ValueError(f"The buffer must be 0 or more, got {self.buffer!r}")

    def block_of(self, x: float, y: float) -> tuple[int, int]:
        return math.floor(x / self.block_size), math.floor(y / self.block_size)

    def block_split(self, column: int, row: int) -> str:
        digest = hashlib.blake2b(f"{self.seed}:{column}:{row}".encode(), digest_size=8).digest()
        share = int.from_bytes(digest, "big") / 2**64 * sum(self.fractions)
        if share < self.fractions[0]:
            return TRAIN
        return VALIDATION if share < self.fractions[0] + self.fractions[1] else TEST

    def blocks_touched(self, bounds: Bounds) -> list[tuple[int, int]]:
        """Blocks the footprint (grown by the buffer) overlaps; touching an edge from inside does not count."""
        x0, y0, x1, y1 = (bounds[0] - self.buffer, bounds[1] - self.buffer, bounds[2] + self.buffer,
                          bounds[3] + self.buffer)
        eps = 1e-9 * self.block_size
        c0, r0 = self.block_of(x0 + eps, y0 + eps)
        c1, r1 = self.block_of(x1 - eps, y1 - eps)
        return [(c, r) for c in range(c0, c1 + 1) for r in range(r0, r1 + 1)]

    def split_of(self, bounds: Bounds) -> str | None:
        """The footprint's split, or None when it (with the buffer) reaches blocks of another split."""
        splits = {self.block_split(c, r) for c, r in self.blocks_touched(bounds)}
        return splits.pop() if len(splits) == 1 else None
