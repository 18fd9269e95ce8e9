"""On float32 files the separation powers equal the official evaluator's (issue 13, point 5).

The official code computes in the file's dtype: float32 showers give float32 sums of
E_tot and E_layer (numpy's pairwise summation), a float32 E_tot/E_inc, denominators of the
centres and widths in float32, and the log-spaced E_layer and voxel edges from a float32
log10 of the reference maximum. Below is an independent reimplementation of that path,
written from the official definitions (HighLevelFeatures.CalculateFeatures and the
plotting helper's binnings, see ``shared/reference/calochallenge.md`` sections 2 and 7),
and physgen's ``evaluate --mode hist`` must reproduce its numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from physgen.calo.evaluate.features import features_of_batch
from physgen.calo.evaluate.histograms import histogram_specs
from physgen.calo.evaluate.pipeline import evaluate
from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.io import write_showers
from showerdata import toy_showers

N = 600


def _official_features(
    e: npt.NDArray[np.floating], x: npt.NDArray[np.floating], geo: Geometry
) -> dict[str, npt.NDArray[np.floating]]:
    """Features as the official code computes them, in the arrays' own dtypes."""
    thr = float(geo.threshold_mev)
    x = np.where(x < thr, np.zeros_like(x), x)
    centres = geo.voxel_centres()
    out: dict[str, npt.NDArray[np.floating]] = {
        "Etot_Einc": x.sum(axis=-1) / e.squeeze(),
        "voxel": x.flatten(),
    }
    for layer, sl in zip(geo.relevant_layers, geo.layer_slices().values()):
        data = x[:, sl]
        energy = data.sum(axis=-1)
        out[f"E_layer_{layer.id}"] = energy
        out[f"sparsity_{layer.id}"] = 1.0 - (data > 0).mean(axis=-1)
        coords = {"r": centres["r"][sl]}
        if layer.is_alpha_binned:
            coords |= {"x": centres["x"][sl], "y": centres["y"][sl]}
        for name, c in coords.items():
            mean = (c * data).sum(axis=-1) / (data.sum(axis=-1) + 1e-16)
            second = (c * c * data).sum(axis=-1) / (data.sum(axis=-1) + 1e-16)
            out[f"ec_{name}_{layer.id}"] = mean
            out[f"width_{name}_{layer.id}"] = np.sqrt((second - mean**2).clip(min=0.0))
    return out


def _official_separation(
    ref: dict[str, npt.NDArray[np.floating]],
    gen: dict[str, npt.NDArray[np.floating]],
    key: str,
    bins: npt.NDArray[np.floating],
) -> float:
    h1, _ = np.histogram(ref[key], bins=bins, density=True)
    h2, _ = np.histogram(gen[key], bins=bins, density=True)
    h1, h2 = h1 * np.diff(bins), h2 * np.diff(bins)
    return float(0.5 * ((h1 - h2) ** 2 / (h1 + h2 + 1e-16)).sum())


def _official_log_bins(geo: Geometry, values: npt.NDArray[np.floating], n: int) -> np.ndarray:
    return np.logspace(np.log10(float(geo.threshold_mev)), np.log10(values.max()), n)


def _feature_key(spec_key: str, feature: str, lid: int | None) -> str:
    if spec_key == "Etot_Einc" or spec_key.startswith("E_layer"):
        return spec_key
    name = {
        "ec_x": "ec_x",
        "ec_y": "ec_y",
        "width_x": "width_x",
        "width_y": "width_y",
        "ec_r": "ec_r",
        "width_r": "width_r",
        "sparsity": "sparsity",
    }[feature]
    return f"{name}_{lid}"


@pytest.fixture(scope="module")
def float32_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("f32")
    paths = []
    for name, seed, scale in (("ref", 1, 1.0), ("gen", 2, 1.02)):
        e, x = toy_showers(N, "2", seed=seed, scale=scale)
        paths.append(write_showers(d / f"{name}.h5", e.astype(np.float32), x.astype(np.float32)))
    return paths[0], paths[1]


def test_float32_separation_powers_equal_the_official_path(
    float32_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    import h5py

    geo = get_geometry("2")
    ref_path, gen_path = float32_pair
    arrays = {}
    for name, p in (("ref", ref_path), ("gen", gen_path)):
        with h5py.File(p) as f:
            e, x = f["incident_energies"][()], f["showers"][()]
        assert x.dtype == np.float32 and e.dtype == np.float32
        arrays[name] = _official_features(e, x, geo)
    ref, gen = arrays["ref"], arrays["gen"]

    result = evaluate(gen_path, ref_path, "2", "hist", tmp_path / "ev", plots=False)
    ours = result.results["separation_power"]

    # the specs give the keys and the linear edges; the log edges are rebuilt officially
    expected: dict[str, float] = {}
    ref_features = features_of_batch(*_read(ref_path), geo)
    layer_ids = ref_features.layer_ids
    alpha_ids = ref_features.alpha_layer_ids
    for spec in histogram_specs(ref_features):
        if spec.feature == "etot_einc":
            key = "Etot_Einc"
        else:
            ids = alpha_ids if spec.feature in ("ec_x", "ec_y", "width_x", "width_y") else layer_ids
            assert spec.column is not None
            key = _feature_key(spec.key, spec.feature, ids[spec.column])
        if spec.key.startswith("E_layer"):
            bins = _official_log_bins(geo, ref[key], 40)
        else:
            bins = np.asarray(spec.edges)
        expected[spec.key] = _official_separation(ref, gen, key, bins)
    expected["voxel"] = _official_separation(
        ref, gen, "voxel", _official_log_bins(geo, ref["voxel"], 50)
    )

    assert set(expected) <= set(ours)
    differ = {
        k: (ours[k], v)
        for k, v in expected.items()
        if ours[k] != pytest.approx(v, rel=1e-9, abs=1e-15)
    }
    assert differ == {}, f"{len(differ)} of {len(expected)} differ: {list(differ.items())[:5]}"


def test_float32_sums_are_float32_and_differ_from_float64(
    float32_pair: tuple[Path, Path],
) -> None:
    """The official arithmetic is float32 on these files: a float64 reimplementation
    gets other E_layer values (which is what moved bins before)."""
    geo = get_geometry("2")
    e, x = _read(float32_pair[0])
    official = features_of_batch(e, x, geo)
    wide = features_of_batch(e, x, geo, precision="float64")
    assert official.energy_dtype == "float32" and wide.energy_dtype == "float64"
    thr = np.where(x < float(geo.threshold_mev), np.float32(0), x)
    np.testing.assert_array_equal(official.e_tot, thr.sum(axis=-1).astype(np.float64))
    assert not np.array_equal(official.e_layer, wide.e_layer)
    np.testing.assert_allclose(official.e_layer, wide.e_layer, rtol=1e-5)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path) as f:
        return f["incident_energies"][()], f["showers"][()]
