"""The contract every registered surrogate honours (run with ``--device cuda`` on a GPU).

Each model is exercised in its main variants on a small irregular geometry (layers of 3, 8
and 5 voxels) so the whole contract runs in seconds.
"""

from __future__ import annotations

import copy

import pytest
import torch

from physgen.calo.codec import ShowerCodec
from physgen.models import available_models, build_model, get_model_class

LAYERS = [3, 8, 5]
N = 64

VARIANTS: dict[str, list[dict]] = {
    "cfm": [
        {
            "hidden": 32,
            "blocks": 1,
            "energy_hidden": 16,
            "energy_blocks": 1,
            "time_features": 8,
            "steps": 3,
        },
        {
            "two_stage": False,
            "hidden": 32,
            "blocks": 1,
            "time_features": 8,
            "steps": 2,
            "solver": "midpoint",
        },
        {
            "network": "transformer",
            "d_model": 16,
            "depth": 1,
            "heads": 2,
            "energy_hidden": 16,
            "energy_blocks": 1,
            "time_features": 8,
            "steps": 2,
            "solver": "euler",
        },
        {  # the shape of a distilled student (physgen distill): one Euler step
            "hidden": 32,
            "blocks": 1,
            "energy_hidden": 16,
            "energy_blocks": 1,
            "time_features": 8,
            "steps": 1,
            "solver": "euler",
        },
    ],
    "flow": [
        {
            "energy_transforms": 2,
            "energy_hidden": [16],
            "shape_transforms": 2,
            "shape_hidden": [32],
            "shape_bins": 4,
        },  # sampled by the fused coupling inverse (physgen.models.flow_fast)
        {
            "energy_transforms": 1,
            "energy_hidden": [8],
            "shape_transforms": 2,
            "shape_hidden": [16],
            "shape_bins": 4,
            "fast_sampling": False,  # zuko's own inverse
        },
        {
            "energy_transforms": 1,
            "energy_hidden": [8],
            "shape_kind": "maf",
            "shape_transforms": 2,
            "shape_hidden": [16],
            "shape_passes": 0,
        },
    ],
    "gan": [
        {"latent": 8, "hidden": 32, "blocks": 1, "critic_hidden": 32, "critic_blocks": 1},
        {
            "latent": 4,
            "hidden": 16,
            "blocks": 1,
            "critic_hidden": 16,
            "critic_blocks": 1,
            "physics_features": False,
            "n_critic": 2,
            "drift": 0.0,
        },
    ],
    "vae": [
        {"latent": 4, "hidden": 32, "blocks": 1, "kl_warmup_steps": 10},
        {
            "latent": 4,
            "hidden": 16,
            "blocks": 1,
            "prior": "flow",
            "prior_transforms": 1,
            "prior_hidden": [8],
            "output_noise": 0.1,
        },
        {
            "latent": 4,
            "hidden": 16,
            "blocks": 1,
            "prior": "flow",
            "prior_transforms": 2,
            "prior_hidden": [8],
            "prior_passes": 2,
        },
    ],
    "diffusion": [
        {
            "hidden": 32,
            "blocks": 1,
            "energy_hidden": 16,
            "energy_blocks": 1,
            "time_features": 8,
            "steps": 3,
            "prediction": "eps",
        },
        {
            "two_stage": False,
            "hidden": 32,
            "blocks": 1,
            "time_features": 8,
            "steps": 2,
            "sampler": "ddpm",
            "schedule": "linear",
        },
        {
            "network": "transformer",
            "d_model": 16,
            "depth": 1,
            "heads": 2,
            "energy_hidden": 16,
            "energy_blocks": 1,
            "time_features": 8,
            "steps": 2,
            "sampler": "ddpm",
            "clip_x0": 5.0,
        },
    ],
}


