"""When a project is opened: give Cubescope layers back what the project file must not hold.

Signed URLs expire and S3 keys or auth headers are never written to a project, so layers whose
source needs them are re-signed (their VRT rebuilt) and get their keys again from the QGIS auth
manager, in a background task; the layers are repointed when that is done.

A project names only the private header files of a session (``/vsicurl?header_file=...``), which a
new session no longer has. The auth manager's headers are written to a new file on the main thread
and the layers (and their VRTs' sources) are pointed at it there and then, by editing paths alone:
a layer left on its stale path until a task is done would be drawn meanwhile, refused without its
header, and GDAL would remember that refusal for the URL, whatever file the new path names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .. import settings
from ..cube.vrt import rename_sources, stack_vrt
from ..log import log
from ..network import AssetAccess, asset_access, scope_gdal_options
from ..stac.gdal_env import forget_refusals
from ..stac.hrefs import HTTP_DEFAULTS, gdal_source, vsicurl_options, with_header_file
from ..stac.sources import Source
from ..tasks.call_task import CallTask
from .layer_loader import gdal_prefix


@dataclass(frozen=True)
class RestoreJob:
    layer_id: str
    name: str
    path: str
    """The layer's path as the project has it."""
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
        vrt = path if path.lower().endswith(".vrt") else None
        decibels = vrt is not None and Path(vrt).is_file() and "dB" in Path(vrt).read_text(errors="ignore")
        jobs.append(RestoreJob(layer.id(), layer.name(), path, hrefs, assets, vrt, decibels,
                               source, access[source.name]))
    return jobs


def _rekeyed(job: RestoreJob) -> tuple[str, list[str]] | None:
    """The layer's path with the source's new header file and the remote paths it reads (a VRT's
    sources are rewritten in place), or None when paths alone cannot do it (signed URLs, no header
    file in the path, VRT gone): the background task rebuilds those from their hrefs."""
    header_file = job.access.header_file
    if not header_file or job.access.signer is not None:
        return None
    if job.vrt is None:
        if not vsicurl_options(job.path).get("header_file"):
            return None
        path = with_header_file(job.path, header_file)
        return path, [path]
    if not Path(job.vrt).is_file() or "header_file=" not in Path(job.vrt).read_text(errors="ignore"):
        return None
    return job.vrt, rename_sources(job.vrt, lambda name: with_header_file(name, header_file))


def rekey_header_files(jobs: list[RestoreJob]) -> tuple[list[tuple[str, str]], list[RestoreJob]]:
    """Main thread, no network: (layer id, path) of the layers repointed at their source's new
    header file, and the jobs left for the background task."""
    repointed, left = [], []
    for job in jobs:
        try:
            rekeyed = _rekeyed(job)
        except (OSError, ET.ParseError) as error:
            log(f"Cubescope could not repoint {job.name}: {error}", "warning")
            rekeyed = None
        if rekeyed is None:
            left.append(job)
            continue
        path, remote = rekeyed
        remote = [name for name in remote if vsicurl_options(name)]
        forget_refusals(remote)  # QGIS was refused when it opened the project; GDAL remembers that
        for name in remote:
            scope_gdal_options(gdal_prefix(name), HTTP_DEFAULTS)
        repointed.append((job.layer_id, path))
    return repointed, left


def restore(task, jobs: list[RestoreJob]) -> list[tuple[str, str]]:
    """Worker thread: fresh GDAL paths (and VRTs) for each job; returns (layer id, path)."""
    repointed = []
    for job in jobs:
        if task.isCanceled() or not job.hrefs:
            break
        sources = [gdal_source(h, s3=job.source.s3, signer=job.access.signer, credentials=job.access.credentials,
                               header_file=job.access.header_file, auth_scope=job.source.url)
                   for h in job.hrefs]
        # QGIS opened the layer when the project was read, maybe without its header file: GDAL
        # remembers a refusal by URL and would refuse the new path too.
        forget_refusals(s.path for s in sources)
        for gdal_src in sources:
            prefix = gdal_prefix(gdal_src.path)
            if prefix:
                scope_gdal_options(prefix, gdal_src.config)
        if job.vrt:
            Path(job.vrt).parent.mkdir(parents=True, exist_ok=True)  # a temp folder may have been cleaned
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
        # At once, before the canvas draws these layers on their stale paths.
        repointed, jobs = rekey_header_files(jobs)
        if repointed:
            self._repoint(repointed)
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
