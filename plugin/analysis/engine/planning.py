"""From a request and the items found to what each block computes: bands, indices, quality rule, grid.

Everything that can be wrong with a request is found here, before any pixel is read, and said in
the user's words: a period without items, an extent that touches none, a band the collection does
not have, an index whose input band is missing (named), a grid too large (with its size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...stac.bands import (
    AmbiguousBand,
    BandNotFound,
    available_band_names,
    list_bands,
    quality_band,
    resolve_band,
    with_substitutes,
)
from ...stac.items import sort_by_date
from ..ops import composite
from ..ops.blocks import COMPOSITE, STATISTICS, BandStack, BlockSpec, Layer
from ..ops.indices import MissingBand, index_title, is_index, required_bands
from ..ops.quality import QualityRule, rule_for, rule_from_user
from ..ops.statistics import decimal_year
from .grid import OutputGrid, output_grid
from .load import TimeSlice, grid_longitude, group_by_solar_day, touching
from .zarr_scaling import ZARR_ATTRIBUTES, with_array_scaling

if TYPE_CHECKING:
    from .analysis_request import AnalysisRequest, Period

_ITEMSIZE = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "float32": 4,
             "float64": 8}


class AnalysisError(ValueError):
    """A request that cannot run as given; the message says what to change."""


class EmptyPeriod(AnalysisError):  # noqa: N818 (public API name)
    """No item in a period (or in the extent)."""


@dataclass
class PeriodPlan:
    """One period's items, time slices and block specification."""

    period: Period
    items: list[dict]
    slices: list[TimeSlice]
    asset_keys: tuple[str, ...]
    nearest: tuple[str, ...]
    float_bands: tuple[str, ...]
    spec: BlockSpec
    bytes_per_pixel: int
    """Bytes of one pixel of one time slice over all loaded variables."""
    gdal_options: dict[str, str] = field(default_factory=dict)


def _available(item: dict) -> list[str]:
    names = [b.common_name for b in list_bands(item) if b.common_name]
    return names or available_band_names(item)


def _asset_key(reference: dict, name: str, for_index: str | None = None) -> str:
    try:
        return resolve_band(reference, name).asset_key
    except BandNotFound as error:
        if for_index and not isinstance(error, AmbiguousBand):
            raise AnalysisError(str(MissingBand(for_index, name, _available(reference),
                                                with_substitutes(name)[1:]))) from None
        raise AnalysisError(f"{error} (collection items such as {reference.get('id')})") from None


def resolve_layers(reference: dict, names: tuple[str, ...]) -> list[Layer]:
    """Result layers for the requested bands and indices, with the assets they read."""
    layers = []
    for name in names:
        try:
            band = resolve_band(reference, name)
        except BandNotFound:
            band = None
        if is_index(name) and band is None:  # a collection of NDVI rasters has an "NDVI" band
            key = name.strip().casefold()
            inputs = tuple((common, _asset_key(reference, common, key)) for common in required_bands(key))
            layers.append(Layer(name=index_title(key).split(" ")[0], index=key, inputs=inputs))
        else:
            layers.append(Layer(name=name, var=band.asset_key if band else _asset_key(reference, name)))
    return layers


#: The common names a true-colour image is made of, in the order of its channels.
TRUE_COLOUR = ("red", "green", "blue")


def colour_roles(reference: dict, layers: list[Layer]) -> tuple[str | None, ...]:
    """Per result band "red", "green", "blue" or None: the true-colour channel it is. All None unless
    the three are there as bands (not indices): then any viewer shows them as a true-colour image,
    whatever order they were asked in, while a false-colour choice (nir, red, green) keeps its order."""
    roles: list[str | None] = []
    for layer in layers:
        try:
            common = (resolve_band(reference, layer.name).common_name or "").casefold() if layer.var else ""
        except BandNotFound:
            common = ""
        roles.append(common if common in TRUE_COLOUR and common not in roles else None)
    return tuple(roles) if set(TRUE_COLOUR) <= set(roles) else (None,) * len(layers)


