"""`cubescope:democube`: write the offline demo cube (STAC + COGs, Zarr, ground truth) to a folder."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..demo import DEFAULT_SEED, DemoCubeCanceled, ensure_demo_cube
from ..tasks.thread_state import keep_thread_state


class DemoCubeAlgorithm(QgsProcessingAlgorithm):
    OUTPUT = "OUTPUT"
    SEED = "SEED"
    CATALOG = "CATALOG"

    def name(self) -> str:
        return "democube"

    def displayName(self) -> str:  # noqa: N802 (QGIS name)
        return "Generate the demo cube"

    def group(self) -> str:
        return "Data"

    def groupId(self) -> str:  # noqa: N802 (QGIS name)
        return "data"

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS name)
        return (
            "Writes Cubescope's offline demo cube to a folder: a static STAC catalog of "
            "Sentinel-2 L2A-like COGs over two UTM zones (clouds recorded in SCL, a clear-cut), "
            "Sentinel-1 RTC-like backscatter, a DEM and a land-cover map, the same Sentinel-2 data "
            "as a Zarr cube, and the ground truth. The same seed always gives the same cube."
        )

    def createInstance(self) -> DemoCubeAlgorithm:  # noqa: N802 (QGIS name)
        return DemoCubeAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS name)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SEED, "Random seed", Qgis.ProcessingNumberParameterType.Integer, DEFAULT_SEED, minValue=0
            )
        )
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, "Demo cube folder"))
        self.addOutput(QgsProcessingOutputFile(self.CATALOG, "STAC catalog (catalog.json)"))

    def processAlgorithm(self, parameters, context, feedback) -> dict:  # noqa: N802 (QGIS name)
        keep_thread_state()  # pyproj in a pooled QThread (tasks/thread_state.py)
        folder = Path(self.parameterAsString(parameters, self.OUTPUT, context))
        seed = self.parameterAsInt(parameters, self.SEED, context)
        try:
            cube = ensure_demo_cube(
                folder,
                seed=seed,
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                is_canceled=feedback.isCanceled,
            )
        except DemoCubeCanceled:
            feedback.reportError("Cancelled: nothing was written.")
            return {}
        except OSError as error:
            raise QgsProcessingException(f"Could not write the demo cube to {folder}: {error}") from error
        feedback.pushInfo(f"Demo cube ready: {cube.catalog}")
        return {self.OUTPUT: str(cube.root), self.CATALOG: str(cube.catalog)}
