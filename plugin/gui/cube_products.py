"""The Analysis tab's cube products: a regular cube, a minicube and training chips.

Reads the tab's widgets into the pure requests of ``products.cubes``, ``products.minicubes`` and
``products.chips`` (on the main thread: layers, the auth manager and widgets are not touched by the
task), and the functions a CallTask runs for each. The Processing algorithms build the same requests
from their parameters.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from qgis.core import QgsProject, QgsVectorLayer

from .. import vector_features
from ..analysis.engine.analysis_request import AnalysisRequest
from ..analysis.ops import composite
from ..network import qgis_fetcher
from ..products.chips import build as chips
from ..products.cubes.model import COG_STAC, ZARR, CubeRequest
from ..products.minicubes import build as minicube
from ..stac.sources import Source, SourceKind
from ..tasks.source_tasks import http_authcfg

BUILDCUBE, MINICUBE, CHIPS = "buildcube", "minicube", "chips"
PRODUCTS = (BUILDCUBE, MINICUBE, CHIPS)
LABELS = {BUILDCUBE: "Regular cube (one composite per period)", MINICUBE: "Minicube (ML-ready, NetCDF/Zarr)",
          CHIPS: "Training chips"}
#: (label, value) of the format combo per product.
FORMATS = {
    BUILDCUBE: (("Zarr store", ZARR), ("COG per band and period + STAC catalog", COG_STAC)),
    MINICUBE: (("NetCDF", minicube.NETCDF), ("Zarr", minicube.ZARR)),
    CHIPS: (("Zarr (one sample dimension)", chips.ZARR), ("One .npz per sample", chips.NPZ)),
}
#: What the method combo offers per product.
METHODS = {BUILDCUBE: composite.METHODS, MINICUBE: minicube.AGGREGATIONS, CHIPS: (chips.COMPOSITE, chips.DATES)}
#: The widgets (label, field) that only some products use.
ROWS = {
    "period": ((BUILDCUBE, MINICUBE), ("periodLengthLabel", "periodLengthEdit")),
    "cyclic": ((BUILDCUBE,), ("cyclicCheck",)),
    "format": (PRODUCTS, ("formatLabel", "formatCombo")),
    "sources": ((MINICUBE,), ("extraSourcesLabel", "extraSourcesEdit")),
    "chip": ((CHIPS,), ("chipSizeLabel", "chipSizeSpin")),
    "points": ((CHIPS,), ("pointsLabel", "pointsLayerCombo")),
    "labels": ((CHIPS,), ("labelsLabel", "labelsRowWidget")),
    "masked": ((CHIPS,), ("maskedLabel", "maxMaskedSpin")),
}
#: Default minicube pixel size when the tab says "native" and the collection does not tell its own.
DEFAULT_MINICUBE_RESOLUTION = 10.0


@dataclass(frozen=True)
class ProductJob:
    """What a product task needs: the pure request and how to reach the catalog."""

    product: str
    request: Any
    authcfg: str = ""


def default_output(product: str, fmt: str, collection: str) -> str:
    """A new path in the temporary folder when the user gave none."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    suffix = {ZARR: ".zarr", minicube.NETCDF: ".nc", minicube.ZARR: ".zarr", chips.ZARR: ".zarr"}.get(fmt, "")
    if product == BUILDCUBE and fmt == COG_STAC:
        suffix = ""
    return str(Path(tempfile.gettempdir()) / f"cubescope-{product}-{collection}-{stamp}{suffix}")


def cube_request(analysis: AnalysisRequest, step: str, cyclic: bool, fmt: str) -> CubeRequest:
    return CubeRequest(analysis, step=step.strip() or "P16D", cyclic=cyclic, format=fmt)


def native_resolution(collection: Any, bands: tuple[str, ...]) -> float:
    """The finest resolution the collection declares for ``bands`` (any band when none match)."""
    known = [b.resolution for b in getattr(collection, "bands", ()) or () if b.resolution]
    chosen = [b.resolution for b in getattr(collection, "bands", ()) or ()
              if b.resolution and (b.name in bands or b.common_name in bands)]
    return min(chosen or known or [DEFAULT_MINICUBE_RESOLUTION])


