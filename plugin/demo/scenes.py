"""Pixels of one tile on one date: the truth seen through the sky.

Clear pixels take their digital number straight from a per-class lookup table computed
with :func:`spectra.to_dn`, so a clear pixel equals the truth's DN exactly; shadows use a
second table (clear reflectance x SHADOW_FACTOR). Only clouds and cirrus are computed per
pixel, since their brightness varies with opacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np

from . import sky as sk
from .grids import TileGrid
from .landscape import CHANGE_DATE, CLASSES, CLEAR_CUT, FOREST, change_mask, classify, elevation
from .schedule import Acquisition
from .spectra import BANDS, DN_OFFSET, DN_SCALE, backscatter, reflectance, to_dn

BANDS_10M = ("blue", "green", "red", "nir")
BANDS_20M = ("swir16",)
_N_CODES = max(c.code for c in CLASSES) + 1
#: Equivalent number of looks of the RTC speckle.
S1_LOOKS = 5.0


@dataclass(frozen=True)
class TileTruth:
    """The static truth of one tile: class maps before the clear-cut and its mask."""

    tile: TileGrid
    classes: dict[int, np.ndarray]  #: resolution (10, 20) -> uint8 class codes before the change
    change: dict[int, np.ndarray]  #: resolution -> bool, forest cleared on CHANGE_DATE

    def classes_on(self, res: int, day: date) -> np.ndarray:
        """Class codes on a date: forest inside the change polygon is clear-cut from CHANGE_DATE."""
        codes = self.classes[res]
        if day < date.fromisoformat(CHANGE_DATE):
            return codes
        cut = self.change[res] & (codes == FOREST.code)
        return np.where(cut, np.uint8(CLEAR_CUT.code), codes)


@lru_cache(maxsize=4)
def tile_truth(tile: TileGrid) -> TileTruth:
    classes, change = {}, {}
    for res in (10, 20):
        lon, lat = tile.pixel_centres_lonlat(res)
        classes[res] = classify(lon, lat)
        change[res] = change_mask(lon, lat)
    return TileTruth(tile, classes, change)


@dataclass(frozen=True)
class S2Scene:
    """Everything written for one Sentinel-2 item."""

    bands: dict[str, np.ndarray]  #: uint16 DN; 10 m for BANDS_10M, 20 m for swir16
    scl: np.ndarray  #: uint8 scene classification at 20 m
    sky: np.ndarray  #: uint8 sky state at 20 m (sky.SKY_LEGEND)
    cloud_cover: float  #: percent of valid pixels with SCL 8, 9 or 10
    nodata_fraction: float  #: share of the tile without data


def reflectance_table(day: date) -> np.ndarray:
    """(class code, band) -> clear reflectance on `day`; unused codes are 0."""
    table = np.zeros((_N_CODES, len(BANDS)))
    for c in CLASSES:
        table[c.code] = reflectance(c.code, day)
    return table


def _dn_table(refl: np.ndarray) -> np.ndarray:
    return np.vectorize(to_dn, otypes=[np.uint16])(refl)


def _dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(refl / DN_SCALE - DN_OFFSET / DN_SCALE + 0.5), 1, 65535).astype(np.uint16)


def _up(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def _band(codes: np.ndarray, b: int, layers: sk.SkyLayers, scn: sk.SkyScenario,
          refl: np.ndarray, dn: np.ndarray, dn_shadow: np.ndarray) -> np.ndarray:
    out = dn[codes, b]
    state, alpha = layers.state, layers.alpha
    cloud = state == sk.CLOUD
    if cloud.any():
        a = alpha[cloud]
        out[cloud] = _dn((1 - a) * refl[codes[cloud], b] + a * sk.CLOUD_SPECTRUM[b] * scn.brightness)
    cirrus = state == sk.CIRRUS
    if cirrus.any():
        out[cirrus] = _dn(refl[codes[cirrus], b] + alpha[cirrus] * sk.CIRRUS_ADD[b])
    shadow = state == sk.SHADOW
    out[shadow] = dn_shadow[codes[shadow], b]
    out[state == sk.NODATA] = 0
    return out


def render_s2(truth: TileTruth, acq: Acquisition, scn: sk.SkyScenario) -> S2Scene:
    lon, lat = truth.tile.pixel_centres_lonlat(20)
    layers20 = sk.render_sky(scn, lon, lat)
    layers10 = sk.SkyLayers(_up(layers20.state), _up(layers20.scl), _up(layers20.alpha))
    refl = reflectance_table(acq.day)
    dn = _dn_table(refl)
    dn_shadow = _dn_table(refl * sk.SHADOW_FACTOR)
    codes10 = truth.classes_on(10, acq.day)
    codes20 = truth.classes_on(20, acq.day)
    bands = {name: _band(codes10, BANDS.index(name), layers10, scn, refl, dn, dn_shadow) for name in BANDS_10M}
    for name in BANDS_20M:
        bands[name] = _band(codes20, BANDS.index(name), layers20, scn, refl, dn, dn_shadow)
    scl_clear = np.array([0] * _N_CODES, dtype=np.uint8)
    for c in CLASSES:
        scl_clear[c.code] = c.scl
    scl = np.where(layers20.state == sk.CLEAR, scl_clear[codes20], layers20.scl).astype(np.uint8)
    valid = scl != sk.SCL_NODATA
    cloudy = np.isin(scl, (sk.SCL_CLOUD_MEDIUM, sk.SCL_CLOUD_HIGH, sk.SCL_CIRRUS))
    cover = round(100.0 * float(cloudy.sum()) / max(int(valid.sum()), 1), 2)
    return S2Scene(bands, scl, layers20.state, cover, round(1.0 - float(valid.mean()), 4))


def thumbnail(scene: S2Scene) -> np.ndarray:
    """128 x 128 true-colour RGB (uint8): reflectance 0..0.25 stretched with a gamma."""
    rgb = np.stack([scene.bands[b].astype(np.float64) for b in ("red", "green", "blue")], axis=-1)
    refl = rgb * DN_SCALE + DN_OFFSET
    refl = refl.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3))
    img = np.clip(refl / 0.25, 0.0, 1.0) ** (1 / 1.8) * 255.0
    nodata = (scene.bands["red"] == 0).reshape(128, 2, 128, 2).any(axis=(1, 3))
    img[nodata] = 0
    return np.round(img).astype(np.uint8)


def render_s1(truth: TileTruth, acq: Acquisition, seed: int, tile_index: int) -> dict[str, np.ndarray]:
    """vv and vh gamma0 at 20 m, class means times gamma speckle (float32)."""
    codes = truth.classes_on(20, acq.day)
    means = np.zeros((_N_CODES, 2))
    for c in CLASSES:
        means[c.code] = backscatter(c.code, acq.datetime)
    rng = np.random.default_rng([seed, 1, tile_index, acq.index])
    out = {}
    for k, pol in enumerate(("vv", "vh")):
        speckle = rng.gamma(S1_LOOKS, 1.0 / S1_LOOKS, size=codes.shape)
        out[pol] = (means[codes, k] * speckle).astype(np.float32)
    return out


def dem(tile: TileGrid) -> np.ndarray:
    """Elevation in metres on the tile's 20 m grid (float32)."""
    lon, lat = tile.pixel_centres_lonlat(20)
    return elevation(lon, lat).astype(np.float32)


def worldcover(truth: TileTruth) -> np.ndarray:
    """The land-cover product at 10 m in ESA WorldCover codes (state before the clear-cut)."""
    lut = np.zeros(_N_CODES, dtype=np.uint8)
    for c in CLASSES:
        lut[c.code] = c.worldcover
    return lut[truth.classes[10]]
