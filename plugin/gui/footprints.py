"""All footprints of a search in one time-enabled vector layer, its selection linked to the dock."""

from __future__ import annotations

import json

from qgis.core import (
    Qgis,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsGeometry,
    QgsJsonUtils,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QDateTime, QMetaType, Qt

from ..stac.items import item_cloud_cover, item_datetime, item_time_range
from ..stac.tiles import tile_id

FIELDS = [("id", QMetaType.Type.QString), ("collection", QMetaType.Type.QString),
          ("datetime", QMetaType.Type.QDateTime), ("cloud_cover", QMetaType.Type.Double),
          ("tile", QMetaType.Type.QString), ("end_datetime", QMetaType.Type.QDateTime)]


def footprint_fields() -> QgsFields:
    """The layer's fields (FIELDS), made without a layer: features can be built in a task's thread."""
    fields = QgsFields()
    for name, kind in FIELDS:
        fields.append(QgsField(name, kind))
    return fields


def footprint_geometries(items: list[dict]) -> list[QgsGeometry]:
    """`footprint_geometry` of each item, the GeoJSON of all parsed in one call (one per item only
    when that call cannot read them all: a malformed geometry among them)."""
    shaped = [i for i, item in enumerate(items) if item.get("geometry")]
    if len(shaped) > 1:
        collection = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": items[i]["geometry"], "properties": {}} for i in shaped]}
        parsed = QgsJsonUtils.stringToFeatureList(json.dumps(collection), QgsJsonUtils.stringToFields("{}"))
        if len(parsed) == len(shaped) and all(f.hasGeometry() for f in parsed):
            geometries = [QgsGeometry() for _ in items]
            for i, feature in zip(shaped, parsed):
                geometry = feature.geometry()
                geometry.convertToMultiType()
                geometries[i] = geometry
            return geometries
    return [footprint_geometry(item) for item in items]


def footprint_features(items: list[dict], tiles: dict[str, str] | None = None,
                       fields: QgsFields | None = None) -> list[QgsFeature]:
    """The footprints of ``items`` as features of the layer (pure values: any thread may build them)."""
    fields = fields if fields is not None else footprint_fields()
    features = []
    for item, geometry in zip(items, footprint_geometries(items)):
        feature = QgsFeature(fields)
        feature.setGeometry(geometry)
        feature.setAttributes(footprint_attributes(item, (tiles or {}).get(item.get("id", ""))))
        features.append(feature)
    return features


def footprint_geometry(item: dict) -> QgsGeometry:
    geometry = item.get("geometry")
    if not geometry:
        return QgsGeometry()
    features = QgsJsonUtils.stringToFeatureList(
        json.dumps({"type": "Feature", "geometry": geometry, "properties": {}}), QgsJsonUtils.stringToFields("{}")
    )
    if not features:
        return QgsGeometry()
    geometry = features[0].geometry()
    geometry.convertToMultiType()  # one layer type whether items have Polygons or MultiPolygons
    return geometry


def footprint_attributes(item: dict, group_tile: str | None = None) -> list:
    """The attributes in FIELDS' order; `end_datetime` is the end of the item's interval (its datetime
    for an instant), so an item known by its interval only covers that interval on the time slider."""
    when, end = item_datetime(item), item_time_range(item)[1]
    return [
        item.get("id", ""),
        item.get("collection", ""),
        _qt_datetime(when),
        item_cloud_cover(item),
        group_tile or tile_id(item) or "",
        _qt_datetime(max(end, when)),
    ]


def _qt_datetime(when) -> QDateTime:
    return QDateTime.fromString(when.strftime("%Y-%m-%dT%H:%M:%SZ"), Qt.DateFormat.ISODate)


def footprints_layer(items: list[dict], name: str, tiles: dict[str, str] | None = None) -> QgsVectorLayer:
    """A memory layer in EPSG:4326 (STAC geometries are lon/lat), temporal on its datetime field."""
    layer = empty_footprints_layer(name)
    add_footprints(layer, footprint_features(items, tiles))
    return layer


def add_footprints(layer: QgsVectorLayer, features: list[QgsFeature]) -> list[int]:
    """Features added with one provider call; their feature ids, in order."""
    ok, added = layer.dataProvider().addFeatures(features)
    layer.updateExtents()
    return [f.id() for f in added] if ok else []


def empty_footprints_layer(name: str) -> QgsVectorLayer:
    """The footprints layer without features, styled and temporal (see `footprints_layer`)."""
    layer = QgsVectorLayer("MultiPolygon?crs=EPSG:4326", name, "memory")
    provider = layer.dataProvider()
    provider.addAttributes([QgsField(n, t) for n, t in FIELDS])
    layer.updateFields()
    symbol = QgsFillSymbol.createSimple(
        {"color": "0,0,0,0", "outline_color": "217,72,15,255", "outline_width": "0.5"}
    )
    layer.renderer().setSymbol(symbol)
    temporal = layer.temporalProperties()
    temporal.setMode(Qgis.VectorTemporalMode.FeatureDateTimeStartAndEndFromFields)
    temporal.setStartField("datetime")
    temporal.setEndField("end_datetime")
    temporal.setIsActive(True)
    return layer


def ids_of_features(layer: QgsVectorLayer, feature_ids) -> list[str]:
    return [layer.getFeature(fid)["id"] for fid in feature_ids]


def feature_ids_of(layer: QgsVectorLayer, item_ids: set[str]) -> list[int]:
    return [f.id() for f in layer.getFeatures() if f["id"] in item_ids]
