"""The style an analysis result gets when it is loaded, from the dock or from the Processing toolbox.

Its time: the period it summarises (a difference: from period A's start to period B's end), so that
with QGIS's temporal controller it shows while the slider is in that period, as the scenes do.
Differences and trends on a diverging ramp centred on zero, an index's composite or mean on a
red-yellow-green ramp, other statistics on viridis, a true-colour composite as red, green and blue
whatever order its bands were asked in. Ranges and stretches come from a sample of the raster (its
overviews), so styling a large result does not read it whole on the main thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qgis.core import (
    Qgis,
    QgsColorRampShader,
    QgsDateTimeRange,
    QgsMultiBandColorRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)

from ..analysis.ops.indices import is_index
from ..cube.vrt import colour_stretch, percentile_stretch
from ..stac.hrefs import GdalSource
from .layer_loader import contrast_enhancement, qdatetime

if TYPE_CHECKING:
    from ..analysis.engine.analysis_request import AnalysisRequest

#: Pixels sampled for the ramp's range (QGIS's own default for a layer's statistics).
SAMPLE_SIZE = 250_000
#: Statistics whose values are the index's own values, shown like a composite of it.
_LEVELS = {"mean", "median", "min", "max"}


def style_result(layer: QgsRasterLayer, request: AnalysisRequest) -> None:
    """Style ``layer``, the result of ``request``, and give it the request's time range."""
    _set_time(layer, request)
    operation, bands, statistic = request.operation, request.bands, request.statistic
    single_index = len(bands) == 1 and is_index(bands[0])
    if operation == "composite" and not single_index:
        _colour(layer)
        return
    if operation == "difference" or (operation == "statistics" and statistic == "slope"):
        _pseudocolour(layer, "RdBu", centred=True)
    elif single_index and (operation == "composite" or statistic in _LEVELS):
        _pseudocolour(layer, "RdYlGn")
    else:
        _pseudocolour(layer, "Viridis")


def _set_time(layer: QgsRasterLayer, request: AnalysisRequest) -> None:
    """The periods' span (their ends are the last second included), for the temporal controller."""
    temporal = layer.temporalProperties()
    temporal.setMode(Qgis.RasterTemporalMode.FixedTemporalRange)
    start = min(period.start for period in request.periods)
    end = max(period.end for period in request.periods)
    temporal.setFixedTemporalRange(QgsDateTimeRange(qdatetime(start), qdatetime(end), True, True))
    temporal.setIsActive(True)


def _colour(layer: QgsRasterLayer) -> None:
    """Red, green and blue from the bands' colour interpretation (see planning.colour_roles), else
    bands 1, 2, 3 (a false colour, in the order asked), on one stretch for the three: stretched each to
    its own range, a dark forest (lowest in every band) turns black, as in the Browse tab's images."""
    provider = layer.dataProvider()
    if layer.bandCount() < 3:
        return
    found = {provider.colorInterpretation(band): band for band in range(1, layer.bandCount() + 1)}
    colours = Qgis.RasterColorInterpretation
    channels = [found.get(colour) for colour in (colours.RedBand, colours.GreenBand, colours.BlueBand)]
    if None in channels:
        channels = [1, 2, 3]
    renderer = QgsMultiBandColorRenderer(provider, *channels)
    layer.setRenderer(renderer)
    try:  # an overview of a local COG: one small read
        stretch = colour_stretch([percentile_stretch(GdalSource(layer.source()), band) for band in channels])
    except (OSError, RuntimeError, ValueError):  # no valid pixel: the user's default stretch
        layer.setDefaultContrastEnhancement()
        return
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)
    for band, setter, limits in zip(channels, setters, stretch):
        setter(contrast_enhancement(provider.dataType(band), limits))


def _pseudocolour(layer: QgsRasterLayer, ramp_name: str, centred: bool = False) -> None:
    provider = layer.dataProvider()
    # All statistics (the default): on QGIS 3.40 any explicit stats argument, even Qgis.RasterBandStatistic
    # flags, binds to the deprecated int overload and warns. They come from the same pass over the sample.
    stats = provider.bandStatistics(1, extent=QgsRectangle(), sampleSize=SAMPLE_SIZE)
    low, high = stats.minimumValue, stats.maximumValue
    if centred:
        bound = max(abs(low), abs(high)) or 1.0
        low, high = -bound, bound
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    if ramp is None:
        return
    function = QgsColorRampShader(low, high, ramp)
    function.classifyColorRamp(9)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(function)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)


class ResultStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles a Processing result once the toolbox has loaded it, as the dock styles its own, and names
    it by what it holds where Processing named it after the output parameter."""

    #: The stylers waiting for their layer, by output path. QGIS keeps only the C++ side of a
    #: post-processor: without a Python reference the override is collected and QGIS calls the empty
    #: base method (measured: the layer stayed grey).
    _waiting: dict[str, ResultStyler] = {}

    def __init__(self, request: AnalysisRequest, placeholder: str = "") -> None:
        super().__init__()
        self.request, self.placeholder = request, placeholder

    @classmethod
    def for_output(cls, output: str, request: AnalysisRequest, placeholder: str = "") -> ResultStyler:
        """A styler kept alive until the layer at ``output`` is loaded (a later run to the same path
        replaces it, so the waiting ones stay as many as the outputs); a layer named ``placeholder``
        is renamed to the request's title."""
        styler = cls._waiting[output] = cls(request, placeholder)
        return styler

    def postProcessLayer(self, layer, context: QgsProcessingContext,  # noqa: N802 (QGIS name)
                         feedback: QgsProcessingFeedback) -> None:
        # A copy first: another algorithm's run may add its styler meanwhile, from a worker thread.
        for output, styler in list(self._waiting.items()):
            if styler is self:
                self._waiting.pop(output, None)
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            style_result(layer, self.request)
        if self.placeholder and layer.name() == self.placeholder:
            layer.setName(self.request.title)
