"""Variational (Bayesian) linear layers: weight distributions instead of weights.

A :class:`VariationalLinear` wraps an existing ``torch.nn.Linear`` (or zuko's
``MaskedLinear``, whose mask it keeps): the wrapped layer's weight and bias become the means
of independent Gaussians ``N(mu, sigma^2)``, with learnable ``log sigma``, and a Gaussian prior
``N(0, prior_std^2)``. Training minimises the negative evidence lower bound, the usual loss
plus ``KL(q || prior) / N_train`` per event (Blundell et al., "Weight uncertainty in neural
networks", ICML 2015, arXiv:1505.05424), with a fresh weight draw at every forward pass.
Making only the last layers variational, as for the Bayesian INNs of Bellagente et al.
(arXiv:2104.04543), keeps the cost near a plain network.

After training, ``eval()`` uses the mean weights; inside :func:`weight_draw` every variational
layer holds one weight draw, fixed for all calls: a whole sample generated there is one
member of the Bayesian ensemble, and ``K`` draws give the spread of the model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["VariationalLinear", "kl_divergence", "make_variational", "weight_draw"]


class VariationalLinear(nn.Module):
    """A linear layer with a Gaussian distribution over its weights (see the module docstring).

    Args:
        base: The layer whose weight and bias become the means (its ``mask``, if any, is
            applied to every weight draw).
        prior_std: Standard deviation of the zero-mean Gaussian prior.
        init_log_std: Initial ``log sigma`` (small: training starts near the point network).
    """

    def __init__(self, base: nn.Linear, prior_std: float = 1.0, init_log_std: float = -6.0):
        super().__init__()
        if prior_std <= 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std}")
        self.base = base
        self.prior_std = float(prior_std)
        self.log_std_weight = nn.Parameter(torch.full_like(base.weight, init_log_std))
        self.log_std_bias = (
            None if base.bias is None else nn.Parameter(torch.full_like(base.bias, init_log_std))
        )
        self._draw: tuple[Tensor, Tensor | None] | None = None

    def _mask(self) -> Tensor | None:
        m = getattr(self.base, "mask", None)
        return m if isinstance(m, Tensor) else None

    def forward(self, x: Tensor) -> Tensor:
        w: Tensor = self.base.weight
        b: Tensor | None = self.base.bias
        if self._draw is not None or self.training:
            eps_w, eps_b = self._draw if self._draw is not None else self._noise(None)
            w = w + self.log_std_weight.exp() * eps_w
            if b is not None and eps_b is not None and self.log_std_bias is not None:
                b = b + self.log_std_bias.exp() * eps_b
        m = self._mask()
        if m is not None:
            w = m * w
        return nn.functional.linear(x, w, b)

    def _noise(self, generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        w = self.base.weight
        eps_w = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        eps_b = None
        if self.base.bias is not None:
            b = self.base.bias
            eps_b = torch.randn(b.shape, generator=generator, dtype=b.dtype).to(b.device)
        return eps_w, eps_b

    def freeze(self, generator: torch.Generator) -> None:
        """Hold one weight draw (from ``generator``) until :meth:`release`."""
        self._draw = self._noise(generator)

    def release(self) -> None:
        """Back to the mean weights (eval) or fresh draws (training)."""
        self._draw = None

    def kl(self) -> Tensor:
        """``KL(q || prior)`` summed over the (unmasked) weights and biases."""
        total = self._kl(self.base.weight, self.log_std_weight, self._mask())
        if self.base.bias is not None and self.log_std_bias is not None:
            total = total + self._kl(self.base.bias, self.log_std_bias, None)
        return total

    def _kl(self, mu: Tensor, log_std: Tensor, mask: Tensor | None) -> Tensor:
        p = self.prior_std
        kl = math.log(p) - log_std + (log_std.exp() ** 2 + mu**2) / (2 * p * p) - 0.5
        return (kl if mask is None else kl * mask).sum()


def make_variational(
    module: nn.Module, last: int = 1, prior_std: float = 1.0
) -> list[VariationalLinear]:
    """Make the last ``last`` linear layers of every ``nn.Sequential`` network in ``module``
    variational (in place; zuko's MLPs and MaskedMLPs are ``nn.Sequential``). Returns the new
    layers."""
    if last < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    made: list[VariationalLinear] = []
    seqs = [m for m in module.modules() if isinstance(m, nn.Sequential)]
    for seq in seqs:
        idx = [i for i, layer in enumerate(seq) if isinstance(layer, nn.Linear)]
        if not idx or any(isinstance(c, nn.Sequential) for c in seq):
            continue  # only innermost networks of linear layers
        for i in idx[-last:]:
            v = VariationalLinear(seq[i], prior_std)  # type: ignore[arg-type]
            seq[i] = v
            made.append(v)
    return made


def kl_divergence(module: nn.Module) -> Tensor:
    """Sum of :meth:`VariationalLinear.kl` over every variational layer of ``module`` (0 if
    none)."""
    layers = [m for m in module.modules() if isinstance(m, VariationalLinear)]
    if not layers:
        p = next(module.parameters(), None)
        return torch.zeros((), device=None if p is None else p.device)
    out: Tensor = sum(
        (m.kl() for m in layers), torch.zeros((), device=layers[0].base.weight.device)
    )
    return out


@contextlib.contextmanager
def weight_draw(module: nn.Module, seed: int) -> Iterator[None]:
    """Hold one draw of every variational weight of ``module`` (seeded) within the block."""
    layers = [m for m in module.modules() if isinstance(m, VariationalLinear)]
    g = torch.Generator().manual_seed(int(seed))
    for m in layers:
        m.freeze(g)
    try:
        yield
    finally:
        for m in layers:
            m.release()
