"""Minicubes: small (time, band, y, x) cubes around points, from STAC items or Zarr cubes, written as
Zarr or NetCDF. May import `stac`, `cube`, `analysis`; no other product, no QGIS."""
