"""ESA EOPF-structured Sentinel-2 L2A products of tile A, and their static STAC catalog.

Each product is one Zarr v2 store laid out as the EOPF Sentinel Zarr Samples Service publishes them
(sources: the Radiant Earth STAC sprint notes "EOPF Zarr store structure" and "EOPF STAC item assets",
radiantearth/community-sprints 14102025-esrin-rome-italy/prep-work/eopf/; the service's item generator
EOPF-Sample-Service/eopf-stac, sentinel2/constants.py and sentinel2/assets.py; a gdalinfo of the real
product S2B_MSIL2A_20250522T125039_N0511_R095_T26TML, eopf-toolkit/eopf-tooling-guide
research/qgis-stac-eopf-integration):

- ``measurements/reflectance/r10m/{b02,b03,b04,b08,x,y}`` and ``r20m/{b11,x,y}``: uint16 (``<u2``)
  digital counts, Zarr fill value 0, attributes ``scale_factor`` 0.0001, ``add_offset`` -0.1,
  ``units`` "digital_counts", ``long_name``, ``proj:epsg``, ``proj:bbox`` (plus ``proj:shape`` and
  ``proj:transform``, which the item generator copies to the assets when present) and the same again in
  ``_eopf_attrs``; ``x``/``y`` hold the pixel centres (int64), from which GDAL takes the geotransform;
- ``conditions/mask/l2a_classification/r20m/{scl,x,y}``: the scene classification (uint8);
- a root ``.zattrs`` with ``stac_discovery`` and ``other_metadata`` (``horizontal_CRS_code``), and the
  whole hierarchy consolidated in the root ``.zmetadata``.

A subset of a real product: the demo's bands only (no r60m, no 20 m copies of the 10 m bands, no
``quality`` group). The pixels are the COG demo's of the same dates, so the ground truth holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from . import stac_writer as sw
from .grids import TileGrid
from .scenes import S2Scene
from .schedule import S2_RELATIVE_ORBIT, Acquisition
from .sentinel2 import EO_BANDS, SCL_CLASSES
from .spectra import DN_OFFSET, DN_SCALE
from .zarr_writer import ZarrArray, write_zarr

ZARR_TYPE = "application/vnd+zarr"  # the service's media type (eopf-stac common/constants.py)
#: demo band -> (EOPF band id, resolution); the array is the id in lower case.
BANDS = {"blue": ("B02", 10), "green": ("B03", 10), "red": ("B04", 10), "nir": ("B08", 10), "swir16": ("B11", 20)}
REFLECTANCE = "measurements/reflectance"
SCL_PATH = "conditions/mask/l2a_classification/r20m/scl"
CHUNK = 128
_ZARR_META = (".zgroup", ".zattrs", ".zarray")


def product_id(tile: TileGrid, acq: Acquisition) -> str:
    """ESA's product name: ``S2A_MSIL2A_<sensing>_N0509_R093_T34TGR_<generation>``."""
    unit = "S2A" if acq.platform == "sentinel-2a" else "S2B"
    return f"{unit}_MSIL2A_{acq.compact}_N0509_R{S2_RELATIVE_ORBIT:03d}_T{tile.code}_{acq.compact}"


def _band_entry(key: str) -> dict[str, Any]:
    """A ``bands`` entry as the service writes it (STAC 1.1: ``eo:`` fields inside the band)."""
    eo = EO_BANDS[key]
    return {"name": eo["name"], "eo:common_name": eo["common_name"], "description": eo["description"],
            "eo:center_wavelength": eo["center_wavelength"], "eo:full_width_half_max": eo["full_width_half_max"]}


def _proj(tile: TileGrid, res: int) -> dict[str, Any]:
    x0, _, _, y0, _, _ = tile.geotransform(res)
    rows, cols = tile.shape(res)
    return {"proj:bbox": [x0, y0 - rows * res, x0 + cols * res, y0], "proj:epsg": tile.epsg,
            "proj:shape": [rows, cols], "proj:transform": tile.proj_transform(res)}


def _coords(tile: TileGrid, res: int) -> list[ZarrArray]:
    x0, _, _, y0, _, _ = tile.geotransform(res)
    rows, cols = tile.shape(res)
    half = res // 2
    return [ZarrArray("x", (int(x0) + half + res * np.arange(cols)).astype(np.int64), ("x",), (cols,), None,
                      {"long_name": "x coordinate of pixel centres", "units": "m"}),
            ZarrArray("y", (int(y0) - half - res * np.arange(rows)).astype(np.int64), ("y",), (rows,), None,
                      {"long_name": "y coordinate of pixel centres", "units": "m"})]


