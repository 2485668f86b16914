"""Writing ``truth/``: the JSON document and the class, change and sky rasters per tile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import sky as sk
from .grids import TileGrid
from .landscape import CLASSES
from .raster_io import Georef, write_gtiff
from .scenes import TileTruth, reflectance_table
from .schedule import Acquisition
from .spectra import BANDS, DN_OFFSET, DN_SCALE, backscatter, ndvi, to_dn
from .stac_writer import write_json
from .truth import landscape_document


def raster_names(tile: TileGrid) -> dict[str, str]:
    """Truth raster file names of a tile, relative to ``truth/``."""
    return {
        "classes": f"{tile.code}_classes.tif",
        "classes_20m": f"{tile.code}_classes_20m.tif",
        "change": f"{tile.code}_change.tif",
        "change_20m": f"{tile.code}_change_20m.tif",
        "sky": f"{tile.code}_sky.tif",
    }


def write_rasters(truth_dir: Path, truth: TileTruth, acqs: list[Acquisition], sky: list[np.ndarray]) -> None:
    """Class maps (before the clear-cut), the change mask, and the per-date sky states."""
    tile = truth.tile
    names = raster_names(tile)
    g10, g20 = Georef(tile.geotransform(10), tile.epsg), Georef(tile.geotransform(20), tile.epsg)
    write_gtiff(truth_dir / names["classes"], truth.classes[10], g10, nodata=0)
    write_gtiff(truth_dir / names["classes_20m"], truth.classes[20], g20, nodata=0)
    write_gtiff(truth_dir / names["change"], truth.change[10].astype(np.uint8), g10, nodata=None)
    write_gtiff(truth_dir / names["change_20m"], truth.change[20].astype(np.uint8), g20, nodata=None)
    write_gtiff(truth_dir / names["sky"], np.stack(sky), g20, nodata=None, descriptions=[a.iso for a in acqs])


def _per_class(values: dict[int, list[Any]]) -> dict[str, Any]:
    return {c.name: values[c.code] for c in CLASSES}


def clear_tables(acqs: list[Acquisition]) -> dict[str, Any]:
    """Per class, band and date: clear reflectance, its DN, and the DN under a cloud shadow."""
    tables = [reflectance_table(a.day) for a in acqs]
    out: dict[str, Any] = {"reflectance": {}, "dn": {}, "shadow_dn": {}, "ndvi": {}}
    for c in CLASSES:
        out["reflectance"][c.name] = {b: [float(t[c.code, i]) for t in tables] for i, b in enumerate(BANDS)}
        out["dn"][c.name] = {b: [to_dn(float(t[c.code, i])) for t in tables] for i, b in enumerate(BANDS)}
        out["shadow_dn"][c.name] = {
            b: [to_dn(float(t[c.code, i] * sk.SHADOW_FACTOR)) for t in tables] for i, b in enumerate(BANDS)
        }
        out["ndvi"][c.name] = [round(ndvi(tuple(t[c.code])), 6) for t in tables]
    return out


def document(
    seed: int, version: str, truths: list[TileTruth], s2: list[Acquisition], s1: list[Acquisition],
    scenarios: list[sk.SkyScenario], sun: list[tuple[float, float]], s2_items: dict[str, list[dict[str, Any]]],
    s1_items: dict[str, list[str]], change_neighbours: tuple[int, int],
) -> dict[str, Any]:
    tiles = [t.tile for t in truths]
    doc: dict[str, Any] = {"seed": seed, "generator_version": version}
    doc.update(landscape_document())
    before, after = change_neighbours
    doc["change"].update({
        "tiles": [t.tile.code for t in truths if bool(t.change[10].any())],
        "last_acquisition_before": s2[before].iso, "first_acquisition_after": s2[after].iso,
    })
    doc["dn"] = {
        "formula": "DN = floor(reflectance * 10000 + 1000 + 0.5); reflectance = DN * scale + offset",
        "scale": DN_SCALE, "offset": DN_OFFSET, "nodata": 0,
    }
    doc["bands"] = {b: (10 if b != "swir16" else 20) for b in BANDS}
    doc["tiles"] = {
        t.code: {
            "epsg": t.epsg, "grid_code": f"MGRS-{t.code}",
            "geotransform_10m": list(t.geotransform(10)), "geotransform_20m": list(t.geotransform(20)),
            "shape_10m": list(t.shape(10)), "shape_20m": list(t.shape(20)),
            "bbox": t.bbox_lonlat(), "rasters": raster_names(t),
        }
        for t in tiles
    }
    doc["sky"] = {
        "legend": {str(k): v for k, v in sk.SKY_LEGEND.items()},
        "grid": "20 m; a 10 m pixel has the sky state of its 20 m parent",
        "scl_mapping": {"8,9": sk.CLOUD, "3": sk.SHADOW, "10": sk.CIRRUS, "0": sk.NODATA, "4,5,6": sk.CLEAR},
        "shadow_factor": sk.SHADOW_FACTOR, "cloud_spectrum": list(sk.CLOUD_SPECTRUM),
        "cirrus_add": list(sk.CIRRUS_ADD), "cloud_height_km": sk.CLOUD_HEIGHT_KM,
        "cloud": "reflectance = (1 - alpha) * clear + alpha * cloud_spectrum * brightness, alpha 0.5..1",
        "cirrus": "reflectance = clear + alpha * cirrus_add, alpha 0.3..1",
    }
    doc["clear"] = clear_tables(s2)
    doc["s2"] = {
        "datetimes": [a.iso for a in s2],
        "acquisitions": [
            {"index": a.index, "datetime": a.iso, "platform": a.platform, "sky": scn.kind,
             "sun_azimuth": round(az, 2), "sun_elevation": round(el, 2),
             "brightness": scn.brightness, "swath_edge_km": list(scn.swath_edge) if scn.swath_edge else None}
            for a, scn, (az, el) in zip(s2, scenarios, sun)
        ],
        "items": s2_items,
    }
    doc["s1"] = {
        "datetimes": [a.iso for a in s1],
        "equivalent_looks": 5.0,
        "mean": {c.name: {"vv": [backscatter(c.code, a.datetime)[0] for a in s1],
                          "vh": [backscatter(c.code, a.datetime)[1] for a in s1]} for c in CLASSES},
        "items": s1_items,
    }
    doc["landcover"] = {"represents": "classes before the clear-cut", "codes": "classes[].worldcover"}
    return doc


def write_document(truth_dir: Path, doc: dict[str, Any]) -> None:
    write_json(truth_dir / "truth.json", doc)
