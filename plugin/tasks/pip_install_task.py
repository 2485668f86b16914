"""Install missing optional packages with pip in the background, pinned to QGIS's own numpy/GDAL."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..dependencies import Requirement, constraint_lines, pip_command

PIP_TIMEOUT_S = 900


class PipInstallTask(QgsTask):
    """Runs pip as a child process: a long download never freezes QGIS and can be cancelled."""

    done = pyqtSignal(bool, str)  # success, message for the user

    def __init__(self, requirements: list[Requirement]) -> None:
        super().__init__("Cubescope: installing Python packages", QgsTask.Flag.CanCancel)
        self._requirements = requirements
        self._constraints_dir = tempfile.mkdtemp(prefix="cubescope-pip-")
        self._constraints = Path(self._constraints_dir) / "constraints.txt"
        # Pins are read here, on the main thread, from the Python QGIS is running.
        self._constraints.write_text("\n".join(constraint_lines()) + "\n", encoding="utf-8")
        self.command = pip_command(requirements, self._constraints)
        self._message = ""

    def run(self) -> bool:
        try:
            process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as error:
            self._message = f"Could not start pip ({self.command[0]}): {error}"
            return False
        output: list[str] = []
        assert process.stdout is not None  # set by stdout=PIPE
        for line in process.stdout:
            output.append(line.rstrip())
            if self.isCanceled():
                process.kill()
                process.wait(timeout=10)
                self._message = "Installation cancelled; pip was stopped."
                return False
        returncode = process.wait(timeout=PIP_TIMEOUT_S)
        if returncode != 0:
            tail = "\n".join(output[-15:])
            self._message = f"pip exited with status {returncode}:\n{tail}"
            return False
        names = ", ".join(r.name for r in self._requirements)
        self._message = f"Installed {names}. Restart QGIS to use them."
        return True

    def finished(self, result: bool) -> None:
        self._constraints.unlink(missing_ok=True)
        Path(self._constraints_dir).rmdir()
        self.done.emit(result, self._message or "Installation did not complete.")
