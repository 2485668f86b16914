"""The block engine: a request is planned, read block by block (COG and Zarr), computed by `ops` and
streamed into a COG, with local threads or a Dask cluster.

May import `stac`, `cube` and `analysis.ops`; no products, no QGIS.
"""
