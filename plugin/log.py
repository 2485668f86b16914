"""One place where Cubescope talks to people: the QGIS log under our tag, and the message bar."""

from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog

from . import LOG_TAG

_LEVELS = {
    "info": Qgis.MessageLevel.Info,
    "success": Qgis.MessageLevel.Success,
    "warning": Qgis.MessageLevel.Warning,
    "critical": Qgis.MessageLevel.Critical,
}


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
        bar.pushMessage(title, short or message, level=qgis_level, duration=duration)
