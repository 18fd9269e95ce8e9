"""Model-specific checks of the gan, vae and diffusion families, and tiny training runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from physgen.calo.codec import ShowerCodec
from physgen.calo.config import load_config
from physgen.calo.io import write_showers
from physgen.calo.train import train
from physgen.errors import ConfigError
from physgen.models import build_model
from physgen.models.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, dpmpp_2m_sample
from physgen.models.gan import GAN, gradient_penalty
from physgen.models.vae import VAE
from showerdata import toy_showers

LAYERS = [3, 8, 5]


def _codec(mode: str = "layers") -> tuple[ShowerCodec, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    n = 128
    e = 10 ** (3 + 3 * torch.rand(n, 1, generator=g, dtype=torch.float64))
    x = torch.rand(n, sum(LAYERS), generator=g, dtype=torch.float64) ** 3
    x = (x / x.sum(1, keepdim=True) * e * 0.9).float()
    codec = ShowerCodec(LAYERS, mode=mode)
    codec.fit(x, e)
    return codec, e, x


def _model(name: str, opts: dict, mode: str = "layers"):
    codec, e, x = _codec(mode)
    torch.manual_seed(0)
    model = build_model(name, codec, opts)
    return model, codec.encode(x, e, torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ diffusion


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_monotone_from_one_to_zero(kind):
    s = NoiseSchedule(kind)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    ab = s.alpha_bar(t)
    assert float(ab[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(ab[-1]) < 1e-4
    assert bool((ab[1:] <= ab[:-1]).all()) and bool((ab[1:-1] < ab[:-2]).all())
    a, sig = s.alpha_sigma(t)
    assert torch.allclose(a**2 + sig**2, torch.ones_like(t))


def test_cosine_schedule_closed_form():
    s = NoiseSchedule("cosine")
    t = torch.tensor([0.5], dtype=torch.float64)
    f = lambda u: torch.cos((u + 0.008) / 1.008 * torch.pi / 2) ** 2  # noqa: E731
    assert torch.allclose(s.alpha_bar(t), f(t) / f(torch.zeros(1, dtype=torch.float64)))


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_v_eps_x0_conversions_are_exact(kind):
    s = NoiseSchedule(kind)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(256, 5, generator=g, dtype=torch.float64) * 3 + 1
    eps = torch.randn(256, 5, generator=g, dtype=torch.float64)
    t = torch.rand(256, 1, generator=g, dtype=torch.float64)
    xt = s.noisy(x0, eps, t)
    for prediction in ("v", "eps"):
        out = s.target(x0, eps, t, prediction)
        x0_hat, eps_hat = s.split(xt, out, t, prediction)
        assert torch.allclose(eps_hat, eps, atol=1e-9)
        assert torch.allclose(x0_hat, x0, atol=1e-6 if prediction == "eps" else 1e-9)


def _gaussian_oracle(s: NoiseSchedule, mu: torch.Tensor, sd: torch.Tensor, prediction: str):
    """Exact E[eps | x_t] (or E[v | x_t]) for data N(mu, sd^2): linear in x_t."""

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sig = s.alpha_sigma(t)
        var = a**2 * sd**2 + sig**2
        eps = sig / var * (x - a * mu)
        if prediction == "eps":
            return eps
        x0 = mu + a * sd**2 / var * (x - a * mu)
        return a * eps - sig * x0

    return f


@pytest.mark.parametrize(
    ("prediction", "sampler"),
    [("eps", "ddim"), ("v", "ddim"), ("v", "ddpm"), ("eps", "dpm++2m"), ("v", "dpm++2m")],
)
def test_samplers_with_the_exact_predictor_recover_the_gaussian(prediction, sampler):
    s = NoiseSchedule("cosine")
    mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
    sd = torch.tensor([0.5, 2.0], dtype=torch.float64)
    f = _gaussian_oracle(s, mu, sd, prediction)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    if sampler == "ddim":
        x = ddim_sample(f, x1, s, 200, prediction)
    elif sampler == "dpm++2m":
        x = dpmpp_2m_sample(f, x1, s, 200, prediction)
    else:
        noise = lambda shape: torch.randn(shape, generator=g, dtype=torch.float64)  # noqa: E731
        x = ddpm_sample(f, x1, s, 200, noise, prediction)
    assert torch.allclose(x.mean(0), mu, atol=0.03 * float(sd.max()))
    assert torch.allclose(x.std(0), sd, rtol=0.03)


def test_ddim_is_deterministic_and_few_steps_shrink_the_gaussian():
    # for Gaussian data a coarse DDIM step can only lose variance (Cauchy-Schwarz)
    s = NoiseSchedule("cosine")
    mu, sd = torch.zeros(1, dtype=torch.float64), torch.full((1,), 2.0, dtype=torch.float64)
    f = _gaussian_oracle(s, mu, sd, "eps")
    x1 = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(ddim_sample(f, x1, s, 3), ddim_sample(f, x1, s, 3))
    assert float(ddim_sample(f, x1, s, 2).std()) < 0.97 * float(ddim_sample(f, x1, s, 200).std())


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_dpmpp_2m_converges_at_second_order(prediction):
    # the ODE solution for Gaussian data from fixed noise: DDIM with many steps; DPM-Solver++(2M)
    # with 10 / 20 steps lands closer than DDIM with the same steps, and halving the step
    # size cuts its error by ~4 (second order) where DDIM's falls by ~2
    s = NoiseSchedule("cosine")
    mu = torch.tensor([1.5, -0.5], dtype=torch.float64)
    sd = torch.tensor([0.5, 2.0], dtype=torch.float64)
    f = _gaussian_oracle(s, mu, sd, prediction)
    x1 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ddim_sample(f, x1, s, 4000, prediction)

    def err(sampler, n):
        return float((sampler(f, x1, s, n, prediction) - exact).abs().mean())

    e10, e20, d10, d20 = (err(m, n) for m in (dpmpp_2m_sample, ddim_sample) for n in (10, 20))
    assert e10 < 0.5 * d10 and e20 < 0.5 * d20
    assert e10 / e20 > 3.0 and d10 / d20 < 2.5


def test_diffusion_sampling_options_change_the_samples():
    opts = {"hidden": 16, "blocks": 1, "energy_hidden": 8, "energy_blocks": 1, "time_features": 8}
    model, _ = _model("diffusion", {**opts, "steps": 4})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    c = torch.full((4, 1), 0.5)
    base = model.sample_encoded(c, torch.Generator().manual_seed(0))[1]
    model.config.steps = 2
    fewer = model.sample_encoded(c, torch.Generator().manual_seed(0))[1]
    model.config.sampler = "ddpm"
    ddpm = model.sample_encoded(c, torch.Generator().manual_seed(0))[1]
    assert not torch.allclose(base, fewer) and not torch.allclose(fewer, ddpm)
    model.config.sampler, model.config.steps = "dpm++2m", 4  # 2 steps would be DDIM's
    dpm = model.sample_encoded(c, torch.Generator().manual_seed(0))[1]
    assert not torch.allclose(base, dpm) and torch.isfinite(dpm).all()


# ------------------------------------------------------------------ gan

GAN_OPTS = {"latent": 4, "hidden": 16, "blocks": 1, "critic_hidden": 16, "critic_blocks": 1}


@pytest.mark.parametrize("mode", ["layers", "incident"])
def test_gan_alternation_touches_one_network_per_step(mode):
    model, batch = _model("gan", {**GAN_OPTS, "n_critic": 2}, mode)
    assert isinstance(model, GAN)
    gen = set(model.generator.parameters())
    crit = set(model.critic.parameters())
    assert gen and crit and not gen & crit
    assert set(model.parameters()) == gen | crit
    kinds = []
    for _ in range(6):
        model.zero_grad(set_to_none=True)
        is_gen = model.is_generator_step()
        ((name, loss),) = model.training_step(batch, torch.Generator().manual_seed(0)).items()
        assert name == ("generator" if is_gen else "critic")
        loss.backward()
        active, idle = (gen, crit) if is_gen else (crit, gen)
        assert all(p.grad is None or not p.grad.any() for p in idle)
        assert any(p.grad is not None and p.grad.any() for p in active)
        kinds.append("G" if is_gen else "D")
    assert kinds == ["D", "D", "G", "D", "D", "G"]
    assert int(model.step) == 6


def test_gan_loss_evaluation_does_not_advance_the_counter():
    model, batch = _model("gan", GAN_OPTS)
    a = model.loss(batch, torch.Generator().manual_seed(0))
    b = model.loss(batch, torch.Generator().manual_seed(0))
    model.validation_loss(batch, torch.Generator().manual_seed(0))
    model.diagnostics(batch, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and int(model.step) == 0
    a.backward()  # no backward-hook trick: only training_step advances the counter
    assert int(model.step) == 0
    model.training_step(batch, torch.Generator().manual_seed(0))
    assert int(model.step) == 1


def test_gan_adamw_leaves_the_idle_network_untouched():
    model, batch = _model("gan", {**GAN_OPTS, "n_critic": 1})
    opts = {k: torch.optim.AdamW(g, lr=1e-3) for k, g in model.optimizer_groups(1e-3).items()}
    assert set(opts) == {"generator", "critic"}
    for _ in range(2):  # one critic step, then one generator step
        critic_before = [p.detach().clone() for p in model.critic.parameters()]
        gen_before = [p.detach().clone() for p in model.generator.parameters()]
        is_gen = model.is_generator_step()
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        losses = model.training_step(batch, torch.Generator().manual_seed(0))
        sum(losses.values()).backward()
        for k in losses:
            opts[k].step()
        idle_before, idle = (
            (critic_before, model.critic) if is_gen else (gen_before, model.generator)
        )
        assert all(torch.equal(a, b) for a, b in zip(idle_before, idle.parameters()))


def test_gan_param_groups_two_time_scales():
    model, _ = _model("gan", {**GAN_OPTS, "critic_lr_scale": 4.0, "weight_decay": 0.0})
    g, c = model.param_groups(1e-4)
    assert g["lr"] == 1e-4 and c["lr"] == pytest.approx(4e-4)
    assert g["weight_decay"] == 0.0 and c["weight_decay"] == 0.0


class _LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x @ self.w.reshape(-1, 1) + c


def test_gradient_penalty_zero_for_unit_slope_and_large_for_steep_critic():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, 7, generator=g), torch.randn(64, 7, generator=g)
    c, u = torch.rand(64, 1, generator=g), torch.rand(64, 1, generator=g)
    w = torch.randn(7, generator=g)
    unit = gradient_penalty(_LinearCritic(w / w.norm()), real, fake, c, u)
    steep = gradient_penalty(_LinearCritic(5 * w / w.norm()), real, fake, c, u)
    assert float(unit.detach()) < 1e-10
    assert float(steep.detach()) == pytest.approx(16.0, rel=1e-5)
    steep.backward()  # the penalty is differentiable in the critic's parameters


def test_gan_validation_loss_and_diagnostics():
    model, batch = _model("gan", GAN_OPTS)
    v = model.validation_loss(batch, torch.Generator().manual_seed(0))
    assert v.ndim == 0 and float(v) > 0
    d = model.diagnostics(batch, torch.Generator().manual_seed(0))
    assert set(d) >= {"diversity_ratio", "etot_width_ratio", "etot_width_gen", "etot_width_real"}
    assert all(torch.isfinite(torch.tensor(x)) for x in d.values())
    # a collapsed generator (ignores its noise) shows zero diversity
    with torch.no_grad():
        model.generator.inp.weight[:, : GAN_OPTS["latent"]] = 0
    assert model.diagnostics(batch, torch.Generator().manual_seed(0))["diversity_ratio"] < 1e-6


# ------------------------------------------------------------------ vae


def test_vae_beta_schedule():
    model, batch = _model(
        "vae", {"latent": 4, "hidden": 16, "blocks": 1, "beta_max": 0.2, "kl_warmup_steps": 10}
    )
    assert isinstance(model, VAE)
    assert [model.beta(s) for s in (0, 5, 10, 20)] == pytest.approx([0.0, 0.1, 0.2, 0.2])
    assert model.beta() == 0.0
    model.loss(batch, torch.Generator().manual_seed(0))  # evaluation alone: no step
    assert int(model.step) == 0
    for _ in range(3):
        model.training_step(batch, torch.Generator().manual_seed(0))["model"].backward()
    assert int(model.step) == 3 and model.beta() == pytest.approx(0.06)
    no_warmup, _ = _model("vae", {"latent": 4, "hidden": 16, "blocks": 1, "kl_warmup_steps": 0})
    assert no_warmup.beta(0) == no_warmup.config.beta_max


@pytest.mark.parametrize("mode", ["layers", "incident"])
def test_vae_reconstruction_terms(mode):
    model, batch = _model("vae", {"latent": 4, "hidden": 16, "blocks": 1}, mode)
    x = model._x(batch)
    terms = model.reconstruction_terms(x + 0.1, x)
    expected = {"shape", "layers", "total"} | ({"energy"} if mode == "layers" else set())
    assert set(terms) == expected
    assert float(terms["shape"]) == pytest.approx(0.01, rel=1e-4)
    assert all(float(v) > 0 for v in terms.values())
    assert all(float(v) == 0 for v in model.reconstruction_terms(x, x).values())


def test_vae_flow_prior_sampling_and_training():
    opts = {
        "latent": 3,
        "hidden": 16,
        "blocks": 1,
        "prior": "flow",
        "prior_transforms": 2,
        "prior_hidden": [8],
        "kl_warmup_steps": 0,
    }
    model, batch = _model("vae", opts)
    c = torch.rand(500, 1, generator=torch.Generator().manual_seed(0))
    z = model.sample_latent(c, torch.Generator().manual_seed(1))
    assert z.shape == (500, 3) and torch.isfinite(z).all()
    assert torch.equal(z, model.sample_latent(c, torch.Generator().manual_seed(1)))
    opt = torch.optim.Adam(model.prior_flow.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.prior_flow.parameters()]
    for _ in range(3):
        opt.zero_grad()
        model.loss(batch, torch.Generator().manual_seed(0)).backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.prior_flow.parameters()))
    # sampling uses the (trained) prior, not N(0, 1)
    z2 = model.sample_latent(c, torch.Generator().manual_seed(1))
    assert not torch.equal(z, z2)
    energy, shape = model.sample_encoded(c, torch.Generator().manual_seed(1))
    assert energy is not None and energy.shape == (500, 3) and shape.shape == (500, 16)


# ------------------------------------------------------------------ tiny training runs

TINY = {
    "gan": {**GAN_OPTS, "n_critic": 2},
    "vae": {"latent": 4, "hidden": 16, "blocks": 1, "kl_warmup_steps": 5},
    "diffusion": {
        "hidden": 16,
        "blocks": 1,
        "energy_hidden": 8,
        "energy_blocks": 1,
        "time_features": 8,
        "steps": 2,
    },
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    e, x = toy_showers(300, "1-photons", seed=2)
    path = tmp_path_factory.mktemp("data") / "train.h5"
    write_showers(path, e, x, attrs={"geometry": "1-photons"})
    return path


def _cfg(name: str, **optim):
    o = {"batch_size": 64, "epochs": 1, "warmup_steps": 1, "checkpoint_every": 2, **optim}
    return load_config(
        name, "1-photons", preset="tiny", overrides={"model_config": TINY[name], "optim": o}
    )


@pytest.mark.parametrize("name", ["gan", "vae", "diffusion"])
def test_one_epoch_of_training(name, data_file, tmp_path):
    res = train(_cfg(name), data_file, tmp_path / "run", progress=False)
    assert res.status == "completed" and res.step == 270 // 64
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    if name != "diffusion":
        assert int(ck["state_dict"]["step"]) == res.step  # the counter buffer followed
    lines = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "val_loss" in lines
    if name == "gan":
        assert "diag_diversity_ratio" in lines


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_resume_of_a_counter_model_is_exact(name, data_file, tmp_path):
    cfg = _cfg(name, epochs=2, validate_every=3)
    full = train(cfg, data_file, tmp_path / "full", progress=False)
    part = train(cfg, data_file, tmp_path / "part", progress=False, stop_after_steps=5)
    assert part.status == "stopped" and part.step == 5  # mid-cycle for n_critic = 2
    done = train(None, data_file, tmp_path / "part", resume=True, progress=False)
    assert done.step == full.step
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("passes", [0, 2])
def test_vae_prior_passes_sample_the_prior_density(passes):
    """Coupling (2) and autoregressive (0) priors: sampled latents map back to the base noise."""
    opts = {"latent": 6, "hidden": 16, "blocks": 1, "prior": "flow", "prior_passes": passes}
    model, _ = _model("vae", {**opts, "prior_transforms": 2, "prior_hidden": [8]})
    for p in model.prior_flow.parameters():
        p.data.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    c = torch.rand(200, 1, generator=torch.Generator().manual_seed(0))
    z = model.sample_latent(c, torch.Generator().manual_seed(1))
    eps = model.randn((200, 6), torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model.prior_flow(c).transform(z), eps, atol=1e-4)


def test_vae_prior_passes_checked():
    with pytest.raises(ConfigError, match="prior_passes"):
        _model("vae", {"latent": 4, "hidden": 16, "blocks": 1, "prior": "flow", "prior_passes": 1})