def _array_attrs(tile: TileGrid, res: int, long_name: str, dtype: str, scaled: bool) -> dict[str, Any]:
    eopf: dict[str, Any] = {"coordinates": ["x", "y"], "dimensions": ["y", "x"], "dtype": dtype, "fill_value": 0,
                            "long_name": long_name}
    if scaled:
        eopf.update({"add_offset": DN_OFFSET, "scale_factor": DN_SCALE, "units": "digital_counts"})
    return {"_eopf_attrs": eopf, **{k: v for k, v in eopf.items() if k not in ("coordinates", "dimensions")},
            **_proj(tile, res)}


def _reflectance(tile: TileGrid, key: str, data: np.ndarray) -> ZarrArray:
    band, res = BANDS[key]
    long_name = (f"BOA reflectance from MSI acquisition at spectral band {band.lower()} "
                 f"{EO_BANDS[key]['center_wavelength'] * 1000:.1f} nm")
    return ZarrArray(band.lower(), data, ("y", "x"), (CHUNK, CHUNK), 0,
                     _array_attrs(tile, res, long_name, "<u2", scaled=True))


def _consolidate(path: Path) -> None:
    """The root ``.zmetadata``: every group's and array's metadata under its path in the hierarchy."""
    meta = {}
    for file in sorted(p for p in path.rglob(".z*") if p.name in _ZARR_META):
        meta[file.relative_to(path).as_posix()] = json.loads(file.read_text(encoding="utf-8"))
    document = {"zarr_consolidated_format": 1, "metadata": meta}
    (path / ".zmetadata").write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")


def write_product(path: Path, tile: TileGrid, acq: Acquisition, scene: S2Scene) -> None:
    """One EOPF Sentinel-2 L2A product (Zarr v2) of ``scene``."""
    for res in (10, 20):
        arrays = [_reflectance(tile, key, scene.bands[key]) for key, (_, r) in BANDS.items() if r == res]
        write_zarr(path / REFLECTANCE / f"r{res}m", arrays + _coords(tile, res), {}, consolidated=False)
    scl = ZarrArray("scl", scene.scl, ("y", "x"), (CHUNK, CHUNK), 0,
                    _array_attrs(tile, 20, "Scene classification map (SCL)", "|u1", scaled=False))
    write_zarr(path / SCL_PATH.rsplit("/", 1)[0], [scl, *_coords(tile, 20)], {}, consolidated=False)
    for group in ("", "measurements", REFLECTANCE, "conditions", "conditions/mask",
                  "conditions/mask/l2a_classification"):
        (path / group / ".zgroup").write_text(json.dumps({"zarr_format": 2}), encoding="utf-8")
    attrs = {"other_metadata": {"horizontal_CRS_code": f"EPSG:{tile.epsg}"},
             "stac_discovery": {"type": "Feature", "id": product_id(tile, acq),
                                "properties": {"datetime": acq.iso, "platform": acq.platform,
                                               "product:type": "S02MSIL2A", "eo:cloud_cover": scene.cloud_cover}}}
    (path / ".zattrs").write_text(json.dumps(attrs, indent=2, sort_keys=True), encoding="utf-8")
    _consolidate(path)


def _asset_meta(tile: TileGrid) -> dict[str, dict[str, Any]]:
    """The assets without hrefs (the collection's item_assets), as the service's items have them."""
    out: dict[str, dict[str, Any]] = {}
    for res in (10, 20):
        keys = [key for key, (_, r) in BANDS.items() if r == res]
        out[f"SR_{res}m"] = {"type": ZARR_TYPE, "title": f"Surface Reflectance - {res}m",
                             "roles": ["data", "reflectance", "dataset"], "gsd": res,
                             "bands": [_band_entry(key) for key in keys]}
    for key, (band, res) in BANDS.items():
        proj = _proj(tile, res)
        out[f"{band}_{res}m"] = {
            "type": ZARR_TYPE, "title": f"{EO_BANDS[key]['description']} - {res}m", "roles": ["data", "reflectance"],
            "gsd": res, "bands": [_band_entry(key)], "proj:code": f"EPSG:{tile.epsg}",
            **{k: v for k, v in proj.items() if k != "proj:epsg"},
            "raster:scale": DN_SCALE, "raster:offset": DN_OFFSET, "nodata": 0, "data_type": "uint16"}
    proj = _proj(tile, 20)
    out["SCL_20m"] = {"type": ZARR_TYPE, "title": "Scene classification map (SCL)", "roles": ["data"], "gsd": 20,
                      "proj:code": f"EPSG:{tile.epsg}", **{k: v for k, v in proj.items() if k != "proj:epsg"},
                      "nodata": 0, "data_type": "uint8", "classification:classes": SCL_CLASSES}
    out["product"] = {"type": ZARR_TYPE, "title": "EOPF Product", "roles": ["data", "metadata"],
                      "description": "The full Zarr hierarchy of the EOPF product"}
    out["product_metadata"] = {"type": "application/json", "title": "Consolidated Metadata", "roles": ["metadata"]}
    return out


