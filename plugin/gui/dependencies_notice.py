"""Tell the user which optional packages are missing, what each enables, and offer to install them."""

from __future__ import annotations

import shlex

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

from ..dependencies import Requirement
from ..log import log
from ..tasks.pip_install_task import PipInstallTask


def describe_missing(missing: list[Requirement]) -> str:
    return "\n".join(f"• {r.name} ({r.spec}): {r.enables}" for r in missing)


class DependenciesNotice(QObject):
    """Owns the message-bar warning and the pip task so both can be cleaned up on unload."""

    def __init__(self, iface, missing: list[Requirement]) -> None:
        super().__init__(iface.mainWindow())
        self._iface = iface
        self.missing = missing
        self._task: PipInstallTask | None = None
        self._item = None

    def show(self) -> None:
        names = ", ".join(r.name for r in self.missing)
        log("Optional Python packages missing:\n" + describe_missing(self.missing), "warning")
        bar = self._iface.messageBar()
        self._item = bar.createMessage(
            "Cubescope", self.tr("Missing Python packages: {names}. Some features are off.").format(names=names)
        )
        button = QPushButton(self.tr("Details and install…"), self._item)
        button.clicked.connect(self.ask_to_install)
        self._item.layout().addWidget(button)
        bar.pushWidget(self._item, Qgis.MessageLevel.Warning)

    def ask_to_install(self) -> None:
        task = PipInstallTask(self.missing)
        answer = QMessageBox.question(
            self._iface.mainWindow(),
            self.tr("Cubescope: install Python packages"),
            self.tr(
                "These packages are missing:\n\n{details}\n\nInstall them now with pip? QGIS's own numpy, "
                "GDAL and rasterio stay as they are (pinned):\n\n{command}"
            ).format(details=describe_missing(self.missing), command=shlex.join(task.command)),
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        task.done.connect(self._installed)
        self._task = task
        QgsApplication.taskManager().addTask(task)

    def _installed(self, success: bool, message: str) -> None:
        self._task = None
        log(message, "success" if success else "critical", bar=self._iface.messageBar(), duration=0)

    def remove(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._item is not None:
            try:
                self._iface.messageBar().popWidget(self._item)
            except RuntimeError:  # the user already closed it
                pass
            self._item = None
