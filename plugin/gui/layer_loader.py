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

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from qgis.core import (
    Qgis,
    QgsContrastEnhancement,
    QgsCoordinateTransform,
    QgsDateTimeRange,
    QgsInterval,
    QgsLayerTreeGroup,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandGrayRenderer,
    QgsTask,
    QgsTemporalNavigationObject,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QDateTime, QObject, Qt, QTimer
from qgis.PyQt.QtGui import QColor

from ..cube.layer_plan import LayerPlan, plan_layers, plan_zarr_layers
from ..network import AssetAccess, scope_gdal_options
from ..stac.gdal_env import GdalOpenError, opened
from ..stac.hrefs import VSICURL_OPTIONS, GdalSource, redact, redact_text
from ..stac.sources import Source

PROVENANCE_KEYS = ("source", "collection", "item", "assets", "hrefs", "tile")
LAYERS_PER_TURN = 8
"""Layers made per event-loop turn on the GUI thread (about 5 ms each, from GDAL's cache)."""


def qdatetime(when: datetime) -> QDateTime:
    return QDateTime.fromString(when.strftime("%Y-%m-%dT%H:%M:%SZ"), Qt.DateFormat.ISODate)


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
            setter(contrast_enhancement(provider.dataType(band), plan.stretch[band - 1] if plan.stretch else None))
        layer.setRenderer(renderer)
    elif provider.colorInterpretation(1) == Qgis.RasterColorInterpretation.PaletteIndex:
        # A class map with its own colour table (land cover): QGIS's paletted renderer shows its colours.
        layer.setRenderer(QgsPalettedRasterRenderer(provider, 1, _table_classes(provider.colorTable(1))))
    elif plan.stretch:
        renderer = QgsSingleBandGrayRenderer(provider, 1)
        renderer.setContrastEnhancement(contrast_enhancement(provider.dataType(1), plan.stretch[0]))
        layer.setRenderer(renderer)


def _table_classes(table) -> list:
    """The classes of a GDAL colour table: its 256 entries less the padding (the colour most of them
    share), so the legend lists the land-cover classes, not 245 black ones."""
    classes = QgsPalettedRasterRenderer.colorTableToClassData(table)
    colours = Counter(c.color.name(QColor.NameFormat.HexArgb) for c in classes)
    padding, count = colours.most_common(1)[0] if colours else ("", 0)
    return [c for c in classes if c.color.name(QColor.NameFormat.HexArgb) != padding] if count > 1 else classes


def contrast_enhancement(data_type, stretch: tuple[float, float] | None) -> QgsContrastEnhancement:
    enhancement = QgsContrastEnhancement(data_type)
    enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    if stretch:
        enhancement.setMinimumValue(stretch[0])
        enhancement.setMaximumValue(stretch[1])
    return enhancement


def set_time(layer: QgsRasterLayer, plan: LayerPlan) -> None:
    temporal = layer.temporalProperties()
    temporal.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)
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


# -- the two steps, for a whole request --------------------------------------------------------------
def check_item_layers(task: QgsTask, items: list[dict], bands: list[str], source: Source | None, workdir: Path,
                      stack: bool, access: AssetAccess) -> tuple[list[LayerPlan], list[str]]:
    """Worker thread: the plans of the items' bands that GDAL can open, and what could not be."""
    plans, problems = plan_layers(items, bands, source, workdir, stack=stack, signer=access.signer,
                                  credentials=access.credentials, header_file=access.header_file,
                                  is_canceled=task.isCanceled)
    return check_plans(task, plans, problems)


def check_zarr_layers(task: QgsTask, source: Source, variable: str, times: list, access: AssetAccess
                      ) -> tuple[list[LayerPlan], list[str]]:
    """Worker thread: the time steps of a Zarr variable that GDAL can open, and what could not be."""
    plans = plan_zarr_layers(source.url, variable, times, source, access.credentials, access.header_file)
    return check_plans(task, plans, [])


def check_plans(task: QgsTask, plans: Sequence[LayerPlan], problems: list[str]
                ) -> tuple[list[LayerPlan], list[str]]:
    """Worker thread: the plans GDAL can open (see :func:`check_plan`), with progress and cancel."""
    readable = []
    for number, plan in enumerate(plans, start=1):
        if task.isCanceled():
            break
        try:
            check_plan(plan)
            readable.append(plan)
        except OSError as error:
            problems.append(str(error))
        task.setProgress(100.0 * number / max(1, len(plans)))
    return readable, problems


def make_layers_in_turns(owner: QObject, plans: Sequence[LayerPlan], problems: list[str],
                         finish: Callable[[list[QgsRasterLayer], list[str]], None],
                         layers: list[QgsRasterLayer] | None = None) -> None:
    """GUI thread: the plans' layers, :data:`LAYERS_PER_TURN` per event-loop turn so that a stack of
    hundreds of dates never freezes the map; then ``finish(layers, problems)``. Stops quietly if
    ``owner`` (the panel that asked) was deleted meanwhile."""
    if sip.isdeleted(owner):
        return
    layers = [] if layers is None else layers
    for plan in plans[:LAYERS_PER_TURN]:
        try:
            layers.append(open_layer(plan))
        except OSError as error:
            problems.append(str(error))
    if len(plans) > LAYERS_PER_TURN:
        rest = plans[LAYERS_PER_TURN:]
        QTimer.singleShot(0, lambda: make_layers_in_turns(owner, rest, problems, finish, layers))
        return
    finish(layers, problems)


def zoom_if_outside(canvas, layers: Sequence[QgsRasterLayer]) -> None:
    """Show the layers when none of them is in view (a view already on them is left as it is)."""
    if canvas is None:
        return
    extent = QgsRectangle()
    for layer in layers:
        transform = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
        extent.combineExtentWith(transform.transformBoundingBox(layer.extent()))
    if not extent.isEmpty() and not canvas.extent().intersects(extent):
        canvas.setExtent(extent)
        canvas.refresh()


def play_on_controller(canvas, layers: Sequence[QgsRasterLayer]) -> None:
    """Set the canvas's temporal controller to animate the layers' dates, a day per frame."""
    controller = canvas.temporalController() if canvas is not None else None
    extent = temporal_extent(layers)
    if isinstance(controller, QgsTemporalNavigationObject) and extent is not None:
        controller.setTemporalExtents(extent)
        controller.setFrameDuration(QgsInterval(1, Qgis.TemporalUnit.Days))
        controller.setNavigationMode(Qgis.TemporalNavigationMode.Animated)
        controller.setCurrentFrameNumber(0)