def _paths() -> dict[str, str]:
    """Asset key -> path inside the product ('' for the product itself)."""
    paths = {"SR_10m": f"{REFLECTANCE}/r10m", "SR_20m": f"{REFLECTANCE}/r20m", "SCL_20m": SCL_PATH,
             "product": "", "product_metadata": ".zmetadata"}
    paths.update({f"{band}_{res}m": f"{REFLECTANCE}/r{res}m/{band.lower()}" for band, res in BANDS.values()})
    return paths


def item_doc(tile: TileGrid, acq: Acquisition, scene: S2Scene, product_href: str) -> dict[str, Any]:
    """The STAC item of one product; ``product_href`` is the store's href relative to the item."""
    paths = _paths()
    assets = {key: {"href": f"{product_href}/{paths[key]}".rstrip("/"), **meta}
              for key, meta in _asset_meta(tile).items()}
    props = {"datetime": acq.iso, "platform": acq.platform, "constellation": "sentinel-2", "instruments": ["msi"],
             "gsd": 10, "eo:cloud_cover": scene.cloud_cover, "product:type": "S02MSIL2A",
             "processing:level": "L2A", "sat:relative_orbit": S2_RELATIVE_ORBIT}
    return sw.item(product_id(tile, acq), layout.EOPF_COLLECTION, tile, props, assets,
                   sw.ext("eo", "raster", "processing", "sat", "classification"), res=10)


def write_collection(root: Path, tile: TileGrid, acqs: list[Acquisition], scenes: list[S2Scene]) -> list[str]:
    """The products of ``acqs`` under ``<root>/eopf/products``, their items, collection and catalog; the ids."""
    base = root / layout.EOPF_DIR
    ids = []
    for acq, scene in zip(acqs, scenes):
        pid = product_id(tile, acq)
        write_product(base / "products" / f"{pid}.zarr", tile, acq, scene)
        sw.write_json(base / layout.EOPF_COLLECTION / pid / f"{pid}.json",
                      item_doc(tile, acq, scene, f"../../products/{pid}.zarr"))
        ids.append(pid)
    title = "Demo Sentinel-2 L2A as ESA EOPF Zarr products (synthetic)"
    description = ("The demo's Sentinel-2 L2A pixels of tile 34TGR on a few summer dates, as EOPF products "
                   "(one Zarr v2 store each) described in the EOPF Sentinel Zarr Samples Service's asset "
                   "layout: SR_10m/SR_20m groups with their bands, per-band arrays (B08_10m ...) and SCL_20m.")
    summaries = {"platform": ["sentinel-2a", "sentinel-2b"], "constellation": ["sentinel-2"], "gsd": [10, 20],
                 "proj:epsg": [tile.epsg], "bands": [_band_entry(key) for key in BANDS]}
    sw.write_json(base / layout.EOPF_COLLECTION / "collection.json", sw.collection(
        layout.EOPF_COLLECTION, title, description, sw.ext("eo", "raster", "projection"), [tile.bbox_lonlat()],
        [acqs[0].iso, acqs[-1].iso], ids, _asset_meta(tile), summaries,
        ["sentinel", "copernicus", "esa", "eopf", "zarr", "l2a", "synthetic", "demo"]))
    catalog = sw.catalog([(layout.EOPF_COLLECTION, title)])
    catalog.update(id="cubescope-demo-eopf", title="Cubescope demo cube: EOPF products",
                   description="The demo's Sentinel-2 L2A of tile 34TGR as ESA EOPF Zarr products.")
    sw.write_json(layout.eopf_catalog_path(root), catalog)
    return ids
