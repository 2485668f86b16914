"""Widgets, Qt models, the map tool: thin QGIS glue over the pure layers."""
