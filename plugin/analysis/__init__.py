"""Spectral indices, quality masks, compositing and statistics on numpy/xarray. Pure: no QGIS imports."""
