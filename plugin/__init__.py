"""Cubescope: pure layers (stac, cube, analysis, demo) and their QGIS glue (gui, tasks, processing)."""

PLUGIN_NAME = "Cubescope"
LOG_TAG = "Cubescope"
