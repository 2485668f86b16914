"""Spectral indices from bands named by their STAC common names.

Inputs are reflectance (each band's scale and offset already applied): an index computed on raw DNs
is wrong whenever the offset is not zero (Sentinel-2 since processing baseline 04.00). The result is
NaN wherever an input is NaN or the denominator is 0, never ±inf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

# Only check_bands uses these: compute_index, which Dask workers unpickle by value, must not need any
# other package of Cubescope (the workers do not have it).
from ...stac.bands import first_present, with_substitutes

Array = TypeVar("Array")

#: L in the soil-adjusted vegetation index (Huete 1988).
SAVI_L = 0.5

_REQUIRED: dict[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),
    "evi": ("nir", "red", "blue"),
    "ndwi": ("green", "nir"),  # McFeeters 1996: open water
    "nbr": ("nir", "swir22"),
    "savi": ("nir", "red"),
}
INDICES = frozenset(_REQUIRED)
"""Index names `compute_index` knows (lower case)."""

_TITLES = {
    "ndvi": "NDVI",
    "evi": "EVI",
    "ndwi": "NDWI (McFeeters)",
    "nbr": "NBR",
    "savi": "SAVI",
}


class MissingBand(KeyError):  # noqa: N818 (public API name)
    """An index needs a band the data does not have; the message names it and lists what there is."""

    def __init__(self, index: str, band: str, available: Iterable[str], instead: Iterable[str] = ()) -> None:
        self.index = index
        self.band = band
        self.available = sorted(set(available))
        listed = ", ".join(self.available) if self.available else "none"
        instead = "".join(f" or '{name}'" for name in instead)  # what stands in for it (Landsat's nir08)
        self.message = (f"{index.upper()} needs the '{band}'{instead} band (common name), which is not available; "
                        f"available bands: {listed}")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def is_index(name: str) -> bool:
    """Whether `name` is an index rather than a band."""
    return name.strip().casefold() in INDICES


def index_title(name: str) -> str:
    """A label for plots and tables ("NDVI")."""
    return _TITLES.get(name.strip().casefold(), name)


def required_bands(index: str) -> tuple[str, ...]:
    """Common names of the bands `index` is computed from."""
    key = index.strip().casefold()
    if key not in _REQUIRED:
        raise ValueError(f"Unknown index '{index}'; known indices: {', '.join(sorted(INDICES))}")
    return _REQUIRED[key]


def check_bands(index: str, available: Iterable[str]) -> None:
    """Raise `MissingBand` for the first band `index` needs that is not in `available` (common names),
    nor any band that stands in for it (Landsat's "nir08" for "nir")."""
    available = list(available)
    have = {a.casefold() for a in available}
    for band in required_bands(index):
        if first_present(band, have) is None:
            raise MissingBand(index.strip().casefold(), band, available, with_substitutes(band)[1:])


def computable(index: str, available: Iterable[str]) -> bool:
    """Whether bands with these common names are enough for `index`."""
    try:
        check_bands(index, available)
    except MissingBand:
        return False
    return True


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator with NaN (not inf) where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    zero = denominator == 0
    if hasattr(out, "where") and not isinstance(out, np.ndarray):  # xarray keeps coords and attrs
        return out.where(~zero)
    result = np.where(zero, np.nan, out)
    return result if np.ndim(result) else float(result)  # scalars in, a plain float out


def _float(value: Any) -> Any:
    """float64 numpy scalars/arrays (a Python float would raise on division by zero); xarray stays xarray."""
    if isinstance(value, (np.ndarray, np.generic, int, float)):
        return np.asarray(value, dtype=np.float64) if np.ndim(value) else np.float64(value)
    return value.astype(np.float64)  # xarray.DataArray


def compute_index(name: str, bands: Mapping[str, Any]) -> Any:
    """Index `name` from reflectance arrays keyed by common name (numpy arrays, xarray or floats).

    Returns the same kind of object as the inputs: a DataArray stays a DataArray with its coordinates.
    """
    key = name.strip().casefold()
    wanted = required_bands(key)
    lowered = {k.casefold(): v for k, v in bands.items()}
    for band in wanted:
        if band not in lowered:
            raise MissingBand(key, band, bands.keys())
    b = {band: _float(lowered[band]) for band in wanted}
    if key == "ndvi":
        return _ratio(b["nir"] - b["red"], b["nir"] + b["red"])
    if key == "evi":
        return 2.5 * _ratio(b["nir"] - b["red"], b["nir"] + 6.0 * b["red"] - 7.5 * b["blue"] + 1.0)
    if key == "ndwi":
        return _ratio(b["green"] - b["nir"], b["green"] + b["nir"])
    if key == "nbr":
        return _ratio(b["nir"] - b["swir22"], b["nir"] + b["swir22"])
    # savi
    return (1.0 + SAVI_L) * _ratio(b["nir"] - b["red"], b["nir"] + b["red"] + SAVI_L)