def toy(n: int = N, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Showers whose depth profile and total energy depend on the incident energy."""
    g = torch.Generator().manual_seed(seed)
    e = 10 ** (3 + 3 * torch.rand(n, 1, generator=g, dtype=torch.float64))
    depth = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64) * (1 + 0.1 * torch.log10(e))
    depth = depth * (0.7 + 0.6 * torch.rand(n, 3, generator=g, dtype=torch.float64))
    per_layer = depth / depth.sum(1, keepdim=True) * e * 0.9
    parts = []
    for i, size in enumerate(LAYERS):
        w = torch.rand(n, size, generator=g, dtype=torch.float64) ** 3
        w[torch.rand(n, size, generator=g) < 0.2] = 0
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        parts.append(w * per_layer[:, i : i + 1])
    return e, torch.cat(parts, 1).float()


def make(name: str, options: dict, mode: str = "layers", device: str = "cpu"):
    codec = ShowerCodec(LAYERS, mode=mode, noise_mev=1e-3, threshold_mev=0.01)
    e, x = toy(256)
    codec.fit(x, e, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return build_model(name, codec, options).to(device)


CASES = [
    pytest.param(name, opts, mode, id=f"{name}-{i}-{mode}")
    for name, variants in VARIANTS.items()
    for i, opts in enumerate(variants)
    for mode in ("layers", "incident")
]


def test_every_registered_model_is_covered():
    assert set(available_models()) <= set(VARIANTS), "add the new model to VARIANTS"


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_sample_shapes_and_physics(name, opts, mode, device):
    model = make(name, opts, mode, device)
    e = torch.tensor([[1e3], [5e4], [9e5]])
    dist = model(e)
    one = dist.sample(generator=torch.Generator().manual_seed(1))
    many = dist.sample((4, 2), generator=torch.Generator().manual_seed(1))
    assert one.shape == (3, sum(LAYERS)) and one.dtype == torch.float32
    assert many.shape == (4, 2, 3, sum(LAYERS))
    assert torch.isfinite(many).all() and (many >= 0).all()
    nz = many[many > 0]
    assert nz.numel() == 0 or float(nz.min()) >= 0.01  # the codec's threshold is re-applied
    assert one.device.type == torch.device(device).type


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_gradients_reach_every_parameter(name, opts, mode, device):
    model = make(name, opts, mode, device)
    with torch.no_grad():  # zero-initialised heads would block gradients at initialisation
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    e, x = toy()
    batch = model.codec.encode(x.to(device), e.to(device), torch.Generator().manual_seed(2))
    # adversarial models alternate their objective: a full cycle must reach every parameter
    for _ in range(getattr(model, "loss_cycle", 1)):
        for loss in model.training_step(batch, torch.Generator().manual_seed(3)).values():
            assert loss.ndim == 0 and torch.isfinite(loss)
            loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_seeded_determinism(name, opts, mode, device):
    model = make(name, opts, mode, device)
    e = torch.full((8, 1), 2e4)
    a = model(e).sample(generator=torch.Generator().manual_seed(7))
    b = model(e).sample(generator=torch.Generator().manual_seed(7))
    c = model(e).sample(generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    ex, xx = toy(32)
    batch = model.codec.encode(xx.to(device), ex.to(device))
    la = model.loss(batch, torch.Generator().manual_seed(1))
    lb = model.loss(batch, torch.Generator().manual_seed(1))
    assert torch.equal(la, lb)


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_save_load_round_trip(name, opts, mode, device, tmp_path):
    model = make(name, opts, mode, device)
    path = tmp_path / "w.pt"
    torch.save({"model": name, "state_dict": model.state_dict()}, path)
    fresh_codec = ShowerCodec(LAYERS, mode=mode, noise_mev=1e-3, threshold_mev=0.01)
    torch.manual_seed(123)  # different initial weights: everything must come from the file
    fresh = build_model(name, fresh_codec, opts).to(device)
    fresh.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    e = torch.tensor([[3e3], [3e5]])
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(model(e).sample(generator=g()), fresh(e).sample(generator=g()))


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_depends_on_condition(name, opts, mode, device):
    model = make(name, opts, mode, device)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    c_lo = torch.zeros(16, 1, device=device)
    c_hi = torch.ones(16, 1, device=device)
    lo = model.sample_encoded(c_lo, torch.Generator().manual_seed(0))
    hi = model.sample_encoded(c_hi, torch.Generator().manual_seed(0))
    assert not torch.allclose(lo[1], hi[1])
    # and in MeV: same noise, energies 100x apart -> totals differ by about that factor
    e = torch.full((16, 1), 1e3)
    a = model(e).sample(generator=torch.Generator().manual_seed(0)).sum(1)
    b = model(e * 100).sample(generator=torch.Generator().manual_seed(0)).sum(1)
    assert float(b.mean() / a.mean()) > 10


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_log_prob_where_tractable(name, opts, mode, device):
    model = make(name, opts, mode, device)
    e, x = toy(16)
    dist = model(e.to(device))
    if get_model_class(name).tractable:
        lp = dist.log_prob(x.to(device))
        assert lp.shape == (16,) and torch.isfinite(lp).all()
    else:
        with pytest.raises(NotImplementedError, match="no tractable density"):
            dist.log_prob(x.to(device))


@pytest.mark.parametrize(("name", "opts", "mode"), CASES)
def test_a_few_steps_lower_the_loss(name, opts, mode, device):
    """For the GAN, whose loss alternates, the critic loss must fall over critic-only steps."""
    model = make(name, opts, mode, device)
    e, x = toy(128)
    batch = model.codec.encode(x.to(device), e.to(device), torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    objective = model.critic_loss if name == "gan" else model.loss

    def loss() -> torch.Tensor:
        return objective(batch, torch.Generator().manual_seed(0))

    first = float(loss().detach())
    for _ in range(40):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < first


def test_cpu_and_device_agree(device):
    if device == "cpu":
        pytest.skip("needs --device cuda to compare CPU and GPU")
    model = make("flow", VARIANTS["flow"][0])
    gpu = copy.deepcopy(model).to(device)
    e = torch.full((32, 1), 1e4)
    a = model(e).sample(generator=torch.Generator().manual_seed(0))
    b = gpu(e).sample(generator=torch.Generator().manual_seed(0)).cpu()
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-2)