def minicube_request(analysis: AnalysisRequest, source: Source, collection: Any, aggregation: str,
                     cadence: str, fmt: str, more_sources: str) -> minicube.MinicubeRequest:
    """The tab's collection and bands as the first source; ``more_sources`` adds others (Zarr, S1, DEM)."""
    if analysis.extent is None:
        raise ValueError("Choose an extent for the minicube (Extent box below)")
    specs = [minicube.SourceSpec(source.url, analysis.collection, analysis.bands, aggregation)]
    if more_sources.strip():
        specs.extend(minicube.parse_sources(more_sources))
    period = analysis.periods[0]
    return minicube.MinicubeRequest(
        sources=tuple(specs), start=period.start, end=period.end, output=analysis.output,
        extent=analysis.extent, extent_crs=analysis.extent_crs, crs=analysis.crs,
        resolution=analysis.resolution or native_resolution(collection, analysis.bands),
        cadence=cadence.strip() or minicube.NATIVE, format=fmt, dask_scheduler=analysis.dask_scheduler,
        fail_on_bad_input=analysis.fail_on_bad_input)


def chip_request(analysis: AnalysisRequest, source: Source, mode: str, fmt: str, chip_size: int,
                 max_masked_percent: float, points_layer: QgsVectorLayer | None,
                 label_layer: QgsVectorLayer | None, label_field: str) -> chips.ChipRequest:
    """Chips at the points of ``points_layer``, or on a regular grid over the extent."""
    where: dict[str, Any] = {}
    context = QgsProject.instance().transformContext()
    if points_layer is not None:
        where["points"] = vector_features.points(points_layer.getFeatures(), points_layer.crs(), context=context)
    elif analysis.extent is not None:
        where.update(extent=analysis.extent, extent_crs=analysis.extent_crs)
    else:
        raise ValueError("Choose a points layer or an extent for the chips")
    if label_layer is not None:
        where["label_polygons"] = vector_features.class_polygons(label_layer.getFeatures(), label_layer.crs(),
                                                                 label_field, context)
    period = analysis.periods[0]
    return chips.ChipRequest(
        source=source.url, collection=analysis.collection, bands=analysis.bands, start=period.start,
        end=period.end, output=analysis.output, chip_size=chip_size, resolution=analysis.resolution,
        crs=analysis.crs, mode=mode, max_masked=max_masked_percent / 100.0, quality_band=analysis.quality_band,
        clear_values=analysis.clear_values, format=fmt, dask_scheduler=analysis.dask_scheduler,
        fail_on_bad_input=analysis.fail_on_bad_input, **where)


def check_source(source: Source | None, product: str) -> None:
    """Refuse what a product cannot read. A regular cube is built from a Zarr cube by the same engine
    as from STAC (its time steps as items, masked by its quality variable); minicubes and chips read
    the quality mask from STAC items only, and a Zarr cube joins a minicube under More sources."""
    if source is not None and source.kind == SourceKind.ZARR and product != BUILDCUBE:
        raise ValueError(f"{LABELS[product]} reads a STAC collection; this source is a Zarr cube "
                         "(add it to a minicube under More sources)")


def run_product(task, job: ProductJob) -> Any:
    """In the task: build the product; returns the cube's path, the minicube's path or the ChipResult."""
    fetch = qgis_fetcher(job.authcfg, feedback=task.feedback)
    if job.product == BUILDCUBE:
        from ..products.cubes.builder import build_cube

        return build_cube(job.request, progress=task.setProgress, is_canceled=task.isCanceled, fetch=fetch)
    if job.product == MINICUBE:
        return minicube.run(job.request, fetch=fetch, progress=task.setProgress, is_canceled=task.isCanceled)
    return chips.run(job.request, fetch=fetch, progress=task.setProgress, is_canceled=task.isCanceled)


def job_for(product: str, request: Any, source: Source) -> ProductJob:
    return ProductJob(product, request, http_authcfg(source))


def built_cube_source(path: Path, request: CubeRequest) -> Source:
    """A connection to a built cube, so the Browse tab lists it like any other collection."""
    url = str(path) if path.name == "catalog.json" else str(request.output)
    kind = SourceKind.STATIC if path.name == "catalog.json" else SourceKind.ZARR
    return Source(name=f"Cube: {Path(request.output).name}", kind=kind, url=url)


def describe_chips(result: chips.ChipResult) -> str:
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(result.skipped.items()))
    return (f"Wrote {result.samples} samples to {result.output}; manifest {result.manifest}"
            + (f"; skipped: {skipped}" if skipped else ""))
