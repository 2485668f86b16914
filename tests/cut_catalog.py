"""A copy of the demo catalog whose Sentinel-2 red COGs fail partway through a read, and the files under a
folder this process still has open: for the tests of a job that fails midway."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def linked_copy(demo_cube, folder: Path) -> Path:
    """A copy of the demo's STAC catalog in ``folder`` to edit: its JSON copied, its rasters linked (cheap,
    and a test that changes a raster replaces the link, never the demo's file). Returns the catalog."""

    def copy(source: str, target: str) -> None:
        if source.endswith(".json"):
            shutil.copy2(source, target)
        else:
            os.symlink(source, target)

    shutil.copytree(demo_cube.catalog.parent, folder, copy_function=copy)
    return folder / demo_cube.catalog.name


def catalog_with_cut_red(demo_cube, folder: Path) -> Path:
    """A copy of the demo catalog (its JSON copied, its rasters linked) whose Sentinel-2 red COGs end where
    their second row of tiles starts: real files that a read fails on partway through."""
    from osgeo import gdal

    linked_copy(demo_cube, folder)
    for red in sorted((folder / "demo-s2-l2a").glob("*/red.tif")):
        source = red.resolve()
        dataset = gdal.Open(str(source))  # kept while its band is used (GDAL would crash)
        lower = int(dataset.GetRasterBand(1).GetMetadataItem("BLOCK_OFFSET_0_1", "TIFF"))
        del dataset
        red.unlink()
        red.write_bytes(source.read_bytes()[:lower])
    return folder / demo_cube.catalog.name


def open_files_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process has open (Linux: /proc/self/fd)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(f"{folder}/"):
            found.append(target)
    return found
