"""One place where Cubescope talks to people: the QGIS log under our tag, and the message bar."""

from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFontMetrics

from . import LOG_TAG

_LEVELS = {
    "info": Qgis.MessageLevel.Info,
    "success": Qgis.MessageLevel.Success,
    "warning": Qgis.MessageLevel.Warning,
    "critical": Qgis.MessageLevel.Critical,
}
#: What a message bar item takes besides its text: level icon, the "n more" counter, close button.
_BAR_CHROME_PX = 200


def log(message: str, level: str = "info", bar=None, title: str = "Cubescope", duration: int = 8,
        short: str = "") -> None:
    """Write ``message`` to the log panel, and to ``bar`` (a QgsMessageBar) when given: ``short`` there
    when given (the dock's bar shows one line; a long path wrapped into it is cut in half).

    Messages should name the URL/file, the status and the server's own words: "Error, details"
    is what users complained about most in earlier STAC plugins.
    """
    qgis_level = _LEVELS[level]
    QgsMessageLog.logMessage(message, LOG_TAG, qgis_level)
    if bar is not None:
        text = short or message
        if short and bar.isVisible():
            # A short message is meant for the bar's one line: elided in the middle where the dock is
            # narrow, since the bar wraps text and a wrapped line is cut in half (the log has it whole).
            room = max(bar.width() - _BAR_CHROME_PX - QFontMetrics(bar.font()).horizontalAdvance(title), 120)
            text = QFontMetrics(bar.font()).elidedText(text, Qt.TextElideMode.ElideMiddle, room)
        bar.pushMessage(title, text, level=qgis_level, duration=duration)
