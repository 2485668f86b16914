"""Regular data cubes: a collection resampled onto fixed time steps, written as COGs with a STAC
catalog or as one Zarr store. May import `stac`, `cube`, `analysis`; no other product, no QGIS."""
