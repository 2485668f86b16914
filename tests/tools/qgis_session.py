"""What the scripts QGIS runs under Xvfb share (``make screenshots``): bounded waits on the event loop,
the window laid out for a screenshot with the demo catalog listed, and a quit that never leaves a
dialog waiting. The Makefile puts tests/ and tests/tools/ on the path of the QGIS it starts."""

import os
import traceback
from collections.abc import Callable
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QEventLoop, Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget

OUT = Path(os.environ.get("CUBESCOPE_SCREENSHOTS", "resources/screenshots")).resolve()


def wait_until(condition, timeout_s: float) -> bool:
    """Spin the event loop until ``condition()`` or the deadline; bounded, never a bare sleep loop."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    poll.start(100)
    if not condition():
        loop.exec()
    poll.stop()
    return bool(condition())


def settle(ms: int) -> None:
    """Let QGIS paint (rendering is asynchronous) before grabbing."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_signal(signal, timeout_s: float):
    """Run the event loop until ``signal`` fires (its arguments are returned) or the deadline."""
    received = []
    loop = QEventLoop()
    signal.connect(lambda *args: (received.append(args), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    if not received:
        raise RuntimeError(f"no signal within {timeout_s} s")
    return received[0]


def laid_out(dock_width: int):
    """(the main window, Cubescope's plugin) maximised, the side panels given room, once the dock lists
    the demo catalog."""
    OUT.mkdir(parents=True, exist_ok=True)
    window = qgis.utils.iface.mainWindow()
    window.resize(1600, 1000)
    window.showMaximized()
    settle(500)
    # A fresh 3.40 profile gives the Browser and Layers panels a sliver of the width: give them room.
    left = [dock for dock in window.findChildren(QDockWidget)
            if dock.isVisible() and window.dockWidgetArea(dock) == Qt.DockWidgetArea.LeftDockWidgetArea]
    window.resizeDocks(left, [260] * len(left), Qt.Orientation.Horizontal)
    plugin = qgis.utils.plugins["cubescope"]
    window.resizeDocks([plugin.dock], [dock_width], Qt.Orientation.Horizontal)
    if not wait_until(lambda: bool(plugin.dock.collection_ids()), 180):
        raise RuntimeError("the dock did not list the demo catalog within 180 s")
    return window, plugin


def run_and_quit(main: Callable[[], None], error_file: str) -> None:
    """Run ``main``, write its traceback to ``OUT/error_file`` if it fails, and quit QGIS either way."""
    try:
        main()
    except Exception:  # noqa: BLE001 (always quit QGIS, report what went wrong)
        (OUT / error_file).write_text(traceback.format_exc(), encoding="utf-8")
    finally:
        # Without QGIS's "save the project?" / "cancel running tasks?" dialogs: nothing here is worth
        # keeping beyond the PNGs, and a dialog under Xvfb would wait forever.
        QgsApplication.taskManager().cancelAll()
        QgsProject.instance().setDirty(False)
        os._exit(0)
