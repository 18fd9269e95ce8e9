"""Invertible elementwise preprocessing, fitted on training data and saved with every model.

:class:`Logit`, :class:`Log`, :class:`Standardize` and :class:`Compose` map a tensor
``(N, D)`` to ``(N, D)`` and back; :class:`ConditionalStandardize` standardises features at
each value of a condition. Fitted constants are buffers, so ``state_dict()`` saves them and
``.to(device)`` moves them. The calorimeter codec (:class:`physgen.calo.codec.ShowerCodec`)
is built from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from physgen.errors import ConfigError

__all__ = [
    "Compose",
    "ConditionalStandardize",
    "Log",
    "Logit",
    "Standardize",
    "Transform",
    "build_transform",
]


class Transform(nn.Module):
    """An invertible elementwise map ``(N, D) -> (N, D)`` with optional fitted constants."""

    def fit(self, x: Tensor) -> Transform:
        """Fit constants on training data ``x`` (N, D); returns self."""
        return self

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Constructor arguments, so that :func:`build_transform` rebuilds it."""
        return {"name": type(self).__name__.lower()}


class Logit(Transform):
    """``y = logit(alpha + (1 - 2 alpha) x)`` for ``x`` in [0, 1]; inverse clamps to [0, 1].

    Args:
        alpha: Explicit epsilon keeping 0 and 1 finite (0 maps to ``logit(alpha)``).
    """

    def __init__(self, alpha: float = 1e-6) -> None:
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ConfigError(f"logit alpha must be in (0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        z = self.alpha + (1.0 - 2.0 * self.alpha) * x.clamp(0.0, 1.0)
        return torch.log(z) - torch.log1p(-z)

    def inverse(self, y: Tensor) -> Tensor:
        # in double precision: for x << alpha the difference sigmoid(y) - alpha cancels, and
        # float32 sigmoid kernels (torch's, ONNX Runtime's) differ by more than x there
        x = (torch.sigmoid(y.double()) - self.alpha) / (1.0 - 2.0 * self.alpha)
        return x.clamp(0.0, 1.0).to(y.dtype)

    def spec(self) -> dict[str, Any]:
        return {"name": "logit", "alpha": self.alpha}


class Log(Transform):
    """``y = log(x + eps)`` for ``x >= 0``; inverse clamps at 0.

    Args:
        eps: Explicit offset keeping ``x = 0`` finite (0 maps to ``log(eps)``).
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        if not (eps > 0 and math.isfinite(eps)):
            raise ConfigError(f"log eps must be > 0, got {eps}")
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x.clamp_min(0.0) + self.eps)

    def inverse(self, y: Tensor) -> Tensor:
        return (torch.exp(y) - self.eps).clamp_min(0.0)

    def spec(self) -> dict[str, Any]:
        return {"name": "log", "eps": self.eps}


class Standardize(Transform):
    """Per-feature (or global) ``(x - mean) / std``, fitted on training data.

    Args:
        dim: Number of features D (the buffers' size).
        per_feature: One mean/std per feature (default) or one scalar pair.
        min_std: Floor on the fitted std (constant features stay finite).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, per_feature: bool = True, min_std: float = 1e-3) -> None:
        super().__init__()
        self.dim = int(dim)
        self.per_feature = bool(per_feature)
        self.min_std = float(min_std)
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("std", torch.ones(self.dim))

    def fit(self, x: Tensor) -> Standardize:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(f"standardize: expected (N, {self.dim}) data, got {tuple(x.shape)}")
        x64 = x.double()
        if self.per_feature:
            mean, std = x64.mean(0), x64.std(0, unbiased=False)
        else:
            mean = x64.mean().expand(self.dim)
            std = x64.std(unbiased=False).expand(self.dim)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.clamp_min(self.min_std).to(self.std.dtype))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, y: Tensor) -> Tensor:
        return y * self.std + self.mean

    def spec(self) -> dict[str, Any]:
        return {"name": "standardize", "per_feature": self.per_feature, "min_std": self.min_std}


