"""Points and class polygons of a QGIS vector layer or Processing feature source, in lon/lat.

The chips (and minicube) jobs take plain tuples so that the pure layer never sees a QGIS object; the
Analysis tab and the Processing algorithms both turn their layers into those tuples here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsGeometry,
    QgsWkbTypes,
)

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def in_wgs84(features: Iterable[QgsFeature], crs: QgsCoordinateReferenceSystem,
             context: QgsCoordinateTransformContext | None = None) -> Iterator[tuple[QgsFeature, QgsGeometry]]:
    """(feature, geometry in EPSG:4326) for every feature with a geometry."""
    transform = QgsCoordinateTransform(crs, WGS84, context or QgsCoordinateTransformContext())
    for feature in features:
        geometry = feature.geometry()
        if geometry is None or geometry.isEmpty():
            continue
        geometry = QgsGeometry(geometry)
        geometry.transform(transform)
        yield feature, geometry


def points(features: Iterable[QgsFeature], crs: QgsCoordinateReferenceSystem, id_field: str = "",
           context: QgsCoordinateTransformContext | None = None) -> tuple[tuple[str, float, float], ...]:
    """(id, lon, lat) per point feature (the first point of a multipoint); ids from ``id_field`` or the fid."""
    found = []
    for feature, geometry in in_wgs84(features, crs, context):
        if geometry.type() != Qgis.GeometryType.Point:
            raise ValueError(f"Feature {feature.id()} is not a point")
        point = geometry.asMultiPoint()[0] if QgsWkbTypes.isMultiType(geometry.wkbType()) else geometry.asPoint()
        found.append((str(feature[id_field] if id_field else feature.id()), point.x(), point.y()))
    if not found:
        raise ValueError("The points layer has no point")
    return tuple(found)


def class_polygons(features: Iterable[QgsFeature], crs: QgsCoordinateReferenceSystem, field: str,
                   context: QgsCoordinateTransformContext | None = None) -> tuple[tuple[dict, float], ...]:
    """(GeoJSON geometry in lon/lat, class value) per polygon; the class must be a number."""
    if not field:
        raise ValueError("Choose the numeric class field of the label polygons")
    shapes = []
    for feature, geometry in in_wgs84(features, crs, context):
        try:
            value = float(feature[field])
        except (TypeError, ValueError, KeyError):
            raise ValueError(f"Feature {feature.id()}: class '{feature[field]}' of field '{field}' is not a number") \
                from None
        shapes.append((json.loads(geometry.asJson()), value))
    return tuple(shapes)
