"""Items known by an interval only (`datetime: null`, `start_datetime`/`end_datetime`, as MODIS composites
and yearly maps are published): searched, grouped, shown, plotted and composited by their interval.

A copy of the demo catalog whose Sentinel-2 items lose their `datetime` for an interval of an hour
from it must give the same search, composite and point series as the demo itself (the ground truth's
own tests hold those); real MODIS items show their 8-day interval in the dock's list, and a footprint
covers its whole interval on the time slider.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from cut_catalog import linked_copy
from osgeo import gdal

from cubescope.plugin.analysis.engine.analysis_request import AnalysisRequest, Period
from cubescope.plugin.analysis.engine.pipeline import run, search_items
from cubescope.plugin.analysis.timeseries import read_series
from cubescope.plugin.cube.cog_reader import CogStackReader
from cubescope.plugin.stac.items import item_datetime, item_when, parse_datetime
from cubescope.plugin.stac.tiles import group_by_tile

DATA = Path(__file__).parent / "data" / "provider_items"
TILE = (732320.0, 5041600.0, 734880.0, 5044160.0)  # demo tile 34TGR, EPSG:32634
SUMMER = Period(datetime(2023, 6, 1), datetime(2023, 8, 31, 23, 59, 59))
FOREST = (24.0025633, 45.5085915)


def interval_catalog(demo_cube, folder: Path) -> Path:
    """The demo catalog (JSON copied, rasters linked) whose Sentinel-2 items have `datetime: null` and
    the interval [datetime, datetime + 1 h]."""
    linked_copy(demo_cube, folder)
    for path in (folder / "demo-s2-l2a").glob("*/*.json"):
        item = json.loads(path.read_text())
        when = parse_datetime(item["properties"]["datetime"])
        item["properties"].update(datetime=None, start_datetime=item["properties"]["datetime"],
                                  end_datetime=(when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        path.write_text(json.dumps(item))
    return folder / demo_cube.catalog.name


@pytest.fixture(scope="module")
def intervals(demo_cube, tmp_path_factory) -> Path:
    return interval_catalog(demo_cube, tmp_path_factory.mktemp("intervals") / "stac")


def _request(catalog: Path, output: Path) -> AnalysisRequest:
    return AnalysisRequest(source=str(catalog), collection="demo-s2-l2a", operation="composite",
                           bands=("red", "nir", "NDVI"), periods=(SUMMER,), output=str(output), extent=TILE,
                           extent_crs="EPSG:32634")


def test_items_known_by_their_interval_are_searched_and_composited_as_by_their_date(demo_cube, intervals, tmp_path):
    found = search_items(_request(intervals, tmp_path / "x.tif"), SUMMER)
    reference = search_items(_request(demo_cube.catalog, tmp_path / "x.tif"), SUMMER)
    assert all(item["properties"]["datetime"] is None for item in found)
    assert sorted(i["id"] for i in found) == sorted(i["id"] for i in reference) and len(found) > 10
    composite = run(_request(intervals, tmp_path / "intervals.tif"))
    demo = run(_request(demo_cube.catalog, tmp_path / "demo.tif"))
    assert gdal.Open(str(composite)).ReadAsArray().tobytes() == gdal.Open(str(demo)).ReadAsArray().tobytes()
    assert gdal.Open(str(composite)).GetMetadata()["CUBESCOPE_DATES"] == gdal.Open(str(demo)).GetMetadata()[
        "CUBESCOPE_DATES"]


def test_an_interval_that_only_ends_in_the_period_is_found(intervals, tmp_path):
    """The search keeps items whose interval overlaps the period, not only those starting in it."""
    summer = search_items(_request(intervals, tmp_path / "x.tif"), SUMMER)
    start = min(item_datetime(i) for i in summer)
    late = Period(start + timedelta(minutes=30), start + timedelta(minutes=50))  # after it starts
    same_start = sorted(i["id"] for i in summer if item_datetime(i) == start)
    assert sorted(i["id"] for i in search_items(_request(intervals, tmp_path / "x.tif"), late)) == same_start
    assert same_start


def test_the_point_series_of_interval_items_equals_the_demos(demo_cube, intervals, tmp_path):
    def series(catalog: Path):
        everything = Period(datetime(2023, 1, 1), datetime(2024, 12, 31))
        items = search_items(_request(catalog, tmp_path / "x.tif"), everything)
        with CogStackReader(items) as reader:
            return read_series(reader, *FOREST, ["red", "NDVI"])

    got, expected = series(intervals), series(demo_cube.catalog)
    assert [o.datetime for o in got.observations] == [o.datetime for o in expected.observations]
    assert len(got.observations) > 20
    for a, b in zip(got.observations, expected.observations):
        np.testing.assert_array_equal([a.values["red"], a.values["NDVI"]], [b.values["red"], b.values["NDVI"]])


def test_real_modis_items_show_their_interval_and_group_by_tile():
    item = json.loads((DATA / "modis-MOD09A1.A2022033.h19v10.json").read_text())
    assert item["properties"]["datetime"] is None
    assert item_when(item) == "2022-02-02/2022-02-09"
    assert item_when(item, with_time=True) == "2022-02-02 00:00:00/2022-02-09 23:59:59"
    assert item_datetime(item) == datetime(2022, 2, 2, tzinfo=timezone.utc)
    assert [g.tile for g in group_by_tile([item])] == ["h19v10"]


def test_the_dock_list_and_the_footprints_show_the_interval(qgis_app):
    """The list reads "2022-02-02/2022-02-09"; on the time slider the footprint is there on any day of
    its interval and not the day after."""
    from qgis.core import QgsDateTimeRange, QgsFeatureRequest, QgsVectorLayerTemporalContext
    from qgis.PyQt.QtCore import QDateTime, Qt

    from cubescope.plugin.gui.footprints import footprints_layer
    from cubescope.plugin.gui.results_model import ResultsModel

    item = json.loads((DATA / "modis-MOD09A1.A2022033.h19v10.json").read_text())
    model = ResultsModel()
    model.set_groups(group_by_tile([item]))
    row = model.item(0).child(0)
    assert row.text() == "2022-02-02/2022-02-09" and "2022-02-09 23:59:59 UTC" in row.toolTip()

    layer = footprints_layer([item], "footprints")
    context = QgsVectorLayerTemporalContext()
    context.setLayer(layer)

    def shown(day: str) -> bool:
        start = QDateTime.fromString(f"{day}T12:00:00Z", Qt.DateFormat.ISODate)
        frame = QgsDateTimeRange(start, start.addSecs(3600))
        expression = layer.temporalProperties().createFilterString(context, frame)
        return any(True for _ in layer.getFeatures(QgsFeatureRequest().setFilterExpression(expression)))

    assert shown("2022-02-02") and shown("2022-02-06") and shown("2022-02-09")
    assert not shown("2022-02-10") and not shown("2022-02-01")


def test_the_plot_hover_shows_an_items_interval(demo_cube, tmp_path, qgis_app):
    """Items known by an 8-day interval: the series' observations carry it, and the plot's hover reads
    "2023-06-13/2023-06-21 red = …" instead of a single day."""
    from cubescope.plugin.gui.series_plot import SeriesPlot

    catalog = linked_copy(demo_cube, tmp_path / "stac")
    for path in sorted((catalog.parent / "demo-s2-l2a").glob("*_T34TGR/*.json"))[:3]:
        item = json.loads(path.read_text())
        when = parse_datetime(item["properties"]["datetime"])
        item["properties"].update(datetime=None, start_datetime=item["properties"]["datetime"],
                                  end_datetime=(when + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        path.write_text(json.dumps(item))
    everything = Period(datetime(2023, 1, 1), datetime(2024, 12, 31))
    items = [i for i in search_items(_request(catalog, tmp_path / "x.tif"), everything)
             if i["properties"]["datetime"] is None]
    assert len(items) == 3
    with CogStackReader(items) as reader:
        series = read_series(reader, *FOREST, ["red"])
    expected = [item_when(item) for item in sorted(items, key=item_datetime)]
    assert [o.period for o in series.observations] == expected and all("/" in p for p in expected)
    first = series.observations[0]
    assert SeriesPlot._tip(0.0, 0.05, (first, "red")).startswith(f"{expected[0]}  red = 0.0500")
