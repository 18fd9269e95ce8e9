"""High-level features against closed-form values; separation power; histogram binnings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.calo.evaluate.features import (
    apply_threshold,
    compute_features,
    features_of_batch,
    high_level_feature_vector,
)
from physgen.calo.evaluate.histograms import (
    VoxelSpectrum,
    density_histogram,
    histogram_specs,
    separation_power,
)
from physgen.calo.geometry import get_geometry

GEO2 = get_geometry("2")


def _voxel(layer: int, a: int, r: int) -> int:
    return layer * 144 + a * 9 + r


def _centre(a: int, r: int) -> tuple[float, float, float]:
    rc = 4.65 * (r + 0.5)
    ac = -math.pi + 2 * math.pi / 16 * (a + 0.5)
    return rc, rc * math.cos(ac), rc * math.sin(ac)


def test_single_voxel_exact() -> None:
    x = np.zeros((1, 6480))
    x[0, _voxel(7, 3, 2)] = 250.0
    f = features_of_batch(np.array([[1000.0]]), x, GEO2)
    rc, xc, yc = _centre(3, 2)
    assert f.e_tot[0] == 250.0
    assert f.e_layer[0, 7] == 250.0 and f.e_layer[0].sum() == 250.0
    assert f.ec_r[0, 7] == pytest.approx(rc, rel=1e-12)
    assert f.ec_x[0, 7] == pytest.approx(xc, rel=1e-12)
    assert f.ec_y[0, 7] == pytest.approx(yc, rel=1e-12)
    assert f.width_x[0, 7] == pytest.approx(0.0, abs=1e-6)
    assert f.width_r[0, 7] == pytest.approx(0.0, abs=1e-6)
    assert f.sparsity[0, 7] == pytest.approx(1 - 1 / 144)
    assert np.all(f.sparsity[0, np.arange(45) != 7] == 1.0)


def test_two_voxels_exact() -> None:
    e1, e2 = 30.0, 10.0
    x = np.zeros((1, 6480))
    x[0, _voxel(0, 0, 0)] = e1
    x[0, _voxel(0, 8, 4)] = e2
    f = features_of_batch(np.array([1e4]), x, GEO2)
    r1, x1, y1 = _centre(0, 0)
    r2, x2, y2 = _centre(8, 4)
    w = e1 + e2
    assert f.ec_x[0, 0] == pytest.approx((e1 * x1 + e2 * x2) / w, rel=1e-12)
    assert f.ec_r[0, 0] == pytest.approx((e1 * r1 + e2 * r2) / w, rel=1e-12)
    assert f.width_x[0, 0] == pytest.approx(math.sqrt(e1 * e2) * abs(x1 - x2) / w, rel=1e-9)
    assert f.width_y[0, 0] == pytest.approx(math.sqrt(e1 * e2) * abs(y1 - y2) / w, rel=1e-9)
    assert f.width_r[0, 0] == pytest.approx(math.sqrt(e1 * e2) * abs(r1 - r2) / w, rel=1e-9)
    assert f.sparsity[0, 0] == pytest.approx(1 - 2 / 144)


def test_all_zero_and_empty_layers() -> None:
    f = features_of_batch(np.array([500.0, 500.0]), np.zeros((2, 6480)), GEO2)
    for arr in (f.e_tot, f.e_layer, f.ec_x, f.ec_y, f.width_x, f.width_y, f.ec_r, f.width_r):
        assert np.all(arr == 0.0)
    assert np.all(f.sparsity == 1.0)


def test_threshold_applied() -> None:
    geo = get_geometry("1-photons")  # 1 MeV threshold
    x = np.zeros((1, 368))
    x[0, 0] = 0.99
    x[0, 1] = 1.0
    assert apply_threshold(x, geo)[0, 0] == 0.0
    f = features_of_batch(np.array([1e3]), x, geo)
    assert f.e_tot[0] == 1.0
    assert f.sparsity[0, 0] == pytest.approx(7 / 8)


def test_non_alpha_layers_have_no_xy_features() -> None:
    geo = get_geometry("1-photons")
    f = features_of_batch(np.array([1e3]), np.ones((1, 368)) * 5, geo)
    assert f.alpha_layer_ids == [1, 2]
    assert f.ec_x.shape == (1, 2)
    assert f.ec_r.shape == (1, 5)


@pytest.mark.parametrize(
    ("name", "dim"), [("1-photons", 30), ("1-pions", 46), ("2", 362), ("3", 362)]
)
def test_feature_vector_dimension_and_order(name: str, dim: int) -> None:
    geo = get_geometry(name)
    rng = np.random.default_rng(0)
    x = rng.exponential(5.0, (4, geo.n_voxels))
    e = np.full((4, 1), 2.0e4)
    v = high_level_feature_vector(e, x, geo)
    assert v.shape == (4, dim)
    f = features_of_batch(e, x, geo)
    nl = len(f.layer_ids)
    np.testing.assert_allclose(v[:, 0], np.log10(2.0e4))
    np.testing.assert_allclose(v[:, 1 : 1 + nl], np.log10(f.e_layer + 1e-8))
    na = len(f.alpha_layer_ids)
    np.testing.assert_allclose(v[:, 1 + nl : 1 + nl + na], f.ec_x / 100)
    np.testing.assert_allclose(v[:, 1 + nl + 4 * na], np.log10(f.e_tot + 1e-8))
    np.testing.assert_allclose(v[:, -nl:], f.width_r / 100)


def test_streaming_equals_in_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from physgen.calo.io import write_showers
    from showerdata import toy_showers

    e, x = toy_showers(300, "2", seed=4)
    path = write_showers(tmp_path / "t.h5", e, x)
    a = compute_features(path, "2", batch_size=37)
    b = features_of_batch(e, x, GEO2)
    for name in ("e_tot", "e_layer", "ec_x", "width_y", "ec_r", "sparsity"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    np.testing.assert_allclose(a.voxel_sum, b.voxel_sum, rtol=1e-9)


def test_separation_power_limits() -> None:
    edges = np.linspace(0, 1, 11)
    h = density_histogram(np.random.default_rng(1).random(1000), edges)
    assert separation_power(h, h, edges) == 0.0
    a = density_histogram([0.05, 0.15], edges)
    b = density_histogram([0.85, 0.95], edges)
    assert separation_power(a, b, edges) == pytest.approx(1.0)
    # hand-computed: contents (0.5, 0.5) vs (1, 0) -> 1/2 [0.25/1.5 + 0.25/0.5] = 1/3
    two = np.array([0.0, 1.0, 2.0])
    assert separation_power([0.5, 0.5], [1.0, 0.0], two) == pytest.approx(1 / 3)
    # official normalisation: density x bin width
    uneven = np.array([0.0, 1.0, 3.0])
    assert separation_power([0.5, 0.25], [0.5, 0.25], uneven) == 0.0
    assert separation_power([1.0, 0.0], [0.0, 0.5], uneven) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    a=st.lists(st.floats(0, 10), min_size=1, max_size=200),
    b=st.lists(st.floats(0, 10), min_size=1, max_size=200),
)
def test_separation_power_bounds(a: list[float], b: list[float]) -> None:
    edges = np.linspace(0, 10, 21)
    ha, hb = density_histogram(a, edges), density_histogram(b, edges)
    s = separation_power(ha, hb, edges)
    assert -1e-12 <= s <= 1 + 1e-12
    assert s == pytest.approx(separation_power(hb, ha, edges))


def test_official_binnings() -> None:
    from showerdata import toy_showers

    e, x = toy_showers(200, "2", seed=1)
    f = features_of_batch(e, x, GEO2)
    specs = {s.key: s for s in histogram_specs(f)}
    assert len(specs["Etot_Einc"].edges) == 101 and specs["Etot_Einc"].edges[0] == 0.5
    el = specs["E_layer_10"].edges
    assert len(el) == 40
    assert el[0] == pytest.approx(0.5e-3 / 0.033)
    assert el[-1] == pytest.approx(f.e_layer[:, 10].max())
    assert specs["ECEta_layer_3"].edges[0] == -30 and len(specs["ECEta_layer_3"].edges) == 101
    assert specs["WidthPhi_layer_3"].edges[-1] == 30
    assert specs["ECR_layer_3"].edges[-1] == 42 and specs["WidthR_layer_3"].edges[-1] == 20
    assert len(specs["Sparsity_layer_3"].edges) == 21
    g1 = get_geometry("1-pions")
    e1, x1 = toy_showers(50, "1-pions", seed=2)
    s1 = {s.key: s for s in histogram_specs(features_of_batch(e1, x1, g1))}
    assert s1["ECEta_layer_12"].edges[-1] == 500 and s1["ECEta_layer_1"].edges[-1] == 100
    assert s1["WidthEta_layer_13"].edges[-1] == 400
    assert s1["ECR_layer_14"].edges[-1] == 1500 and s1["ECR_layer_2"].edges[-1] == 500
    spec = VoxelSpectrum(g1, 1234.0)
    assert len(spec.edges) == 50 and spec.edges[0] == pytest.approx(1.0)
    assert spec.edges[-1] == pytest.approx(1234.0)


@pytest.mark.parametrize("geometry", ["1-photons", "1-pions", "2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_scan_equals_the_numpy_path(geometry: str, dtype: type) -> None:
    """The one-pass kernel gives the numpy path's features: the file-dtype sums (numpy's
    in both) bit for bit, the float64 moments to rounding."""
    from showerdata import toy_showers

    geo = get_geometry(geometry)
    e, x = toy_showers(400, geometry, seed=5)
    e, x = e.astype(dtype), x.astype(dtype)
    x[:3] *= 1e-6  # voxels around and below the threshold
    a = features_of_batch(e, x, geo)
    b = features_of_batch(e, x, geo, compiled=False)
    for name in ("e_tot", "e_layer", "sparsity", "e_tot_over_e_inc", "voxel_sum"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.max_voxel == b.max_voxel and a.energy_dtype == b.energy_dtype
    for name in ("ec_r", "ec_x", "ec_y"):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-9, err_msg=name
        )
    # a width is sqrt(<x^2> - <x>^2): for energy in one column the difference cancels to
    # rounding, so another summation order gives ~1e-6 mm instead of 0 (bins are >= 0.2 mm)
    for name in ("width_r", "width_x", "width_y"):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-4, err_msg=name
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_compiled_scan_names_the_row_of_a_bad_voxel(bad: float) -> None:
    from physgen.errors import DataFormatError

    geo = get_geometry("1-photons")
    x = np.ones((10, geo.n_voxels), np.float32)
    x[7, 100] = bad
    with pytest.raises(DataFormatError, match=r"f\.h5: 'showers' holds .*\(.*row 27"):
        features_of_batch(np.full(10, 1e4), x, geo, source="f.h5", offset=20)
