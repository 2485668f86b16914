"""A QGIS CRS as the pure engine takes it (pyproj and odc-geo read it): "EPSG:n", or WKT otherwise."""

from __future__ import annotations

from qgis.core import Qgis, QgsCoordinateReferenceSystem


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """"EPSG:3035"; the WKT of any other CRS (a user-defined "USER:100000" means nothing outside this
    QGIS profile); "" when not set, which the engine reads as the data's own CRS."""
    if not crs.isValid():
        return ""
    return crs.authid() if crs.authid().upper().startswith("EPSG:") else crs.toWkt(
        Qgis.CrsWktVariant.Preferred)
