"""STAC catalogs, collections, search and asset hrefs. Pure: no QGIS imports."""
