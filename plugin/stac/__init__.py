"""STAC catalogs, collections, search and paging, items, bands and tiles; asset hrefs as GDAL paths with
their credentials and signing, and GDAL options scoped to a thread.

The bottom layer: imports nothing else of the plugin. Pure: no QGIS imports.
"""
