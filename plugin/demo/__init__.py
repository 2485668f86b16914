"""Offline demo cube: a small, deterministic, STAC + COG + Zarr data cube with a known truth.

Importing this package is cheap (no numpy or GDAL): the generator is imported only when a
cube has to be written.
"""

from .cache import DemoCube, default_demo_dir, ensure_demo_cube
from .layout import DEFAULT_SEED, GENERATOR_VERSION, DemoCubeCanceled

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "DemoCube",
    "DemoCubeCanceled",
    "default_demo_dir",
    "ensure_demo_cube",
]
