"""Turn LayerPlans into QGIS raster layers: checked with GDAL off the GUI thread, made on it, grouped
by tile and date, styled from the data, time-enabled, and carrying their provenance for saved projects.

Why two steps: with QGIS 3.22 a layer made in a QgsTask's thread gets a CRS whose PROJ object
belongs to that thread; when the pool retires the thread (30 s idle) the object goes with it. The
GUI thread's next transform of that CRS then fails silently and leaves QGIS's PROJ error logger
pointing at nothing (qgis/QGIS#59080): the next PROJ error logged on the GUI thread (a map canvas
refresh) crashes QGIS. So workers only open the files with GDAL, which reports errors and fills
GDAL's caches (a remote file's header is then read from memory); the GUI thread makes the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote, unquote, urlsplit

from qgis.core import (
    QgsContrastEnhancement,
    QgsDateTimeRange,
    QgsLayerTreeGroup,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterLayerTemporalProperties,
    QgsSingleBandGrayRenderer,
)
from qgis.PyQt.QtCore import QDateTime, Qt

from ..cube.gdal_env import GdalOpenError, opened
from ..cube.layer_plan import LayerPlan
from ..network import scope_gdal_options
from ..stac.hrefs import VSICURL_OPTIONS, GdalSource, redact, redact_text

PROVENANCE_KEYS = ("source", "collection", "item", "assets", "hrefs", "tile")


def qdatetime(when: datetime) -> QDateTime:
    return QDateTime.fromString(when.strftime("%Y-%m-%dT%H:%M:%SZ"), Qt.ISODate)


def gdal_prefix(path: str) -> str:
    """The path prefix GDAL options are scoped to: the host (or bucket) of a remote path."""
    inner = path.split('"')[1] if path.startswith("ZARR:") else path
    if inner.startswith(VSICURL_OPTIONS):
        # /vsicurl?header_file=..&list_dir=no&url=<encoded URL>: the options and the encoded host.
        head, sep, encoded = inner.partition("&url=")
        parts = urlsplit(unquote(encoded))
        return f"{head}{sep}{quote(f'{parts.scheme}://{parts.netloc}/', safe='')}" if sep else ""
    for scheme in ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/"):
        if inner.startswith(scheme):
            rest = inner[len(scheme):]
            if scheme == "/vsicurl/":
                scheme_host = rest.split("/", 3)[:3]  # https:, '', host
                return scheme + "/".join(scheme_host) + "/"
            return scheme + rest.split("/", 1)[0] + "/"
    return ""


def _scope_options(plan: LayerPlan) -> None:
    prefix = gdal_prefix(plan.path)
    if prefix and plan.config:
        scope_gdal_options(prefix, plan.config)


def _described(plan: LayerPlan) -> str:
    return plan.hrefs[0] if plan.hrefs else redact(plan.path)


def check_plan(plan: LayerPlan) -> None:
    """Worker thread: open the plan's path with GDAL as QGIS will (same path, same options), so a
    file that cannot be read is reported from here and a remote one's header is then in GDAL's
    cache when the GUI thread makes the layer. Raises OSError naming the asset's URL."""
    _scope_options(plan)
    try:
        with opened(GdalSource(plan.path, dict(plan.config), _described(plan))) as dataset:
            if dataset.RasterCount < 1:
                raise GdalOpenError(f"{_described(plan)} has no raster band")
    except GdalOpenError as error:
        raise OSError(redact_text(str(error)).replace("Cannot open", "GDAL cannot open", 1)) from error


def open_layer(plan: LayerPlan) -> QgsRasterLayer:
    """GUI thread only (see the module's note): the layer of a plan, styled and time-enabled."""
    _scope_options(plan)
    layer = QgsRasterLayer(plan.path, plan.name, "gdal")
    if not layer.isValid():
        summary = redact_text(layer.error().summary())  # GDAL names the path: show its URL instead
        del layer
        raise OSError(f"GDAL cannot open {_described(plan)}: {summary}")
    style(layer, plan)
    set_time(layer, plan)
    for key, value in zip(PROVENANCE_KEYS, (plan.source_name, plan.collection, plan.item_id,
                                            ",".join(plan.assets), "\n".join(plan.hrefs), plan.tile)):
        layer.setCustomProperty(f"cubescope/{key}", value)
    return layer


def style(layer: QgsRasterLayer, plan: LayerPlan) -> None:
    provider = layer.dataProvider()
    if layer.bandCount() >= 3:
        renderer = QgsMultiBandColorRenderer(provider, 1, 2, 3)
        setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
                   renderer.setBlueContrastEnhancement)
        for band, setter in enumerate(setters, start=1):
            setter(_enhancement(provider.dataType(band), plan.stretch[band - 1] if plan.stretch else None))
        layer.setRenderer(renderer)
    elif plan.stretch:
        renderer = QgsSingleBandGrayRenderer(provider, 1)
        renderer.setContrastEnhancement(_enhancement(provider.dataType(1), plan.stretch[0]))
        layer.setRenderer(renderer)


def _enhancement(data_type, stretch: tuple[float, float] | None) -> QgsContrastEnhancement:
    enhancement = QgsContrastEnhancement(data_type)
    enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
    if stretch:
        enhancement.setMinimumValue(stretch[0])
        enhancement.setMaximumValue(stretch[1])
    return enhancement


def set_time(layer: QgsRasterLayer, plan: LayerPlan) -> None:
    temporal = layer.temporalProperties()
    temporal.setMode(QgsRasterLayerTemporalProperties.ModeFixedTemporalRange)
    temporal.setFixedTemporalRange(QgsDateTimeRange(qdatetime(plan.start), qdatetime(plan.end), True, False))
    temporal.setIsActive(True)


def _group(parent: QgsLayerTreeGroup, name: str) -> QgsLayerTreeGroup:
    """An existing group, or a new one on top (new imagery draws over older layers and footprints)."""
    return parent.findGroup(name) or parent.insertGroup(0, name)


def add_layers(layers: Sequence[QgsRasterLayer], stack_name: str | None = None) -> list[QgsRasterLayer]:
    """Add to the project under "<tile>/<date>" groups, or "<tile>/<stack_name>" for a time stack."""
    project = QgsProject.instance()
    root = project.layerTreeRoot()
    for layer in layers:
        tile = layer.customProperty("cubescope/tile") or layer.customProperty("cubescope/collection") or "Cubescope"
        group = _group(root, str(tile))
        date = layer.name().split(" ", 1)[0]
        group = _group(group, stack_name or date)
        project.addMapLayer(layer, False)
        group.addLayer(layer)
        if stack_name:
            group.setExpanded(False)
    return list(layers)


def temporal_extent(layers: Sequence[QgsRasterLayer]) -> QgsDateTimeRange | None:
    ranges = [layer.temporalProperties().fixedTemporalRange() for layer in layers]
    if not ranges:
        return None
    return QgsDateTimeRange(min(r.begin() for r in ranges), max(r.end() for r in ranges))
