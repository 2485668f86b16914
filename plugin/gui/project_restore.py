"""When a project is opened: give Cubescope layers back what the project file must not hold.

Signed URLs expire and S3 keys or auth headers are never written to a project, so layers whose
source needs them are re-signed (their VRT rebuilt) and get their keys again from the QGIS auth
manager, in a background task; the layers are repointed when that is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .. import settings
from ..cube.vrt import stack_vrt
from ..log import log
from ..network import AssetAccess, asset_access, scope_gdal_options
from ..stac.hrefs import gdal_source
from ..stac.sources import Source
from ..tasks.call_task import CallTask
from .layer_loader import gdal_prefix


@dataclass(frozen=True)
class RestoreJob:
    layer_id: str
    name: str
    hrefs: tuple[str, ...]
    assets: tuple[str, ...]
    vrt: str | None
    """The layer's own VRT, rebuilt in place with fresh URLs; None for a single-file layer."""
    decibels: bool
    source: Source
    access: AssetAccess


def jobs_for_project(project: QgsProject) -> list[RestoreJob]:
    """Main thread: which layers need signing or keys, with their sources' access built now."""
    by_name = {source.name: source for source in settings.all_sources()}
    access: dict[str, AssetAccess] = {}
    jobs = []
    for layer in project.mapLayers().values():
        name = layer.customProperty("cubescope/source")
        source = by_name.get(name) if isinstance(layer, QgsRasterLayer) and name else None
        if source is None or not (source.signing or source.authcfg or source.s3):
            continue
        if source.name not in access:
            access[source.name] = asset_access(source)
        hrefs = tuple(h for h in str(layer.customProperty("cubescope/hrefs") or "").split("\n") if h)
        assets = tuple(a for a in str(layer.customProperty("cubescope/assets") or "").split(",") if a)
        path = layer.source()
        jobs.append(RestoreJob(layer.id(), layer.name(), hrefs, assets,
                               path if path.lower().endswith(".vrt") else None,
                               path.lower().endswith(".vrt") and "dB" in Path(path).read_text(errors="ignore"),
                               source, access[source.name]))
    return jobs


def restore(task, jobs: list[RestoreJob]) -> list[tuple[str, str]]:
    """Worker thread: fresh GDAL paths (and VRTs) for each job; returns (layer id, path)."""
    repointed = []
    for job in jobs:
        if task.isCanceled() or not job.hrefs:
            break
        sources = [gdal_source(h, s3=job.source.s3, signer=job.access.signer, credentials=job.access.credentials)
                   for h in job.hrefs]
        for gdal_src in sources:
            prefix = gdal_prefix(gdal_src.path)
            if prefix:
                scope_gdal_options(prefix, gdal_src.config)
        if job.vrt:
            path = stack_vrt(sources, job.vrt, list(job.assets), decibels=job.decibels)
        else:
            path = sources[0].path
        repointed.append((job.layer_id, path))
    return repointed


class ProjectRestorer(QObject):
    """Listens to project reads while the plugin is loaded."""

    restored = pyqtSignal(list)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._task: CallTask | None = None
        QgsProject.instance().readProject.connect(self.project_read)

    def project_read(self, *_args) -> None:
        try:
            jobs = jobs_for_project(QgsProject.instance())
        except (ValueError, PermissionError) as error:
            log(f"Cubescope layers of this project could not get their credentials back: {error}", "warning")
            return
        if not jobs:
            return
        self._task = CallTask("Cubescope: re-signing layers", restore, jobs)
        self._task.succeeded.connect(self._repoint)
        self._task.failed.connect(lambda message: log(message, "warning"))
        QgsApplication.taskManager().addTask(self._task)

    def _repoint(self, repointed: list[tuple[str, str]]) -> None:
        project = QgsProject.instance()
        for layer_id, path in repointed:
            layer = project.mapLayer(layer_id)
            if layer is None:
                continue
            # Re-open even when the path is unchanged: the first open had no keys yet.
            layer.setDataSource(path, layer.name(), "gdal")
            layer.triggerRepaint()
        self.restored.emit([layer_id for layer_id, _ in repointed])

    def close(self) -> None:
        QgsProject.instance().readProject.disconnect(self.project_read)
        if self._task is not None:
            try:
                self._task.cancel()
            except RuntimeError:
                pass
