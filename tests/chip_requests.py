"""Demo extents and periods (EPSG:32634, tile A = MGRS 34TGR) that the chip and Analysis-tab tests cut from."""

from __future__ import annotations

from datetime import datetime, timezone

TILE_A = (732320.0, 5041600.0, 734880.0, 5044160.0)  # demo-s2-l2a MGRS 34TGR, EPSG:32634, 10 m
WEST = (732320.0, 5041600.0, 733600.0, 5044160.0)  # tile A west of tile B's footprint
BANDS = ("blue", "green", "red", "nir")
SUMMER = datetime(2023, 6, 1, tzinfo=timezone.utc), datetime(2023, 8, 31, 23, 59, 59, tzinfo=timezone.utc)
