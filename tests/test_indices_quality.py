"""Spectral indices and quality rules: formulas, NaN handling, the presets, finding a rule in metadata."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from cubescope.plugin.analysis.ops.indices import (
    INDICES,
    MissingBand,
    check_bands,
    computable,
    compute_index,
    index_title,
    is_index,
    required_bands,
)
from cubescope.plugin.analysis.ops.quality import (
    BDC_CMASK,
    BITS,
    CLASSES,
    FMASK,
    LANDSAT_C2_QA_PIXEL,
    SENTINEL2_SCL,
    QualityRule,
    mask_fields,
    parse_values,
    rule_for,
    rule_for_bands,
    rule_from_user,
    user_rule,
)
from cubescope.plugin.demo.truth import load_truth

# ---- indices --------------------------------------------------------------------------------------


def test_the_indices_and_their_bands():
    assert {"ndvi", "evi", "ndwi", "nbr", "savi"} <= INDICES
    assert required_bands("NDVI") == ("nir", "red")
    assert required_bands("evi") == ("nir", "red", "blue")
    assert required_bands("ndwi") == ("green", "nir")
    assert required_bands("nbr") == ("nir", "swir22")
    assert required_bands("savi") == ("nir", "red")
    assert is_index(" NDVI ") and not is_index("red")
    assert index_title("ndwi") == "NDWI (McFeeters)"
    with pytest.raises(ValueError, match="Unknown index 'ndxx'; known indices: evi, nbr, ndvi, ndwi, savi"):
        required_bands("ndxx")


def test_index_formulas_on_arrays():
    blue, green, red = np.array([0.05, 0.04]), np.array([0.08, 0.1]), np.array([0.04, 0.3])
    nir, swir22 = np.array([0.4, 0.2]), np.array([0.1, 0.25])
    bands = {"blue": blue, "green": green, "red": red, "nir": nir, "swir22": swir22}
    np.testing.assert_allclose(compute_index("ndvi", bands), (nir - red) / (nir + red))
    np.testing.assert_allclose(compute_index("evi", bands), 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1))
    np.testing.assert_allclose(compute_index("ndwi", bands), (green - nir) / (green + nir))
    np.testing.assert_allclose(compute_index("nbr", bands), (nir - swir22) / (nir + swir22))
    np.testing.assert_allclose(compute_index("savi", bands), 1.5 * (nir - red) / (nir + red + 0.5))
    assert compute_index("ndvi", {"NIR": 0.5, "Red": 0.1}) == pytest.approx(0.4 / 0.6)


def test_nan_in_nan_out_and_zero_denominators_give_nan_not_inf():
    out = compute_index("ndvi", {"nir": np.array([0.0, np.nan, 0.3]), "red": np.array([0.0, 0.1, 0.1])})
    assert math.isnan(out[0]) and math.isnan(out[1]) and out[2] == pytest.approx(0.5)
    assert math.isnan(compute_index("ndvi", {"nir": 0.0, "red": 0.0}))
    assert math.isnan(compute_index("ndwi", {"green": 0.2, "nir": -0.2}))


def test_an_xarray_input_stays_xarray_with_its_coordinates():
    times = np.array(["2023-05-01", "2023-05-11"], dtype="datetime64[ns]")
    nir = xr.DataArray([0.4, 0.0], coords={"time": times}, dims="time")
    red = xr.DataArray([0.1, 0.0], coords={"time": times}, dims="time")
    out = compute_index("ndvi", {"nir": nir, "red": red})
    assert isinstance(out, xr.DataArray)
    assert (out.time.values == times).all()
    assert out.values[0] == pytest.approx(0.6) and math.isnan(out.values[1])


def test_a_missing_band_is_named_with_the_ones_there_are():
    with pytest.raises(MissingBand) as raised:
        compute_index("nbr", {"nir": 0.3, "red": 0.1, "swir16": 0.2})
    assert str(raised.value) == ("NBR needs the 'swir22' band (common name), which is not available; "
                                 "available bands: nir, red, swir16")
    assert raised.value.band == "swir22" and raised.value.index == "nbr"
    with pytest.raises(MissingBand, match="EVI needs the 'blue' band"):
        check_bands("evi", ["nir", "red"])
    check_bands("ndvi", ["NIR", "red"])
    check_bands("ndvi", ["nir08", "red"])  # Landsat's only NIR band
    assert [computable(i, ["red", "nir08", "green"]) for i in ("ndvi", "ndwi", "evi")] == [True, True, False]
    with pytest.raises(MissingBand, match=r"^NDVI needs the 'nir' or 'nir08' band \(common name\)"):
        check_bands("ndvi", ["red", "nir09"])


def test_ndvi_of_the_demo_truth_reflectance_equals_the_truth_ndvi(demo_cube):
    truth = load_truth(demo_cube.root)
    for name, bands in truth["clear"]["reflectance"].items():
        computed = compute_index("ndvi", {"nir": np.array(bands["nir"]), "red": np.array(bands["red"])})
        np.testing.assert_allclose(computed, truth["clear"]["ndvi"][name], atol=1e-6, err_msg=name)


# ---- quality rules --------------------------------------------------------------------------------


def test_sentinel2_scl_keeps_vegetation_bare_water_unclassified_and_snow():
    values = np.arange(12)
    assert values[SENTINEL2_SCL.is_clear(values)].tolist() == [4, 5, 6, 7, 11]
    assert SENTINEL2_SCL.is_clear(np.array([np.nan, 4.0, 9.0])).tolist() == [False, True, False]
    assert SENTINEL2_SCL.is_clear(4) is True and SENTINEL2_SCL.is_clear(float("nan")) is False


def test_landsat_qa_pixel_masks_fill_dilated_cloud_cirrus_cloud_shadow_and_snow():
    clear_land, clear_water = 21824, 21952  # Collection 2 L2 values: bits 6 (clear) and 7 (water) set
    assert LANDSAT_C2_QA_PIXEL.is_clear(np.array([clear_land, clear_water])).all()
    for bit in range(6):
        assert not LANDSAT_C2_QA_PIXEL.is_clear(clear_land | (1 << bit)), bit
    assert LANDSAT_C2_QA_PIXEL.is_clear(np.array([1 << 6, 1 << 7, 1 << 8, 1 << 15])).all()
    assert not LANDSAT_C2_QA_PIXEL.is_clear(1)  # fill


def test_bdc_cmask_and_fmask():
    assert BDC_CMASK.is_clear(np.array([0, 127, 255])).tolist() == [False, True, False]
    assert FMASK.is_clear(np.array([0, 1, 2, 3, 4, 255])).tolist() == [True, True, False, False, False, False]


def _item(assets: dict, collection: str = "x") -> dict:
    return {"type": "Feature", "id": "i", "collection": collection, "geometry": None, "properties": {},
            "assets": assets}


def test_rule_for_finds_the_rule_in_the_metadata(demo_cube):
    item_path = next((demo_cube.collections["demo-s2-l2a"].parent).glob("*/*.json"))
    assert rule_for(json.loads(item_path.read_text())) == SENTINEL2_SCL
    collection = json.loads(demo_cube.collections["demo-s2-l2a"].read_text())
    assert rule_for(collection) == SENTINEL2_SCL

    tif = {"type": "image/tiff; application=geotiff", "roles": ["data"]}
    landsat = rule_for(_item({"red": {**tif, "href": "r.tif"}, "qa_pixel": {**tif, "href": "q.tif"}}))
    assert landsat.kind == BITS and landsat.mask_bits == (0, 1, 2, 3, 4, 5) and landsat.band == "qa_pixel"
    cbers = rule_for(_item({"CMASK": {**tif, "href": "c.tif", "classification:classes": [
        {"value": 0, "name": "nodata"}, {"value": 127, "name": "clear"}, {"value": 255, "name": "cloud"}]}}))
    assert cbers.clear_values == (127,) and cbers.band == "CMASK"
    fmask_coded = rule_for(_item({"CMASK": {**tif, "href": "c.tif", "raster:bands": [{"classification:classes": [
        {"value": 0, "name": "clear_land"}, {"value": 1, "name": "clear_water"}, {"value": 4, "name": "cloud"}]}]}}))
    assert fmask_coded.clear_values == (0, 1) and fmask_coded.band == "CMASK"
    assert rule_for(_item({"Fmask4": {**tif, "href": "f.tif"}})).clear_values == (0, 1)
    assert rule_for(_item({"red": {**tif, "href": "r.tif"}})) is None


def test_a_rule_from_classification_classes_of_an_unknown_quality_band():
    rule = rule_for(_item({"qa": {"href": "q.tif", "roles": ["data"], "classification:classes": [
        {"value": 0, "name": "no_data"}, {"value": 1, "name": "clear"}, {"value": 2, "name": "cloud"},
        {"value": 3, "name": "cloud_shadow"}, {"value": 4, "name": "snow"}]}}))
    assert rule is not None and rule.band == "qa" and rule.clear_values == (1, 4)


def test_rule_for_bands_of_a_zarr_cube():
    assert rule_for_bands({"red": {}, "scl": {"flag_values": [0, 4]}}).band == "scl"
    flags = rule_for_bands({"chl": {}, "cloud_mask": {"flag_values": [0, 1, 2],
                                                      "flag_meanings": "clear cloud cloud_shadow"}})
    assert flags.band == "cloud_mask" and flags.clear_values == (0,)
    assert rule_for_bands({"chl": {}, "kd489": {}}) is None


def test_rules_from_what_the_user_typed():
    rule = rule_from_user("SCL", "4, 5,6")
    assert rule == QualityRule(band="SCL", kind=CLASSES, clear_values=(4, 5, 6), name="SCL classes 4, 5,6")
    assert rule.is_clear(np.array([3, 4, 6, 8])).tolist() == [False, True, True, False]
    assert rule_from_user("scl", "4-7 11").clear_values == (4, 5, 6, 7, 11)
    bits = rule_from_user("QA_PIXEL", "bits:1,3,4")
    assert bits.kind == BITS and bits.mask_bits == (1, 3, 4)
    assert bits.is_clear(np.array([0, 2, 8, 16, 4])).tolist() == [True, False, False, False, True]
    with pytest.raises(ValueError, match="Not an integer or range in quality values: 'four'"):
        rule_from_user("scl", "4,four")
    with pytest.raises(ValueError, match="No quality values given"):
        parse_values(" , ")
    with pytest.raises(ValueError, match="needs a quality band name"):
        rule_from_user(" ", "4")
    with pytest.raises(ValueError, match="lists no clear values"):
        QualityRule(band="scl", kind=CLASSES)
    with pytest.raises(ValueError, match=r"Bit positions must be 0\.\.63"):
        QualityRule(band="qa", kind=BITS, mask_bits=(64,))
    assert "clear where scl is one of 4, 5, 6, 7, 11" in SENTINEL2_SCL.describe()


@pytest.mark.parametrize(("typed", "fields"), [
    ("", ("", "")), ("  none ", ("none", "")), ("scl", ("scl", "")), ("scl: 4, 5,6", ("scl", "4, 5,6")),
    ("QA_PIXEL: bits:1,3,4", ("QA_PIXEL", "bits:1,3,4")), (": 4,5", ("", "4,5"))])
def test_the_mask_typed_in_the_dock_becomes_the_requests_quality_fields(typed, fields):
    assert mask_fields(typed) == fields


@pytest.mark.parametrize(("typed", "message"), [("scl: 4,four", "Not an integer or range in quality values: 'four'"),
                                                 ("scl:", "No values after 'scl:'"),
                                                 ("QA_PIXEL: bits:", "No quality values given")])
def test_a_mistyped_mask_says_what_is_wrong(typed, message):
    with pytest.raises(ValueError, match=message):
        mask_fields(typed)



def test_the_rule_of_a_typed_mask_against_the_collections_own():
    scl = replace(SENTINEL2_SCL, band="scl")
    assert user_rule("", scl) is scl and user_rule("SCL", scl) is scl and user_rule("", None) is None
    assert user_rule("none", scl) is None
    assert user_rule(": 4,5", scl) == rule_from_user("scl", "4,5"), "no band: the collection's, with these values"
    assert user_rule("QA: bits:1", None).mask_bits == (1,)
    with pytest.raises(ValueError, match="No rule is known for the quality band 'cloud_mask'"):
        user_rule("cloud_mask", scl)
    with pytest.raises(ValueError, match="No quality band found"):
        user_rule(": 4,5", None)
