"""Turning STAC items into pixels and pixels into rasters: the block engine and the per-pixel operations.

Two packages: `ops` (what a pixel becomes) and `engine` (which pixels, read how, written where).
May import `stac` and `cube`; no QGIS.
"""
