"""What users build on the engine: regular cubes, minicubes and ML training chips.

May import `stac`, `cube` and `analysis`; no QGIS.
"""
