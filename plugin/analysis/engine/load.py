"""Items onto the output grid as a lazy (dask) xarray Dataset, with odc-stac.

odc-stac does the planning, the reprojection and the alignment (nothing of that is written here;
sources already on the grid are read by :mod:`.reader` through odc-stac's driver interface);
this module decides what it is given: asset hrefs mapped to what GDAL opens (the one place in
``stac/hrefs.py``), the observations grouped by solar day (so the tiles of one pass form one time
slice, and the scale/offset and date of each slice are known here), nearest-neighbour resampling
for the quality band, and chunks that are spatial with the time axis whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

from ...cube.header_files import header_file as private_header_file
from ...stac.hrefs import gdal_source, within_auth_scope
from ...stac.items import item_bbox, item_datetime, item_name
from ...stac.zarr_hrefs import asset_of
from .grid import OutputGrid, transform_point

#: Resampling odc-stac applies to the data bands (the quality band always gets "nearest").
RESAMPLING = ("nearest", "bilinear", "cubic", "average", "mode")


@dataclass(frozen=True)
class TimeSlice:
    """The observations of one solar day: one time step of the stack."""

    when: datetime
    """The first item's acquisition time (UTC), which odc-stac also uses as the time coordinate."""
    day: date
    """The solar day (local date at the grid's longitude)."""
    items: tuple[int, ...]
    """Indices of the items (in the list given to odc-stac), earliest first."""

    @property
    def day_of_year(self) -> int:
        return self.day.timetuple().tm_yday


def solar_day(item: dict, longitude: float) -> date:
    """The local solar date of an acquisition at ``longitude`` (UTC + longitude / 15 hours)."""
    return (item_datetime(item) + timedelta(hours=longitude / 15.0)).date()


def grid_longitude(grid: OutputGrid) -> float:
    """The longitude of the grid's centre (where odc-stac also evaluates the solar day)."""
    x = (grid.bounds[0] + grid.bounds[2]) / 2
    y = (grid.bounds[1] + grid.bounds[3]) / 2
    return float(transform_point(x, y, grid.crs, "EPSG:4326")[0])


def group_by_solar_day(items: Sequence[dict], longitude: float) -> list[TimeSlice]:
    """Items grouped by solar day, days in order, items in a day by (time, id): odc-stac's own order."""
    keyed = sorted(range(len(items)), key=lambda i: (solar_day(items[i], longitude), item_datetime(items[i]),
                                                     item_name(items[i])))
    slices: list[TimeSlice] = []
    for index in keyed:
        day = solar_day(items[index], longitude)
        if slices and slices[-1].day == day:
            slices[-1] = TimeSlice(slices[-1].when, day, (*slices[-1].items, index))
        else:
            slices.append(TimeSlice(item_datetime(items[index]), day, (index,)))
    return slices


def touching(items: Sequence[dict], bbox_lonlat: tuple[float, float, float, float] | None) -> list[dict]:
    """The items whose footprint bbox intersects ``bbox_lonlat`` (all of them without a bbox)."""
    if bbox_lonlat is None:
        return list(items)
    west, south, east, north = bbox_lonlat
    kept = []
    for item in items:
        box = item_bbox(item)
        if box is None or (box[0] <= east and box[2] >= west and box[1] <= north and box[3] >= south):
            kept.append(item)
    return kept


def gdal_items(items: Sequence[dict], asset_keys: Sequence[str], signer: Callable[[str], str] | None = None,
               options: Mapping[str, str] | None = None, s3: Any = None,
               credentials: Mapping[str, str] | None = None, auth_headers: Mapping[str, str] | None = None,
               auth_scope: str = "") -> tuple[list[dict], dict[str, str]]:
    """Copies of the items whose asset hrefs are what GDAL opens, and the GDAL options they need.

    ``auth_headers`` go to the http(s) assets within ``auth_scope`` (the source's URL) only. The
    options apply to the whole load, so when some assets are on other sites the headers cannot be
    an option: those on the source's site then name a private header file in their path
    (``/vsicurl?header_file=``), which only workers on this machine can read.
    """
    hrefs = [str(asset["href"]) for item in items for key in asset_keys
             if isinstance(asset := asset_of(item, key), dict) and asset.get("href")]
    header_file = ""
    if auth_headers and not all(within_auth_scope(auth_scope, h) for h in hrefs if h.startswith("http")):
        header_file = private_header_file(auth_scope, auth_headers)
    config: dict[str, str] = dict(options or {})
    out = []
    for item in items:
        assets = dict(item.get("assets") or {})
        for key in asset_keys:
            asset = asset_of(item, key)
            if not isinstance(asset, dict) or not asset.get("href"):
                continue
            source = gdal_source(str(asset["href"]), signer=signer, s3=s3, options=options, credentials=credentials,
                                 auth_headers=auth_headers, header_file=header_file, auth_scope=auth_scope)
            config.update(source.config)
            assets[key] = {**asset, "href": source.path}
            if source.path.startswith("ZARR:"):  # EOPF's application/vnd+zarr is no raster type to odc-stac
                assets[key]["type"] = "application/zarr"
        out.append({**item, "assets": assets})
    return out, config


