"""One current background task per purpose of a panel (listing a source, a search, thumbnails, loading).

Starting a task for a purpose cancels the one before it, and a replaced task that reports late is
ignored: a slow answer about the previous source or search never overwrites the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import QgsApplication


class CurrentTasks:
    """The current task of each key; a task's handlers run only while it is still the current one."""

    def __init__(self, on_failure: Callable[[str], None]) -> None:
        self._tasks: dict[str, Any] = {}
        self._on_failure = on_failure
        """What a failure is handed to when `start` is given no handler of its own."""

    def start(self, key: str, task: Any, on_success: Callable[[Any], None],
              on_failure: Callable[[str], None] | None = None,
              on_partial: Callable[[Any], None] | None = None) -> None:
        """Start ``task`` (a CallTask) as the current one for ``key``; a previous one is cancelled and ignored."""
        self.adopt(key, task)
        task.succeeded.connect(lambda result: self.is_current(key, task) and self.finish(key, on_success, result))
        task.failed.connect(lambda message: self.is_current(key, task)
                            and self.finish(key, on_failure or self._on_failure, message))
        if on_partial is not None:
            task.partial.connect(lambda value: self.is_current(key, task) and on_partial(value))
        QgsApplication.taskManager().addTask(task)

    def adopt(self, key: str, task: Any) -> None:
        """Make ``task`` the current one for ``key``, cancelling the previous; for a task whose own signals
        the caller connects (checking `is_current`) and which the caller starts."""
        self.cancel(key)
        self._tasks[key] = task

    def is_current(self, key: str, task: Any) -> bool:
        return self._tasks.get(key) is task

    def finish(self, key: str, handler: Callable[[Any], None] | None = None, value: Any = None) -> None:
        """``key``'s task is done: forget it, then hand ``value`` to ``handler``."""
        self._tasks.pop(key, None)
        if handler is not None:
            handler(value)

    def cancel(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            try:
                task.cancel()
            except RuntimeError:  # the C++ task finished and was deleted already
                pass

    def cancel_all(self) -> None:
        for key in list(self._tasks):
            self.cancel(key)

    def busy(self) -> bool:
        return bool(self._tasks)
