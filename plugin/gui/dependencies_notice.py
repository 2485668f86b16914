"""Tell the user which optional packages are missing, what each enables, and offer to install them."""

from __future__ import annotations

import shlex

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import QObject
from qgis.PyQt.QtWidgets import QMessageBox, QPushButton

from ..dependencies.activation import packages_folder
from ..dependencies.plan import Plan, plan_install
from ..dependencies.requirements import Missing
from ..dependencies.versions import canonical
from ..log import log
from ..tasks.pip_install_task import PipInstallTask


def describe_missing(missing: list[Missing]) -> str:
    return "\n".join(f"• {m.name} ({m.reason}): {m.requirement.enables}" for m in missing)


class DependenciesNotice(QObject):
    """Owns the message-bar warning and the pip task so both can be cleaned up on unload."""

    def __init__(self, iface, missing: list[Missing]) -> None:
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
        title = self.tr("Cubescope: install Python packages")
        try:
            plan = plan_install(self.missing, packages_folder(QgsApplication.qgisSettingsDirPath()))
            text, details = self.install_text(plan), self.details(plan)
        except (LookupError, FileNotFoundError) as error:  # no numpy, no lock for its generation, no python
            text = self.tr("Cubescope has no tested package versions for this QGIS: {error}").format(error=error)
            QMessageBox.warning(self._iface.mainWindow(), title, text)
            return
        if not plan.install:
            QMessageBox.information(self._iface.mainWindow(), title, self.unavailable_text(plan))
            return
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self._iface.mainWindow())
        box.setDetailedText(details)
        box.exec()
        if box.standardButton(box.clickedButton()) != QMessageBox.StandardButton.Yes:
            return
        log("Installing Python packages:\n" + details)
        task = PipInstallTask(plan)
        task.done.connect(self._installed)
        self._task = task
        QgsApplication.taskManager().addTask(task)

    def install_text(self, plan: Plan) -> str:
        """Each package and why, where it goes, and what is never touched."""
        requested = {canonical(m.name): m for m in self.missing}
        lines = [self.tr("Cubescope would install these Python packages, at the versions tested for {gen}:")
                 .format(gen=plan.generation), ""]
        lines += [f"• {pin}: {pin.reason} ({requested[canonical(pin.name)].requirement.enables})"
                  for pin in plan.install if canonical(pin.name) in requested]
        needed = [str(pin) for pin in plan.install if canonical(pin.name) not in requested]
        if needed:
            lines += ["", self.tr("and what they need that is not installed here: {pins}").format(
                pins=", ".join(needed))]
        if plan.unavailable:
            lines += ["", self.unavailable_text(plan)]
        lines += ["", self.tr(
            "They go into {folder}, which Cubescope puts on Python's path ahead of site-packages; nothing "
            "changes in the system's or your own site-packages. QGIS's numpy, GDAL and PyQt are never "
            "replaced.").format(
            folder=plan.folder)]
        if not plan.exact:
            lines += ["", plan.lock_note]
        return "\n".join([*lines, "", self.tr("Install them now?")])

    def unavailable_text(self, plan: Plan) -> str:
        names = ", ".join(f"{m.name} ({m.reason})" for m in plan.unavailable)
        return self.tr("Not installed by Cubescope, your system provides them: {names}. Install them with "
                       "your system's package manager (for example python3-<name> on Debian).").format(names=names)

    def details(self, plan: Plan) -> str:
        lines = [plan.lock_note, ""] + [f"{pin}: {pin.reason}" for pin in plan.install]
        if plan.kept:
            lines += ["", "Kept as installed: " + ", ".join(plan.kept)]
        return "\n".join([*lines, "", shlex.join(plan.command()), f"(then moved into {plan.folder})"])

    def _installed(self, success: bool, message: str) -> None:
        self._task = None
        short = self.tr("Python packages installed; restart QGIS to use them.") if success else ""
        log(message, "success" if success else "critical", bar=self._iface.messageBar(), duration=0,
            short=short)

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
