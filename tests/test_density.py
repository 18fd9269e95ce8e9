"""physgen.density: fit, sample, evaluate, save and load conditional densities of vectors.

Closed-form checks on ``x | c ~ N(a c + b, s^2)`` (and an unconditional Gaussian), array
types and shapes, seeds, save/load round trips, bounded supports, all five families, and the
bad-input contract (a ConfigError naming the argument, nothing left behind). Networks are
tiny so that the file runs in seconds on a busy two-core machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import physgen
from physgen.density import DensityEstimator, fit, load
from physgen.errors import ConfigError, DataFormatError

REPO = Path(__file__).resolve().parents[1]
LEGACY_CFM = REPO / "tests" / "fixtures" / "legacy_runs" / "cfm-0"

A, B, S = 2.0, 0.5, 0.3  # x | c ~ N(A c + B, S^2)
#: An affine flow (exact for a conditional Gaussian) that trains in a few seconds.
AFFINE = {"shape_kind": "maf", "shape_transforms": 2, "shape_hidden": [32]}
OPTIM = {"batch_size": 64, "lr": 5e-3, "warmup_steps": 20, "ema_decay": 0.9}
#: The smallest network of each family (shapes and plumbing, not quality).
TINY: dict[str, dict[str, Any]] = {
    "flow": {"shape_transforms": 1, "shape_hidden": [8]},
    "cfm": {
        "hidden": 16,
        "blocks": 1,
        "energy_hidden": 8,
        "energy_blocks": 1,
        "time_features": 4,
        "steps": 2,
    },
    "diffusion": {
        "hidden": 16,
        "blocks": 1,
        "energy_hidden": 8,
        "energy_blocks": 1,
        "time_features": 4,
        "steps": 2,
    },
    "gan": {"latent": 2, "hidden": 16, "blocks": 1, "critic_hidden": 16, "critic_blocks": 1},
    "vae": {"latent": 2, "hidden": 16, "blocks": 1, "prior": "normal", "kl_warmup_steps": 0},
}


@pytest.fixture(scope="module", autouse=True)
def _steps_as_sized() -> Iterator[None]:
    """One pass over the data per epoch: the step counts these tests are sized with (the
    library's minimum number of steps per epoch on small data sets would multiply them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(physgen.density, "_MIN_STEPS_PER_EPOCH", 1, raising=False)
        yield


def _gauss(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, (n, 1))
    return A * c + B + S * rng.standard_normal((n, 1)), c


def _normal_logpdf(x: np.ndarray, mean: np.ndarray | float, sd: float) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


@pytest.fixture(scope="module")
def gauss_est() -> DensityEstimator:
    x, c = _gauss(1000, seed=0)
    return fit(x, c, model="flow", config=AFFINE, optim=OPTIM, epochs=20, seed=0, progress=False)


@pytest.fixture(scope="module")
def tiny_est() -> DensityEstimator:
    """D = 2, K = 1, the default (spline) flow, one epoch."""
    rng = np.random.default_rng(1)
    x, c = rng.standard_normal((64, 2)), rng.standard_normal((64, 1))
    return fit(x, c, config=TINY["flow"], epochs=1, seed=0, progress=False)


# ------------------------------------------------------------------ closed form


def test_conditional_gaussian_moments(gauss_est: DensityEstimator) -> None:
    assert gauss_est.summary["status"] in ("completed", "early-stopped")
    assert (gauss_est.x_dim, gauss_est.c_dim) == (1, 1)
    cs = np.array([[-0.5], [0.7]])
    xs = gauss_est(cs).sample(4000, seed=1)  # (4000, 2, 1)
    assert xs.shape == (4000, 2, 1)
    for m in range(2):
        mean, sd = xs[:, m, 0].mean(), xs[:, m, 0].std()
        assert abs(mean - (A * cs[m, 0] + B)) < 0.1, (m, mean)
        assert abs(sd - S) < 0.07, (m, sd)


def test_conditional_gaussian_log_prob(gauss_est: DensityEstimator) -> None:
    x, c = _gauss(500, seed=99)
    lp = gauss_est(c).log_prob(x)
    assert lp.shape == (500,) and lp.dtype == np.float64
    ref = _normal_logpdf(x[:, 0], A * c[:, 0] + B, S)
    assert np.abs(lp - ref).mean() < 0.3


def test_log_prob_is_normalised_in_data_space(gauss_est: DensityEstimator) -> None:
    grid = np.linspace(-3.0, 4.0, 3001)[:, None]
    for c0 in (-0.8, 0.3):
        lp = gauss_est(np.full((len(grid), 1), c0)).log_prob(grid)
        assert abs(np.trapezoid(np.exp(lp), grid[:, 0]) - 1.0) < 0.01


def test_unconditional_gaussian() -> None:
    rng = np.random.default_rng(5)
    x = 1.5 + 0.5 * rng.standard_normal((1000, 1))
    # without a condition the flow's parameters are free constants, initialised at random:
    # a larger learning rate moves them to the optimum in the few steps allowed here
    optim = {**OPTIM, "lr": 2e-2}
    est = fit(x, model="flow", config=AFFINE, optim=optim, epochs=15, seed=0, progress=False)
    assert est.c_dim == 0
    xs = est(n=4000).sample(seed=2)
    assert xs.shape == (4000, 1)
    assert abs(xs.mean() - 1.5) < 0.07 and abs(xs.std() - 0.5) < 0.07
    assert est(n=7).sample().shape == (7, 1)
    assert est(n=7).sample(5).shape == (5, 7, 1)
    xt = 1.5 + 0.5 * rng.standard_normal((300, 1))
    lp = est(n=300).log_prob(xt)
    assert np.abs(lp - _normal_logpdf(xt[:, 0], 1.5, 0.5)).mean() < 0.3
    with pytest.raises(ConfigError, match="c: the density was fitted with 0 condition columns"):
        est(np.zeros((3, 1)))


# ------------------------------------------------------------------ types and shapes


def test_numpy_in_numpy_out_torch_in_torch_out(tiny_est: DensityEstimator) -> None:
    rng = np.random.default_rng(2)
    c, x = rng.standard_normal((4, 1)), rng.standard_normal((4, 2))
    s = tiny_est(c).sample(seed=0)
    assert isinstance(s, np.ndarray) and s.shape == (4, 2)
    lp = tiny_est(c).log_prob(x)
    assert isinstance(lp, np.ndarray) and lp.shape == (4,) and np.isfinite(lp).all()
    st = tiny_est(torch.as_tensor(c)).sample(seed=0)
    assert isinstance(st, torch.Tensor) and tuple(st.shape) == (4, 2)
    np.testing.assert_array_equal(st.numpy(), s)  # same draw, whatever the array type
    lpt = tiny_est(torch.as_tensor(c)).log_prob(torch.as_tensor(x))
    assert isinstance(lpt, torch.Tensor)
    np.testing.assert_allclose(lpt.numpy(), lp)


def test_sample_shapes(tiny_est: DensityEstimator) -> None:
    c = np.linspace(-1, 1, 3)[:, None]  # M = 3
    assert tiny_est(c).sample().shape == (3, 2)
    assert tiny_est(c).sample(5).shape == (5, 3, 2)
    assert tiny_est(c).sample((2, 3)).shape == (2, 3, 3, 2)
    assert tiny_est(c[:, 0]).sample().shape == (3, 2)  # (M,) for K = 1


def test_seeds(tiny_est: DensityEstimator) -> None:
    dist = tiny_est(np.zeros((6, 1)))
    a = dist.sample(4, seed=7)
    assert a.tobytes() == dist.sample(4, seed=7).tobytes()
    assert not np.array_equal(a, dist.sample(4, seed=8))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    np.testing.assert_array_equal(dist.sample(generator=g1), dist.sample(generator=g2))


def test_same_seed_same_fit() -> None:
    rng = np.random.default_rng(3)
    x, c = rng.standard_normal((64, 1)), rng.standard_normal((64, 1))
    a, b = (fit(x, c, config=TINY["flow"], epochs=1, seed=4, progress=False) for _ in range(2))
    cq = np.zeros((5, 1))
    assert a(cq).sample(3, seed=0).tobytes() == b(cq).sample(3, seed=0).tobytes()


def test_conditional_needs_c(tiny_est: DensityEstimator) -> None:
    with pytest.raises(ConfigError, match=r"conditional: give c of shape \(M, 1\)"):
        tiny_est()
    with pytest.raises(ConfigError, match="c: the density was fitted with 1 condition columns"):
        tiny_est(np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match=r"^c: contains NaN or inf \(first at row 1\)"):
        tiny_est(np.array([[0.0], [np.inf]]))
    with pytest.raises(ConfigError, match="x: expected 2 columns, got 3"):
        tiny_est(np.zeros((3, 1))).log_prob(np.zeros((3, 3)))
    with pytest.raises(DataFormatError, match="x has 2 rows"):
        tiny_est(np.zeros((3, 1))).log_prob(np.zeros((2, 2)))


def test_log_prob_row_mismatch_message_names_the_conditions(tiny_est: DensityEstimator) -> None:
    with pytest.raises(DataFormatError, match=r"x has 2 rows.*(c|condition)"):
        tiny_est(np.zeros((3, 1))).log_prob(np.zeros((2, 2)))


# ------------------------------------------------------------------ save / load


def test_save_load_round_trip(tiny_est: DensityEstimator, tmp_path: Path) -> None:
    run = tiny_est.save(tmp_path / "run")
    assert {"config.yaml", "codec.json", "weights.pt"} <= {p.name for p in run.iterdir()}
    est = load(run)
    assert est.config == tiny_est.config
    c = np.linspace(-2, 2, 5)[:, None]
    assert est(c).sample(3, seed=11).tobytes() == tiny_est(c).sample(3, seed=11).tobytes()
    x = np.ones((5, 2))
    np.testing.assert_array_equal(est(c).log_prob(x), tiny_est(c).log_prob(x))
    # saving again over its own run directory is allowed
    tiny_est.save(run)
    assert load(run)(c).sample(seed=1).tobytes() == tiny_est(c).sample(seed=1).tobytes()


def test_load_refuses_calorimeter_run_and_non_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calorimeter"):
        load(LEGACY_CFM)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"config\.yaml missing"):
        load(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no such run directory"):
        load(tmp_path / "nope")


def test_save_refuses_a_calorimeter_run(tiny_est: DensityEstimator, tmp_path: Path) -> None:
    run = shutil.copytree(LEGACY_CFM, tmp_path / "cfm")
    before = (run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError):
        tiny_est.save(run)
    assert (run / "config.yaml").read_bytes() == before


# ------------------------------------------------------------------ bounds


def test_bounded_samples_stay_in_support() -> None:
    rng = np.random.default_rng(4)
    u = rng.beta(2.0, 5.0, (600, 1))
    est = fit(u, bounds=[(0, 1)], config=TINY["flow"], epochs=2, seed=0, progress=False)
    assert est.config.codec.bounds == [[0, 1]]
    s = est(n=20_000).sample(seed=0)
    assert s.min() >= 0.0 and s.max() <= 1.0
    grid = np.linspace(1e-4, 1 - 1e-4, 4001)[:, None]
    lp = est(n=len(grid)).log_prob(grid)  # includes the logit's Jacobian
    assert abs(np.trapezoid(np.exp(lp), grid[:, 0]) - 1.0) < 0.01


def test_one_sided_bound_for_a_positive_quantity() -> None:
    """A mass-like column spanning three decades: ``(0, None)`` learns it through log(x)."""
    rng = np.random.default_rng(5)
    m = rng.lognormal(2.0, 1.2, (800, 1))
    est = fit(m, bounds=[(0, None)], config=TINY["flow"], epochs=40, seed=0, progress=False)
    assert est.config.codec.bounds == [[0, None]]
    s = est(n=20_000).sample(seed=0)
    assert s.min() > 0.0
    # log x is normal(2, 1.2): the tiny flow gets its median and spread roughly right
    assert abs(np.median(np.log(s)) - 2.0) < 0.3
    assert abs(np.log(s).std() - 1.2) < 0.3
    t = np.linspace(-4.0, 8.0, 4001)
    lp = est(n=len(t)).log_prob(np.exp(t)[:, None])  # data-space density p(x)
    assert abs(np.trapezoid(np.exp(lp) * np.exp(t), t) - 1.0) < 0.01  # dx = x dt


# ------------------------------------------------------------------ families


@pytest.mark.parametrize("model", sorted(TINY))
def test_every_family_fits_and_samples(model: str) -> None:
    rng = np.random.default_rng(6)
    x, c = rng.standard_normal((64, 2)), rng.standard_normal((64, 1))
    est = fit(x, c, model=model, config=TINY[model], epochs=1, seed=0, progress=False)
    assert est.config.model == model and est.summary["status"] == "completed"
    s = est(c[:3]).sample(2, seed=0)
    assert s.shape == (2, 3, 2) and np.isfinite(s).all()
    if model == "flow":
        assert est(c[:3]).log_prob(x[:3]).shape == (3,)
    else:
        with pytest.raises(NotImplementedError):
            est(c[:3]).log_prob(x[:3])
    unc = fit(x, model=model, config=TINY[model], epochs=1, seed=0, progress=False)
    assert unc(n=5).sample(seed=0).shape == (5, 2)


# ------------------------------------------------------------------ bad input


def _xc() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    return rng.standard_normal((40, 1)), rng.standard_normal((40, 1))


def _bad_rows() -> dict[str, Any]:
    x, c = _xc()
    return {"x": x, "c": c[:30]}


def _nan_x() -> dict[str, Any]:
    x, c = _xc()
    x[5, 0] = np.nan
    return {"x": x, "c": c}


def _inf_c() -> dict[str, Any]:
    x, c = _xc()
    c[7, 0] = -np.inf
    return {"x": x, "c": c}


def _unknown_model() -> dict[str, Any]:
    x, c = _xc()
    return {"x": x, "c": c, "model": "normalizing"}


def _few_rows() -> dict[str, Any]:
    x, c = _xc()
    return {"x": x[:5], "c": c[:5]}


def _names() -> dict[str, Any]:
    x, c = _xc()
    return {"x": x, "c": c, "x_names": ["a", "b"]}


def _string_x() -> dict[str, Any]:
    return {"x": np.array(["a"] * 20)}


BAD: dict[str, tuple[Any, str, type[Exception]]] = {
    "row counts": (_bad_rows, r"^c has 30 rows, x has 40", DataFormatError),
    "nan in x": (_nan_x, r"^x: contains NaN or inf \(first at row 5\)", DataFormatError),
    "inf in c": (_inf_c, r"^c: contains NaN or inf \(first at row 7\)", DataFormatError),
    "unknown model": (
        _unknown_model,
        r"unknown model 'normalizing'; available: .*flow",
        ConfigError,
    ),
    "too few rows": (_few_rows, r"^x: 5 rows are too few", DataFormatError),
    "names": (_names, r"^x_names: 2 names for 1 columns", ConfigError),
    "strings": (_string_x, r"^x: expected a numeric array", DataFormatError),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_error(tmp_path: Path, case: str) -> None:
    """Bad options are ConfigError, bad data contents DataFormatError; nothing is written."""
    build, message, error = BAD[case]
    out = tmp_path / "run"
    with pytest.raises(error, match=message):
        fit(**build(), config=TINY["flow"], epochs=1, out=out, progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_out_must_be_new_or_empty(tmp_path: Path) -> None:
    x, c = _xc()
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^out .*run: exists and is not an empty folder"):
        fit(x, c, config=TINY["flow"], epochs=1, out=out, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    afile = tmp_path / "f.h5"
    afile.write_bytes(b"data")
    with pytest.raises(ConfigError, match="out"):
        fit(x, c, config=TINY["flow"], epochs=1, out=afile, progress=False)
    assert afile.read_bytes() == b"data"


DIVERGE = {"lr": 1e30, "grad_clip": 0.0, "schedule": "constant", "warmup_steps": 0}


def test_fit_writes_run_directory_with_out(tmp_path: Path) -> None:
    x, c = _xc()
    out = tmp_path / "run"
    est = fit(x, c, config=TINY["flow"], epochs=1, out=out, x_names=["e"], progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "codec.json", "weights.pt", "summary.json"} <= names
    assert load(out).config.x_names == ["e"] == est.config.x_names
    cq = np.zeros((2, 1))
    assert load(out)(cq).sample(seed=0).tobytes() == est(cq).sample(seed=0).tobytes()


def test_failed_fit_leaves_nothing_behind(tmp_path: Path) -> None:
    """Training that fails after the run files were written removes the new folder."""
    x, c = _xc()
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="diverged"):
        fit(x, c, config=TINY["flow"], optim=DIVERGE, epochs=2, out=out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failed_fit_leaves_an_empty_out_folder_empty(tmp_path: Path) -> None:
    x, c = _xc()
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(ConfigError, match="diverged"):
        fit(x, c, config=TINY["flow"], optim=DIVERGE, epochs=2, out=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == []


# ------------------------------------------------------------------ import


def test_lazy_attribute() -> None:
    import physgen.density as mod

    assert physgen.density is mod
    assert "density" in physgen.__all__
    with pytest.raises(AttributeError):
        _ = physgen.no_such_module  # type: ignore[attr-defined]


def test_import_physgen_does_not_import_torch() -> None:
    code = (
        "import sys, physgen\n"
        "assert 'torch' not in sys.modules, 'torch imported by import physgen'\n"
        "assert callable(physgen.density.fit) and callable(physgen.sbi.npe)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_review_regressions(tmp_path):
    """Fits on fewer rows than a batch, stops before the first validation, float32 bounds."""
    import numpy as np

    from physgen.core import VectorCodec
    from physgen.train.data import ArrayData

    data = ArrayData(
        np.zeros((10, 0)), np.random.default_rng(0).random((10, 1)), min_steps_per_epoch=50
    )
    sizes = [len(x) for _, x in data.batches(0, 16)]
    assert len(sizes) == 50 and min(sizes) == max(sizes) == data.n_train
    est = physgen.density.fit(np.random.default_rng(1).normal(size=(12, 1)), epochs=1)
    assert est(n=3).sample(seed=0).shape == (3, 1)
    stopped = physgen.density.fit(np.random.default_rng(2).normal(size=(3000, 2)), max_time=1e-3)
    assert stopped.summary["status"] == "max-time" and stopped(n=2).sample(seed=0).shape == (2, 2)
    with pytest.raises(ConfigError, match="max_time"):
        physgen.density.fit(np.zeros((20, 1)), max_time=-5)
    codec = VectorCodec(1, 0, bounds=[(0.0, 0.1)])
    x = codec.decode(None, torch.tensor([[40.0], [-40.0]]), torch.zeros(2, 0))
    assert float(x.max()) <= 0.1 and float(x.min()) >= 0.0
    codec.encode(x, torch.zeros(2, 0))  # its own samples are inside the support
    sample = np.random.default_rng(3).normal(size=3)
    assert physgen.density.fit(sample[:, None].repeat(4, 0) + np.arange(12)[:, None], epochs=1)(
        n=2
    ).sample(np.int64(3), seed=0).shape == (3, 2, 1)