class Compose(Transform):
    """Apply transforms in order; the inverse applies their inverses in reverse order."""

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def fit(self, x: Tensor) -> Compose:
        for t in self.transforms:
            assert isinstance(t, Transform)
            x = t.fit(x)(x)
        return self

    def forward(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        for t in reversed(self.transforms):
            assert isinstance(t, Transform)
            y = t.inverse(y)
        return y

    def spec(self) -> dict[str, Any]:
        return {"name": "compose", "transforms": [t.spec() for t in self.transforms]}  # type: ignore[operator]


def build_transform(steps: Sequence[str], dim: int) -> Compose:
    """Build a :class:`Compose` from short step names.

    Args:
        steps: Names in order, each ``logit``, ``logit:ALPHA``, ``log``, ``log:EPS``,
            ``standardize`` (per feature) or ``standardize:global``.
        dim: Feature count D.

    Raises:
        ConfigError: Unknown step or bad parameter.
    """
    out: list[Transform] = []
    for step in steps:
        name, _, arg = str(step).partition(":")
        try:
            if name == "logit":
                out.append(Logit(float(arg)) if arg else Logit())
            elif name == "log":
                out.append(Log(float(arg)) if arg else Log())
            elif name == "standardize":
                if arg not in ("", "global", "feature"):
                    raise ConfigError(
                        f"standardize option must be 'global' or 'feature', got {arg!r}"
                    )
                out.append(Standardize(dim, per_feature=arg != "global"))
            else:
                raise ConfigError(
                    f"unknown preprocessing step {step!r}; expected logit[:ALPHA], log[:EPS], "
                    "standardize[:global]"
                )
        except ValueError as exc:
            raise ConfigError(f"preprocessing step {step!r}: bad number ({exc})") from exc
    return Compose(out)


class ConditionalStandardize(nn.Module):
    """Per-feature ``z = (y - m(c)) / s(c)``, ``m`` and ``s`` piecewise linear in a condition.

    Where the conditional spread of a feature at fixed incident energy is much narrower than
    its spread over the whole training range (``E_tot / E_inc`` of a high-energy photon, a few
    per cent wide, against a range set by the low-energy showers), a global standardisation
    leaves the conditional widths small. A model whose loss is measured in these variables
    then sees errors in the width only as small differences: a Lipschitz-constrained critic
    (WGAN-GP) in particular cannot resolve them. Here every feature has zero mean and unit
    width at every condition.

    ``m`` and ``s^2`` are linear interpolations between ``knots`` equally spaced points of the
    condition range [0, 1], fitted by least squares to ``y`` and then to the squared residuals
    ``(y - m(c))^2``. With conditions that sit on the knots (the 15 energies of CaloChallenge
    dataset 1 with 15 knots) they are exactly the per-energy mean and variance; functions
    linear between knots are fitted exactly. Conditions outside [0, 1] use the end knots;
    knots without data nearby take the nearest fitted one; ``s^2`` is floored at
    ``min_var_fraction`` of the residual variance of the whole sample.

    Args:
        dim: Number of features D.
        knots: Interpolation points (>= 2).
        min_var_fraction: Floor of ``s^2`` relative to the global residual variance.

    Buffers: ``mean_knots`` and ``std_knots`` ``(knots, D)``.
    """

    mean_knots: Tensor
    std_knots: Tensor

    def __init__(self, dim: int, knots: int = 16, min_var_fraction: float = 1e-4) -> None:
        super().__init__()
        if knots < 2:
            raise ConfigError(f"conditional standardisation needs >= 2 knots, got {knots}")
        if not 0 < min_var_fraction < 1:
            raise ConfigError(f"min_var_fraction must be in (0, 1), got {min_var_fraction}")
        self.dim = int(dim)
        self.knots = int(knots)
        self.min_var_fraction = float(min_var_fraction)
        self.register_buffer("mean_knots", torch.zeros(self.knots, self.dim))
        self.register_buffer("std_knots", torch.ones(self.knots, self.dim))

    def _hat(self, c: Tensor) -> Tensor:
        """``(N, 1)`` conditions -> ``(N, knots)`` linear-interpolation weights (rows sum to 1)."""
        pos = c.reshape(-1, 1).clamp(0.0, 1.0) * (self.knots - 1)
        grid = torch.arange(self.knots, dtype=pos.dtype, device=pos.device)
        return (1.0 - (pos - grid).abs()).clamp_min(0.0)

    @staticmethod
    def _knot_values(w: Tensor, y: Tensor) -> Tensor:
        """Least-squares knot values ``(K, D)`` of ``y ~ w @ values``; knots whose hat holds
        (almost) no data copy the nearest fitted knot."""
        mass = w.sum(0)
        filled = torch.nonzero(mass > 1e-9 * mass.max()).reshape(-1)
        sol = torch.linalg.lstsq(w[:, filled].cpu(), y.cpu(), driver="gelsd").solution
        idx = torch.arange(w.shape[1])
        nearest = (idx[:, None] - filled.cpu()[None, :]).abs().argmin(1)
        out: Tensor = sol[nearest].to(y.device)
        return out

    @torch.no_grad()
    def fit(self, y: Tensor, c: Tensor) -> ConditionalStandardize:
        """Fit on features ``y`` ``(N, D)`` and conditions ``c`` ``(N, 1)``; returns self.

        Raises:
            ConfigError: Wrong shapes or no data.
        """
        if y.ndim != 2 or y.shape[1] != self.dim or c.numel() != y.shape[0] or y.shape[0] < 2:
            raise ConfigError(
                f"conditional standardize: expected (N >= 2, {self.dim}) data and N conditions, "
                f"got {tuple(y.shape)} and {c.numel()}"
            )
        w, y64 = self._hat(c.double()), y.double()
        mean = self._knot_values(w, y64)
        r2 = (y64 - w @ mean) ** 2
        floor = (r2.mean(0) * self.min_var_fraction).clamp_min(1e-30)
        var = torch.maximum(self._knot_values(w, r2), floor)
        self.mean_knots.copy_(mean.to(self.mean_knots.dtype))
        self.std_knots.copy_(var.sqrt().to(self.std_knots.dtype))
        return self

    def _mean_std(self, c: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        w = self._hat(c.to(dtype))
        return w @ self.mean_knots.to(dtype), w @ self.std_knots.to(dtype)

    def forward(self, y: Tensor, c: Tensor) -> Tensor:
        """``(N, D)``, ``(N, 1)`` -> ``(N, D)`` standardised at each condition."""
        m, s = self._mean_std(c, y.dtype)
        return (y - m) / s

    def inverse(self, z: Tensor, c: Tensor) -> Tensor:
        """Inverse of :meth:`forward`."""
        m, s = self._mean_std(c, z.dtype)
        return z * s + m
