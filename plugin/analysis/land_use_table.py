"""Time series and land-use trajectories (WLTS) of the same points in one table.

Each observation row gets the class the point had on that date (``land_use``, with the collection
that says it); a point with a trajectory but no series gets one row per trajectory step. Without
trajectories the table is exactly `timeseries.write_csv`'s.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cube.reader import iso
from ..cube.wlts_client import Trajectory, TrajectoryStep
from .timeseries import TimeSeries, row_fields, series_to_rows, write_csv

LAND_USE_FIELDS = ["land_use", "land_use_collection"]


def step_at(trajectory: Trajectory | None, when: datetime) -> TrajectoryStep | None:
    """The step in force on ``when``: the last one started by then and not yet ended."""
    if trajectory is None:
        return None
    current = None
    for step in trajectory.steps:
        if step.date <= when and (step.end is None or when < step.end):
            current = step
    return current


def land_use_rows(series: Mapping[Any, TimeSeries], trajectories: Mapping[Any, Trajectory]) -> list[dict[str, Any]]:
    """The rows of `write_csv_with_land_use`, None for an empty cell."""
    rows: list[dict[str, Any]] = []
    for point_id, one in series.items():
        trajectory = trajectories.get(point_id)
        for row, observation in zip(series_to_rows(one, point_id), one.observations):
            step = step_at(trajectory, observation.datetime)
            row["land_use"] = step.class_name if step else None
            row["land_use_collection"] = step.collection if step else None
            rows.append(row)
    for point_id, trajectory in trajectories.items():
        if point_id in series:
            continue
        for step in trajectory.steps:
            rows.append({"point_id": str(point_id), "datetime": iso(step.date), "item_id": None, "valid": None,
                         "land_use": step.class_name, "land_use_collection": step.collection})
    return rows


def write_csv_with_land_use(path: str | Path, series: Mapping[Any, TimeSeries],
                            trajectories: Mapping[Any, Trajectory]) -> Path:
    """``series`` and ``trajectories`` (point id -> each) in one CSV file."""
    if not trajectories:
        return write_csv(path, series)
    bands: list[str] = []
    for one in series.values():
        bands.extend(b for b in one.bands if b not in bands)
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=row_fields(bands) + LAND_USE_FIELDS, restval="")
        writer.writeheader()
        for row in land_use_rows(series, trajectories):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path
