"""Variational layers and the Bayesian flow: closed-form KL, weight draws, training, reloading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import physgen
from physgen.errors import ConfigError
from physgen.nn.bayesian import VariationalLinear, kl_divergence, make_variational, weight_draw


def test_kl_matches_the_closed_form() -> None:
    lin = nn.Linear(3, 2)
    v = VariationalLinear(lin, prior_std=2.0, init_log_std=-1.0)
    mu = torch.cat([lin.weight.ravel(), lin.bias.ravel()]).detach()
    s = math.exp(-1.0)
    expected = float((math.log(2.0 / s) + (s * s + mu**2) / (2 * 4.0) - 0.5).sum())
    assert float(v.kl().detach()) == pytest.approx(expected, rel=1e-6)
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    made = make_variational(seq, last=1)
    assert len(made) == 1 and isinstance(seq[2], VariationalLinear)
    assert float(kl_divergence(seq).detach()) == pytest.approx(float(made[0].kl().detach()))
    assert float(kl_divergence(nn.Linear(2, 2))) == 0.0


def test_weight_draws_are_seeded_and_eval_uses_the_mean() -> None:
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    make_variational(seq, last=2, prior_std=1.0)
    for m in seq.modules():
        if isinstance(m, VariationalLinear):
            nn.init.constant_(m.log_std_weight, -1.0)
    x = torch.randn(5, 3)
    seq.eval()
    mean_out = seq(x)
    assert torch.equal(seq(x), mean_out)  # deterministic outside a draw
    with weight_draw(seq, 1):
        a1, a2 = seq(x), seq(x)
    with weight_draw(seq, 1):
        b = seq(x)
    with weight_draw(seq, 2):
        c = seq(x)
    assert torch.equal(a1, a2) and torch.equal(a1, b)
    assert not torch.allclose(a1, c) and not torch.allclose(a1, mean_out)
    assert torch.equal(seq(x), mean_out)  # released
    seq.train()
    assert not torch.equal(seq(x), seq(x))  # fresh draws while training


def test_masked_layers_keep_their_mask() -> None:
    import zuko

    flow = zuko.flows.MAF(3, transforms=1, hidden_features=(8,))
    made = make_variational(flow, last=1)
    assert made and all(isinstance(m.base, zuko.nn.MaskedLinear) for m in made)
    x = torch.randn(4, 3, requires_grad=True)
    with weight_draw(flow, 0):
        for m in made:
            nn.init.constant_(m.log_std_weight, 0.0)
        y = flow().transform(x)
    # autoregressive structure survives the weight noise: y_0 does not depend on x_1, x_2
    g = torch.autograd.grad(y[:, 0].sum(), x)[0]
    assert torch.all(g[:, 1:] == 0)


def test_bayesian_flow_trains_and_reloads(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(1000, 2))
    cfg = {"shape_transforms": 2, "shape_hidden": [16, 16], "bayesian_layers": 1}
    est = physgen.density.fit(x, model="flow", config=cfg, epochs=2, seed=0,
                              out=tmp_path / "run", progress=False)  # fmt: skip
    back = physgen.density.load(tmp_path / "run")
    with weight_draw(est.model, 3):
        a = est(n=200).sample(seed=1)
    with weight_draw(back.model, 3):
        b = back(n=200).sample(seed=1)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="bayesian_layers"):
        physgen.density.fit(x, model="flow", config={"bayesian_layers": -1}, epochs=1)
