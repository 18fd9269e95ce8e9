"""Building blocks: embeddings, residual MLP, layer transformer."""

from __future__ import annotations

import pytest
import torch

from physgen.nn import GaussianFourierEmbedding, LayerTransformer, ResidualMLP, SinusoidalEmbedding


def test_sinusoidal_embedding():
    emb = SinusoidalEmbedding(16, scale=1.0)
    t = torch.tensor([0.0, 0.5, 1.0])
    out = emb(t)
    assert out.shape == (3, 16)
    assert torch.allclose(out[0, :8], torch.zeros(8)) and torch.allclose(out[0, 8:], torch.ones(8))
    assert torch.allclose(out.pow(2).reshape(3, 2, 8).sum(1), torch.ones(3, 8))  # sin^2 + cos^2
    with pytest.raises(ValueError):
        SinusoidalEmbedding(7)


def test_fourier_embedding_is_reproducible_and_saved():
    a, b = GaussianFourierEmbedding(32, seed=3), GaussianFourierEmbedding(32, seed=3)
    assert torch.equal(a.freqs, b.freqs) and "freqs" in a.state_dict()
    assert not torch.equal(a.freqs, GaussianFourierEmbedding(32, seed=4).freqs)
    assert a(torch.rand(5, 1)).shape == (5, 32)


def test_residual_mlp_condition_and_zero_init():
    net = ResidualMLP(6, 4, cond_features=3, hidden=16, blocks=2, zero_init=True)
    x, c = torch.randn(5, 6), torch.randn(5, 3)
    assert torch.equal(net(x, c), torch.zeros(5, 4))
    torch.nn.init.normal_(net.out.weight)
    y1, y2 = net(x, c), net(x, c + 1)
    assert y1.shape == (5, 4) and not torch.allclose(y1, y2)
    assert net(x, c[:1]).shape == (5, 4)  # a (1, C) condition broadcasts
    with pytest.raises(ValueError, match="condition"):
        net(x)


def test_layer_transformer_shapes_and_layer_mixing():
    sizes = [3, 8, 5]
    net = LayerTransformer(sizes, cond_features=2, d_model=16, depth=2, heads=2)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, c = torch.randn(4, 16), torch.randn(4, 2)
    y = net(x, c)
    assert y.shape == (4, 16)
    x2 = x.clone()
    x2[:, :3] += 1.0  # change only layer 0: attention must carry it to the other layers
    assert not torch.allclose(net(x2, c)[:, 3:], y[:, 3:])