def load_lazy(
    items: Sequence[dict],
    slices: Sequence[TimeSlice],
    asset_keys: Sequence[str],
    grid: OutputGrid,
    chunk: int,
    resampling: str = "nearest",
    nearest: Sequence[str] = (),
    float_bands: Sequence[str] = (),
    gdal_options: Mapping[str, str] | None = None,
    direct: bool = True,
    only_where: tuple[str, Callable[[Any], Any]] | None = None,
):  # -> xarray.Dataset
    """The items' ``asset_keys`` on ``grid`` as dask arrays chunked (all times, chunk, chunk).

    ``items`` must already be GDAL-ready (:func:`gdal_items`); ``slices`` their solar-day groups.
    ``nearest`` bands are resampled with nearest neighbour whatever ``resampling`` says;
    ``float_bands`` are loaded as float32 so that pixels no item covers are NaN (bands without a
    declared no-data value). ``direct`` runs odc-stac's plan with :mod:`.chunk_loader`, which reads
    sources already on the grid straight through GDAL into the chunks (:mod:`.reader` for the rest);
    without it odc-stac loads everything itself. ``only_where`` (quality band, which of its time
    slices are worth reading) lets the direct reads skip the other bands' dates a chunk has no use
    for (:func:`.chunk_loader.planned`).
    """
    import odc.stac
    import pystac
    import rasterio
    import xarray as xr

    from .chunk_loader import planned
    from .reader import CubescopeDriver, rasterio_options

    if resampling not in RESAMPLING:
        raise ValueError(f"Unknown resampling '{resampling}'; choose one of {', '.join(RESAMPLING)}")
    group_of = {index: n for n, time_slice in enumerate(slices) for index in time_slice.items}

    def group_key(_item: Any, _parsed: Any, index: int) -> int:
        return group_of[index]

    stac_items = [pystac.Item.from_dict(dict(item), preserve_dict=True) for item in items]
    options = dict(gdal_options or {})
    # The direct driver hands the options (object-store keys too) to every read; odc-stac's own reader
    # takes what rasterio accepts from the environment around the load.
    driver = CubescopeDriver(options) if direct else None
    chunks = {"time": -1, "x": chunk, "y": chunk}
    # The float bands are a load of their own: odc-loader 0.6 hands a per-band dtype mapping to dask's
    # chunk normalisation, which fails on it ("entry not a 2- or 3- tuple").
    groups = [(keys, dtype) for keys, dtype in (
        ([key for key in asset_keys if key not in float_bands], None),
        ([key for key in asset_keys if key in float_bands], "float32")) if keys]
    parts, token = [], uuid4().hex  # one token: the parts' reads share this load's open files
    with rasterio.Env(**({} if direct else rasterio_options(options))):
        for keys, dtype in groups:
            part = odc.stac.load(
                stac_items,
                bands=keys,
                geobox=grid.geobox(),
                groupby=group_key,
                resampling={**{key: "nearest" for key in nearest}, "*": resampling},
                dtype=dtype,
                chunks=chunks,
                fail_on_error=True,
                driver=driver,
                debug=direct,  # odc-stac's plan, which chunk_loader executes
            )
            if driver is not None:
                part = planned(part, chunks, driver.capture_env(), token, only_where)
            parts.append(part)
    dataset = parts[0] if len(parts) == 1 else xr.merge(parts, combine_attrs="override")
    if dataset.sizes["time"] != len(slices):
        raise RuntimeError(f"odc-stac made {dataset.sizes['time']} time steps of {len(slices)} solar days")
    return dataset
