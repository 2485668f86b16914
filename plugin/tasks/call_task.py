"""A QgsTask around one pure function: computed in run(), result or error reported in finished()."""

from __future__ import annotations

import traceback
from typing import Any, Callable

from qgis.core import QgsFeedback, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .. import LOG_TAG
from ..stac.http import HttpError
from .thread_state import keep_thread_state

# Errors whose message is meant for users (URL, status, server's words); anything else is a bug
# and gets its traceback logged.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (HttpError, OSError, ValueError, KeyError, RuntimeError)


class CallTask(QgsTask):
    """``function(task, *args)`` runs off the GUI thread; it may call ``task.isCanceled()``,
    ``task.setProgress()`` and ``task.partial.emit(...)`` to stream partial results."""

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)
    partial = pyqtSignal(object)

    def __init__(self, description: str, function: Callable[..., Any], *args: Any, can_cancel: bool = True) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel if can_cancel else QgsTask.Flag(0))
        self._function = function
        self._args = args
        # Owned by the task (a C++ child, deleted with it on the main thread) and cancelled by
        # cancel() below, without a signal connection: a feedback created in run() and connected to
        # the task was collected in the worker thread, disconnecting while the GUI thread held the
        # GIL and Qt's connection lock: a deadlock seen in testing.
        self.feedback = QgsFeedback(self)
        self.result: Any = None
        self.error = ""

    def cancel(self) -> None:
        """Also marks the feedback cancelled, which a catalog request checks when it returns."""
        self.feedback.cancel()
        super().cancel()

    def run(self) -> bool:
        keep_thread_state()  # before any pyproj use in this pooled QThread (thread_state.py)
        try:
            self.result = self._function(self, *self._args)
        except Exception as error:  # noqa: BLE001 (reported to the user in finished())
            self.error = str(error) or type(error).__name__
            # A cancel ends the work by raising wherever it was (the engine's Canceled, a read cut
            # short): that is no bug, and its traceback would only alarm in the log.
            if not isinstance(error, EXPECTED_ERRORS) and not self.isCanceled():
                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG)
            return False
        return not self.isCanceled()

    def finished(self, result: bool) -> None:
        if result:
            self.succeeded.emit(self.result)
        elif self.isCanceled():
            self.failed.emit(self.tr("Cancelled: {task}").format(task=self.description()))
        else:
            self.failed.emit(self.error or self.tr("{task} failed").format(task=self.description()))
