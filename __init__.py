"""Cubescope QGIS plugin entry point: QGIS calls ``classFactory`` and nothing else here."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin.cubescope_plugin import CubescopePlugin

    return CubescopePlugin(iface)
