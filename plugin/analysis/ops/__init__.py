"""Per-pixel operations on numpy/xarray blocks: composites, statistics, spectral indices, quality masks.

May import `stac` (band names) only: no I/O, no engine, no QGIS. Change a median here without touching
how blocks are read or written.
"""