def resolve_quality(request: AnalysisRequest, reference: dict) -> tuple[QualityRule | None, str | None, list[str]]:
    """(rule, quality asset key, warnings) for the request's quality settings."""
    wanted = request.quality_band.strip()
    if wanted.casefold() == "none":
        return None, None, []
    detected = quality_band(reference)
    if request.clear_values.strip():
        band = wanted or (detected.asset_key if detected is not None else "")
        if not band:
            raise AnalysisError(f"No quality band found in {reference.get('id')}: give the quality band's name")
        key = _asset_key(reference, band)
        try:
            return rule_from_user(key, request.clear_values), key, []
        except ValueError as error:
            raise AnalysisError(str(error)) from None
    rule = rule_for(reference)
    if wanted:
        key = _asset_key(reference, wanted)
        if rule is None or rule.band.casefold() != key.casefold():
            raise AnalysisError(f"No rule is known for the quality band '{wanted}': give its clear values "
                                "(e.g. 4,5,6) or masked bits (bits:1,3)")
        return rule, key, []
    if rule is None:
        return None, None, [f"No quality band found in {reference.get('id')}: every observation counts as clear"]
    return rule, _asset_key(reference, rule.band), []


def _stack(items: list[dict], slices: list[TimeSlice], key: str, reference: dict,
           request: AnalysisRequest) -> tuple[BandStack, str | None]:
    info = with_array_scaling(resolve_band(reference, key), request)
    scales, offsets = [], []
    for time_slice in slices:
        try:
            band = resolve_band(items[time_slice.items[0]], key)
        except BandNotFound:
            band = info
        if band.scaling == "none" and info.scaling == ZARR_ATTRIBUTES:  # an EOPF group's array, as the reference's
            band = info
        scales.append(float(band.scale))
        offsets.append(float(band.offset))
    return BandStack(var=key, nodata=info.nodata, scale=tuple(scales), offset=tuple(offsets)), info.data_type


def plan_periods(request: AnalysisRequest, items_per_period: list[list[dict]],
                 bbox: tuple[float, float, float, float] | None
                 ) -> tuple[list[PeriodPlan], OutputGrid, str, list[str]]:
    """Per-period plans on a common grid, the quality rule's description and warnings."""
    kept = []
    for period, items in zip(request.periods, items_per_period):
        found = sort_by_date(touching(items, bbox))
        if not found:
            where = "in the extent" if bbox is not None else ""
            cloud = f" with at most {request.max_cloud:g} % cloud cover" if request.max_cloud is not None else ""
            raise EmptyPeriod(f"No items of {request.collection} between {period.start:%Y-%m-%d} and "
                              f"{period.end:%Y-%m-%d} {where}{cloud}".replace("  ", " ").strip())
        kept.append(found)
    reference = kept[0][0]
    layers = resolve_layers(reference, request.bands)
    rule, quality_key, warnings = resolve_quality(request, reference)
    score = None
    if request.operation != "statistics" and request.method == composite.QUALITY_MOSAIC:
        score = resolve_layers(reference, ("ndvi",))[0]
    data_keys: list[str] = []
    for layer in layers + ([score] if score else []):
        for key in ([layer.var] if layer.var else [k for _, k in layer.inputs]):
            if key not in data_keys:
                data_keys.append(key)
    operation = STATISTICS if request.operation == "statistics" else COMPOSITE
    extra = request.extra_bands and request.operation == "composite"  # not for differences or statistics
    n_out = len(layers) + (3 if extra else 0)
    grid = output_grid([i for items in kept for i in items], data_keys, request.extent, request.extent_crs,
                       request.crs or None, request.resolution or None, request.max_pixels, n_out)
    longitude = grid_longitude(grid)
    keys = tuple(data_keys + ([quality_key] if quality_key and quality_key not in data_keys else []))
    plans = []
    for period, items in zip(request.periods, kept):
        slices = group_by_solar_day(items, longitude)
        stacks, floats, size = [], [], 0
        for key in keys:
            stack, dtype = _stack(items, slices, key, reference, request)
            if stack.nodata is None and key != quality_key:
                floats.append(key)
                dtype = "float32"
            stacks.append(stack)
            size += _ITEMSIZE.get(str(dtype), 4)
        spec = BlockSpec(
            operation=operation, method=request.statistic if operation == STATISTICS else request.method,
            layers=tuple(layers), bands=tuple(stacks), quality_var=quality_key, quality_rule=rule,
            order=tuple(range(len(slices))), day_of_year=tuple(s.day_of_year for s in slices),
            years=tuple(decimal_year(s.when) for s in slices),
            extra_bands=extra, score=score)
        plans.append(PeriodPlan(period=period, items=items, slices=slices, asset_keys=keys,
                                nearest=(quality_key,) if quality_key else (), float_bands=tuple(floats),
                                spec=spec, bytes_per_pixel=size))
    description = rule.describe() if rule is not None else "none (every observation counts as clear)"
    return plans, grid, description, warnings
