"""Which raster layers to make from selected items, decided without QGIS: paths, names, times, stretch.

The Browse tab's loader task runs these plans off the GUI thread (VRTs, statistics over HTTP) and
only then creates QgsRasterLayers; the same plans serve Processing and tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from ..stac.bands import BandNotFound, resolve_band
from ..stac.gdal_env import GdalOpenError, forget_refusals
from ..stac.hrefs import GdalSource, gdal_source, redact_text, zarr_gdal_path
from ..stac.items import item_datetime, item_self_href
from ..stac.sources import Source
from ..stac.tiles import tile_id
from ..stac.zarr_hrefs import asset_of, declared_crs
from .vrt import colour_stretch, percentile_stretch, stack_vrt

TRUE_COLOUR = ("red", "green", "blue")
FALSE_COLOUR = ("nir", "red", "green")
SAR_ASSETS = {"vv", "vh", "hh", "hv"}


@dataclass(frozen=True)
class LayerPlan:
    """One raster layer to add."""

    name: str
    path: str
    """What QgsRasterLayer(path, name, "gdal") opens: a local path, /vsicurl/..., /vsicurl?header_file=...
    (a source with auth headers), ZARR:..., or a VRT."""
    config: Mapping[str, str]
    """GDAL options the path needs (scoped to its prefix by the loader; may hold credentials)."""
    source_name: str
    collection: str
    item_id: str
    assets: tuple[str, ...]
    tile: str
    start: datetime
    end: datetime
    """Temporal range [start, end): a stack's layers follow each other without gaps."""
    stretch: tuple[tuple[float, float], ...] = ()
    """Per band (min, max) for the renderer, from the data."""
    decibels: bool = False
    """Backscatter shown as 10·log10 (the VRT computes it)."""
    hrefs: tuple[str, ...] = field(default=())
    """The original asset hrefs (unsigned): provenance saved with the project."""



def _day_after(when: datetime) -> datetime:
    return when + timedelta(days=1)


def _vrt_name(workdir: Path, parts: Sequence[str]) -> Path:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return workdir / f"{digest}.vrt"


def asset_source(item: dict, asset: str, source: Source, signer: Callable[[str], str] | None,
                 credentials: Mapping[str, str] | None = None, header_file: str = "") -> tuple[GdalSource, str]:
    """The GDAL source of one band of an item (asset key or common name), and its asset key."""
    band = resolve_band(item, asset)
    found = asset_of(item, band.asset_key) or {}
    gdal_src = gdal_source(found["href"], base=item_self_href(item), s3=source.s3, signer=signer,
                           credentials=credentials, header_file=header_file, auth_scope=source.url)
    if gdal_src.path.startswith("ZARR:"):  # EOPF arrays: GDAL reads their grid, the item gives their CRS
        gdal_src = replace(gdal_src, srs=declared_crs(item, found))
    return gdal_src, band.asset_key


def plan_layers(
    items: Sequence[dict],
    bands: Sequence[str],
    source: Source,
    workdir: Path,
    *,
    stack: bool = False,
    signer: Callable[[str], str] | None = None,
    credentials: Mapping[str, str] | None = None,
    header_file: str = "",
    is_canceled: Callable[[], bool] = lambda: False,
) -> tuple[list[LayerPlan], list[str]]:
    """Layers for ``items``: one band each, or a composite when several ``bands`` are given.

    ``header_file`` holds the source's HTTP auth headers (``cube.header_files``): http(s) assets are
    then read through ``/vsicurl?header_file=`` paths, in the layers and in their VRTs alike.
    Returns the plans and the problems (a missing asset, an unreadable file) in users' words; an
    item with a problem is left out, the others are still loaded.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(items, key=item_datetime)
    plans: list[LayerPlan] = []
    problems: list[str] = []
    for index, item in enumerate(ordered):
        if is_canceled():
            break
        start = item_datetime(item)
        end = item_datetime(ordered[index + 1]) if stack and index + 1 < len(ordered) else _day_after(start)
        try:
            sources, keys = zip(*(asset_source(item, b, source, signer, credentials, header_file) for b in bands))
        except (BandNotFound, KeyError) as error:
            problems.append(f"{item.get('id', '?')}: {error}")
            continue
        config: dict[str, str] = {}
        for gdal_src in sources:
            config.update(gdal_src.config)
        decibels = len(keys) == 1 and keys[0].lower() in SAR_ASSETS
        description = ", ".join(s.description for s in sources)  # the hrefs, never a header file path
        forget_refusals(s.path for s in sources)
        srs = next((s.srs for s in sources if s.srs), "")  # a CRS GDAL does not read: given in a VRT
        try:
            if len(sources) == 1 and not decibels and not srs:
                path = sources[0].path
            else:
                parts = [s.path for s in sources] + (["dB"] if decibels else []) + ([srs] if srs else [])
                vrt = _vrt_name(workdir, parts)
                path = stack_vrt(list(sources), str(vrt), list(keys), decibels=decibels, srs=srs)
            stretch = tuple(
                percentile_stretch(GdalSource(path, config, description), band=i + 1) for i in range(len(sources))
            )
            if len(stretch) > 1:  # a colour composite keeps its bands' proportions
                stretch = colour_stretch(stretch)
        except (GdalOpenError, OSError, RuntimeError, ValueError) as error:  # e.g. 401: the others still load
            problems.append(f"{item.get('id', '?')}: cannot read {description}: {redact_text(str(error))}")
            continue
        tile = tile_id(item) or ""
        plans.append(LayerPlan(
            name=f"{start:%Y-%m-%d} {'/'.join(keys)}", path=path, config=config, source_name=source.name,
            collection=item.get("collection", ""), item_id=item.get("id", ""), assets=tuple(keys), tile=tile,
            start=start, end=end, stretch=stretch, decibels=decibels,
            hrefs=tuple((asset_of(item, k) or {}).get("href", "") for k in keys),
        ))
    return plans, problems


def plan_zarr_layers(url: str, variable: str, times: Sequence[datetime], source: Source,
                     credentials: Mapping[str, str] | None = None, header_file: str = "") -> list[LayerPlan]:
    """One layer per time step of a Zarr variable (GDAL's classic access needs the time index)."""
    plans = []
    for index, start in enumerate(times):
        gdal_src = zarr_gdal_path(url, variable, index, s3=source.s3, credentials=credentials,
                                  header_file=header_file)
        end = times[index + 1] if index + 1 < len(times) else _day_after(start)
        plans.append(LayerPlan(
            name=f"{start:%Y-%m-%d} {variable}", path=gdal_src.path, config=gdal_src.config,
            source_name=source.name, collection=url.rstrip("/").rsplit("/", 1)[-1], item_id=f"{variable}[{index}]",
            assets=(variable,), tile=url.rstrip("/").rsplit("/", 1)[-1], start=start, end=end, hrefs=(url,),
        ))
    return plans
