"""`cubescope:chips`: training chips of a STAC collection at points or on a grid, with labels and splits."""

from __future__ import annotations

from datetime import date

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .. import vector_features
from ..qgis_crs import crs_text
from ..tasks.thread_state import keep_thread_state
from .analysis_params import (
    FAIL_ON_BAD_INPUT,
    add_fail_on_bad_input,
    add_scheduler_parameter,
    date_parameter,
    engine_log,
    scheduler_parameter,
)

MODES = ("composite", "dates", "forecast")
FORMATS = ("zarr", "npz")


class ChipsAlgorithm(QgsProcessingAlgorithm):
    SOURCE, COLLECTION, BANDS, POINTS, ID_FIELD = "SOURCE", "COLLECTION", "BANDS", "POINTS", "ID_FIELD"
    EXTENT, STRIDE, CHIP_SIZE, RESOLUTION, TARGET_CRS = "EXTENT", "STRIDE", "CHIP_SIZE", "RESOLUTION", "TARGET_CRS"
    START, END, MODE, DATES = "START", "END", "MODE", "DATES"
    CONTEXT, TARGET, SHIFT = "CONTEXT", "TARGET", "SHIFT"
    LABEL_SOURCE, LABEL_COLLECTION, LABEL_BAND = "LABEL_SOURCE", "LABEL_COLLECTION", "LABEL_BAND"
    LABEL_POLYGONS, LABEL_FIELD = "LABEL_POLYGONS", "LABEL_FIELD"
    MAX_MASKED, QUALITY_BAND, CLEAR_VALUES = "MAX_MASKED", "QUALITY_BAND", "CLEAR_VALUES"
    BLOCK_SIZE, BUFFER, SEED, FORMAT, OUTPUT = "BLOCK_SIZE", "BUFFER", "SEED", "FORMAT", "OUTPUT"
    MANIFEST, SAMPLES = "MANIFEST", "SAMPLES"

    def name(self) -> str:
        return "chips"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Training chips"

    def group(self) -> str:
        return "Build your own cube"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "buildcube"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "<p>Chips of <b>chip size</b> pixels of the chosen bands, centred on the <b>points</b> of a layer or "
            "side by side (every <b>stride</b> pixels) over an <b>extent</b>, on the data's native grid unless a "
            "CRS or resolution is given. <b>Mode</b>: <i>composite</i> (per pixel the median of the clear "
            "observations of the period), <i>dates</i> (one sample per acquisition, or per date listed in "
            "<b>dates</b> such as 2023-06-13,2023-07-13) or <i>forecast</i> (sliding windows of <b>context</b> "
            "dates followed by <b>target</b> dates, starting every <b>shift</b> dates).</p>"
            "<p>Labels come from a raster collection (<b>label collection</b>, such as demo-landcover, nearest "
            "neighbour) or from polygons rasterised from a <b>class field</b>. Samples with more than "
            "<b>max masked</b> % of pixels masked by the quality band (or without data) are skipped.</p>"
            "<p>Splits: the plane is cut into <b>block size</b> squares (CRS units), each assigned to train, "
            "validation or test from a hash of the <b>seed</b> and its position (70/15/15 %); a chip whose "
            "footprint grown by <b>buffer</b> reaches a block of another split is skipped, so chips of different "
            "splits never overlap. The output is one Zarr store with a <i>sample</i> dimension or a folder of "
            "<code>.npz</code> files, and a manifest CSV beside it (<code>&lt;output&gt;.csv</code>) listing every "
            "chip with its centre, CRS, bounds, dates, split, and for skipped ones the reason; "
            "<code>&lt;output&gt;.json</code> sums it up.</p>"
            "<p><b>Dask scheduler</b>: tcp://host:8786 reads the chips' pixels and computes their masks and "
            "composites on that cluster (its workers need odc-stac and access to the assets); empty uses the "
            "plugin setting, <i>local</i> forces local threads. Either way a few chips are computed at a time, "
            "so memory does not grow with the number of chips.</p>"
        )

    def createInstance(self) -> ChipsAlgorithm:  # noqa: N802 (QGIS name)
        return ChipsAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        integer, double = Qgis.ProcessingNumberParameterType.Integer, Qgis.ProcessingNumberParameterType.Double
        add = self.addParameter
        add(QgsProcessingParameterString(self.SOURCE, "STAC API URL, static catalog URL or path"))
        add(QgsProcessingParameterString(self.COLLECTION, "Collection id"))
        add(QgsProcessingParameterString(self.BANDS, "Bands (comma-separated)", defaultValue="blue,green,red,nir"))
        add(QgsProcessingParameterFeatureSource(self.POINTS, "Chip centres", [0], optional=True))
        add(QgsProcessingParameterField(self.ID_FIELD, "Point id field (default: feature id)",
                                        parentLayerParameterName=self.POINTS, optional=True))
        add(QgsProcessingParameterExtent(self.EXTENT, "Extent for a regular grid of chips", optional=True))
        add(QgsProcessingParameterNumber(self.STRIDE, "Stride (pixels, 0 = chip size)", integer, 0, minValue=0))
        add(QgsProcessingParameterNumber(self.CHIP_SIZE, "Chip size (pixels)", integer, 256, minValue=2,
                                         maxValue=4096))
        add(QgsProcessingParameterNumber(self.RESOLUTION, "Resolution (0 = native)", double, 0.0, minValue=0.0))
        add(QgsProcessingParameterCrs(self.TARGET_CRS, "Target CRS (empty = native)", optional=True))
        add(QgsProcessingParameterDateTime(self.START, "Start date", Qgis.ProcessingDateTimeParameterDataType.Date))
        add(QgsProcessingParameterDateTime(self.END, "End date", Qgis.ProcessingDateTimeParameterDataType.Date))
        add(QgsProcessingParameterEnum(self.MODE, "Mode", options=["Composite (median of clear values)",
                                                                   "Dates", "Forecast windows"], defaultValue=0))
        add(QgsProcessingParameterString(self.DATES, "Dates (comma-separated; empty = all)", optional=True))
        add(QgsProcessingParameterNumber(self.CONTEXT, "Context length (dates)", integer, 0, minValue=0))
        add(QgsProcessingParameterNumber(self.TARGET, "Target length (dates)", integer, 0, minValue=0))
        add(QgsProcessingParameterNumber(self.SHIFT, "Shift between windows (dates)", integer, 1, minValue=1))
        add(QgsProcessingParameterString(self.LABEL_SOURCE, "Label catalog (empty = the source)", optional=True))
        add(QgsProcessingParameterString(self.LABEL_COLLECTION, "Label raster collection", optional=True))
        add(QgsProcessingParameterString(self.LABEL_BAND, "Label band", defaultValue="data", optional=True))
        add(QgsProcessingParameterFeatureSource(self.LABEL_POLYGONS, "Label polygons", [2], optional=True))
        add(QgsProcessingParameterField(self.LABEL_FIELD, "Class field (numeric)",
                                        parentLayerParameterName=self.LABEL_POLYGONS, optional=True))
        add(QgsProcessingParameterNumber(self.MAX_MASKED, "Max masked pixels (%)", double, 50.0, minValue=0,
                                         maxValue=100))
        add(QgsProcessingParameterString(self.QUALITY_BAND, "Quality band (empty = the collection's, none)",
                                         optional=True))
        add(QgsProcessingParameterString(self.CLEAR_VALUES, "Clear values (e.g. 4,5,6)", optional=True))
        add(QgsProcessingParameterNumber(self.BLOCK_SIZE, "Split block size (CRS units)", double, 2560.0,
                                         minValue=0.001))
        add(QgsProcessingParameterNumber(self.BUFFER, "Gap between splits (CRS units)", double, 0.0, minValue=0))
        add(QgsProcessingParameterNumber(self.SEED, "Split seed", integer, 0))
        add(QgsProcessingParameterEnum(self.FORMAT, "Format", options=["Zarr (sample dimension)",
                                                                       "One .npz per sample"], defaultValue=0))
        add_scheduler_parameter(self)
        add(QgsProcessingParameterFileDestination(self.OUTPUT, "Chips (.zarr store or folder)",
                                                  fileFilter="Zarr (*.zarr)"))
        self.addOutput(QgsProcessingOutputFile(self.MANIFEST, "Manifest (CSV)"))
        self.addOutput(QgsProcessingOutputNumber(self.SAMPLES, "Samples written"))
        add_fail_on_bad_input(self)

    def _source(self, parameters, name: str, context):
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, name))
        return source

    def _points(self, parameters, context) -> tuple:
        source = self._source(parameters, self.POINTS, context)
        id_field = self.parameterAsString(parameters, self.ID_FIELD, context)
        try:
            return vector_features.points(source.getFeatures(), source.sourceCrs(), id_field,
                                          context.transformContext())
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None

    def _polygons(self, parameters, context) -> tuple:
        source = self._source(parameters, self.LABEL_POLYGONS, context)
        field = self.parameterAsString(parameters, self.LABEL_FIELD, context)
        try:
            return vector_features.class_polygons(source.getFeatures(), source.sourceCrs(), field,
                                                  context.transformContext())
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        from ..network import qgis_fetcher
        from ..products.chips.build import ChipError, ChipRequest, run
        from ..stac.http import HttpError

        text = self.parameterAsString
        fields: dict = {}
        if parameters.get(self.POINTS):
            fields["points"] = self._points(parameters, context)
        elif parameters.get(self.EXTENT):
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, crs)
            fields.update(extent=(extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
                          extent_crs=crs_text(crs) or "EPSG:4326")
        else:
            raise QgsProcessingException("Give POINTS or an EXTENT")
        if parameters.get(self.TARGET_CRS):
            fields["crs"] = crs_text(self.parameterAsCrs(parameters, self.TARGET_CRS, context))
        if parameters.get(self.LABEL_POLYGONS):
            fields["label_polygons"] = self._polygons(parameters, context)
        try:
            dates = tuple(date.fromisoformat(d.strip()) for d in text(parameters, self.DATES, context).split(",")
                          if d.strip())
            request = ChipRequest(
                source=text(parameters, self.SOURCE, context).strip(),
                collection=text(parameters, self.COLLECTION, context).strip(),
                bands=tuple(text(parameters, self.BANDS, context).split(",")),
                start=date_parameter(self, parameters, self.START, context),
                end=date_parameter(self, parameters, self.END, context, end_of_day=True),
                output=self.parameterAsFileOutput(parameters, self.OUTPUT, context),
                stride=self.parameterAsInt(parameters, self.STRIDE, context),
                chip_size=self.parameterAsInt(parameters, self.CHIP_SIZE, context),
                resolution=self.parameterAsDouble(parameters, self.RESOLUTION, context),
                mode=MODES[self.parameterAsEnum(parameters, self.MODE, context)], dates=dates,
                context=self.parameterAsInt(parameters, self.CONTEXT, context),
                target=self.parameterAsInt(parameters, self.TARGET, context),
                shift=self.parameterAsInt(parameters, self.SHIFT, context),
                label_source=text(parameters, self.LABEL_SOURCE, context).strip(),
                label_collection=text(parameters, self.LABEL_COLLECTION, context).strip(),
                label_band=text(parameters, self.LABEL_BAND, context).strip(),
                max_masked=self.parameterAsDouble(parameters, self.MAX_MASKED, context) / 100.0,
                quality_band=text(parameters, self.QUALITY_BAND, context).strip(),
                clear_values=text(parameters, self.CLEAR_VALUES, context).strip(),
                block_size=self.parameterAsDouble(parameters, self.BLOCK_SIZE, context),
                buffer=self.parameterAsDouble(parameters, self.BUFFER, context),
                seed=self.parameterAsInt(parameters, self.SEED, context),
                format=FORMATS[self.parameterAsEnum(parameters, self.FORMAT, context)],
                dask_scheduler=scheduler_parameter(self, parameters, context),
                fail_on_bad_input=self.parameterAsBool(parameters, FAIL_ON_BAD_INPUT, context), **fields)
            result = run(request, fetch=qgis_fetcher(feedback=feedback), progress=feedback.setProgress,
                         is_canceled=feedback.isCanceled, log=engine_log(feedback))
        except InterruptedError:
            raise QgsProcessingException("Cancelled") from None
        except (ChipError, ValueError, OSError, RuntimeError, HttpError, KeyError) as error:
            raise QgsProcessingException(str(error)) from error
        for reason, count in result.skipped.items():
            feedback.pushInfo(f"Skipped {count}: {reason}")
        return {self.OUTPUT: str(result.output), self.MANIFEST: str(result.manifest), self.SAMPLES: result.samples}
