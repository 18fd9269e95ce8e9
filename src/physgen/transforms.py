"""Invertible preprocessing of showers, fitted on training data and saved with every model.

Two layers of objects:

* Elementwise transforms (:class:`Logit`, :class:`Log`, :class:`Standardize`) and
  :class:`Compose` map a tensor ``(N, D)`` to ``(N, D)`` and back. Fitted constants are
  buffers, so ``state_dict()`` saves them and ``.to(device)`` moves them.
* :class:`ShowerCodec` is the physics part: it turns showers in MeV into the variables a
  surrogate learns and back. In ``"layers"`` mode (CaloFlow/CaloDREAM style) a shower becomes

  - *energy variables* ``u`` of shape ``(N, L)``: ``u_0 = E_tot / (k E_inc)`` and, for
    ``i >= 1``, ``u_i = E_{i-1} / sum_{j >= i-1} E_j`` (the fraction of the energy still to
    be deposited that lands in layer ``i-1``), all in [0, 1], and
  - *shape variables* of shape ``(N, V)``: each voxel divided by its layer energy;

  in ``"incident"`` mode (CaloDiffusion style) only shape variables exist: voxel /
  ``(k E_inc)``. Each part then passes through its own :class:`Compose`. Decoding
  renormalises every layer to the sampled layer energy (so sum over layers equals the sampled
  total exactly) and zeroes voxels below the readout threshold.

Every transform is deterministic except the optional uniform dequantisation noise that
:meth:`ShowerCodec.encode` adds to voxel energies in training (``noise_mev``, drawn from a
``torch.Generator`` the caller owns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "Compose",
    "ConditionalStandardize",
    "Encoded",
    "Log",
    "Logit",
    "ShowerCodec",
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
        return ((torch.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)).clamp(0.0, 1.0)

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


class Encoded:
    """A batch in model variables.

    Attributes:
        condition: ``(N, 1)`` scaled log incident energy, about [0, 1] on the training range.
        energy: ``(N, L)`` transformed energy variables, or None in ``"incident"`` mode.
        shape: ``(N, V)`` transformed shape variables.
    """

    __slots__ = ("condition", "energy", "shape")

    def __init__(self, condition: Tensor, energy: Tensor | None, shape: Tensor) -> None:
        self.condition = condition
        self.energy = energy
        self.shape = shape

    def to(self, device: torch.device | str) -> Encoded:
        """Move every tensor to ``device``."""
        return Encoded(
            self.condition.to(device),
            None if self.energy is None else self.energy.to(device),
            self.shape.to(device),
        )

    def __len__(self) -> int:
        return int(self.shape.shape[0])


class ShowerCodec(nn.Module):
    """Showers (N, V) MeV and incident energies (N, 1) MeV <-> model variables.

    Args:
        layer_sizes: Voxels per readout layer in flat order (sum = V).
        mode: ``"layers"`` (energy + per-layer-normalised shape) or ``"incident"``
            (voxels / (k E_inc) only).
        energy_steps: Preprocessing steps of the energy variables (see
            :func:`build_transform`).
        shape_steps: Preprocessing steps of the shape variables.
        noise_mev: Width of the uniform dequantisation noise added to every voxel in training
            (MeV); its mean is subtracted again after decoding.
        threshold_mev: Readout threshold re-applied after decoding (voxels below it are zeroed).
        k_margin: ``k`` is fitted as ``k_margin * max(E_tot / E_inc)`` so that ``u_0 < 1``.
        energy_conditional: Knots of a :class:`ConditionalStandardize` of the energy variables
            in the condition, applied after ``energy_steps`` (0: none). Gives every energy
            variable zero mean and unit width at each incident energy.

    Buffers (fitted by :meth:`fit`): ``k``, ``log_e_min``, ``log_e_max`` (and those of the
    conditional standardisation).
    """

    k: Tensor
    log_e_min: Tensor
    log_e_max: Tensor
    layer_index: Tensor

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        mode: Literal["layers", "incident"] = "layers",
        energy_steps: Sequence[str] = ("logit", "standardize"),
        shape_steps: Sequence[str] = ("logit", "standardize"),
        noise_mev: float = 0.0,
        threshold_mev: float = 0.0,
        k_margin: float = 1.5,
        energy_conditional: int = 0,
    ) -> None:
        super().__init__()
        sizes = [int(s) for s in layer_sizes]
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"layer sizes must be positive, got {sizes}")
        if mode not in ("layers", "incident"):
            raise ConfigError(f"codec mode must be 'layers' or 'incident', got {mode!r}")
        if noise_mev < 0 or threshold_mev < 0 or k_margin < 1:
            raise ConfigError("noise_mev and threshold_mev must be >= 0 and k_margin >= 1")
        if energy_conditional < 0 or energy_conditional == 1:
            raise ConfigError(
                f"energy_conditional must be 0 (off) or >= 2 knots, got {energy_conditional}"
            )
        self.layer_sizes = sizes
        self.mode = mode
        self.noise_mev = float(noise_mev)
        self.threshold_mev = float(threshold_mev)
        self.k_margin = float(k_margin)
        self.n_layers = len(sizes)
        self.n_voxels = sum(sizes)
        self.energy_steps = list(energy_steps)
        self.shape_steps = list(shape_steps)
        self.energy_transform = build_transform(energy_steps, self.n_layers)
        self.shape_transform = build_transform(shape_steps, self.n_voxels)
        self.energy_conditional = int(energy_conditional) if mode == "layers" else 0
        self.energy_cond: ConditionalStandardize | None = (
            ConditionalStandardize(self.n_layers, self.energy_conditional)
            if self.energy_conditional
            else None
        )
        self.register_buffer("k", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("log_e_min", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("log_e_max", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer(
            "layer_index",
            torch.repeat_interleave(torch.arange(self.n_layers), torch.tensor(sizes)),
            persistent=False,
        )

    # ------------------------------------------------------------------ sizes
    #: The condition is the incident energy alone (:class:`~physgen.core.codec.Codec`).
    condition_dim = 1

    @property
    def energy_dim(self) -> int:
        """L in ``"layers"`` mode, else 0."""
        return self.n_layers if self.mode == "layers" else 0

    @property
    def first_dim(self) -> int:
        """First stage of the chain: the energy variables (``energy_dim``)."""
        return self.energy_dim

    @property
    def second_dim(self) -> int:
        """Second stage of the chain: the voxel shape (``n_voxels``)."""
        return self.n_voxels

    @property
    def groups(self) -> list[int]:
        """One token group per readout layer."""
        return list(self.layer_sizes)

    def check_condition(self, incident_energy: Tensor) -> Tensor:
        """Incident energies ``(N,)`` or ``(N, 1)`` MeV -> ``(N, 1)``.

        Raises:
            DataFormatError: Not finite and > 0.
        """
        e = incident_energy.reshape(-1, 1)
        if not bool((e > 0).all()) or not bool(torch.isfinite(e).all()):
            raise DataFormatError("incident energies must all be finite and > 0 MeV")
        return e

    @property
    def training_range_mev(self) -> tuple[float, float]:
        """Incident-energy range seen in :meth:`fit` (MeV)."""
        return math.exp(float(self.log_e_min)), math.exp(float(self.log_e_max))

    # ------------------------------------------------------------------ physics maps
    def layer_energies(self, showers: Tensor) -> Tensor:
        """``(N, V)`` -> ``(N, L)`` energy per layer."""
        out = torch.zeros(
            showers.shape[0], self.n_layers, dtype=showers.dtype, device=showers.device
        )
        return out.index_add_(1, self.layer_index, showers)

    def condition(self, incident_energy: Tensor) -> Tensor:
        """``(N, 1)`` MeV -> ``(N, 1)`` ``(ln E - ln E_min) / (ln E_max - ln E_min)`` (float32)."""
        e = incident_energy.reshape(-1, 1).double()
        c = (torch.log(e) - self.log_e_min) / (self.log_e_max - self.log_e_min)
        return c.float()

    def energies_to_u(self, layer_e: Tensor, incident_energy: Tensor) -> Tensor:
        """Layer energies ``(N, L)`` MeV -> ``u`` ``(N, L)`` in [0, 1]."""
        e_inc = incident_energy.reshape(-1, 1).to(layer_e.dtype)
        total = layer_e.sum(1, keepdim=True)
        u0 = total / (self.k.to(layer_e.dtype) * e_inc)
        remaining = torch.flip(torch.cumsum(torch.flip(layer_e, [1]), 1), [1])[:, :-1]
        frac = torch.where(remaining > 0, layer_e[:, :-1] / remaining.clamp_min(1e-30), 0.0)
        return torch.cat([u0, frac], 1)

    def u_to_energies(self, u: Tensor, incident_energy: Tensor) -> Tensor:
        """``u`` ``(N, L)`` -> layer energies ``(N, L)`` MeV; their sum is exactly ``u_0 k E_inc``."""
        u = u.clamp(0.0, 1.0)
        e_inc = incident_energy.reshape(-1, 1).to(u.dtype)
        remaining = u[:, :1] * self.k.to(u.dtype) * e_inc
        out = []
        for i in range(1, self.n_layers):
            e_i = u[:, i : i + 1] * remaining
            out.append(e_i)
            remaining = remaining - e_i
        out.append(remaining)
        return torch.cat(out, 1)

    # ------------------------------------------------------------------ fit / encode / decode
    def _raw(
        self, showers: Tensor, incident_energy: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor | None, Tensor]:
        x = showers.double()
        if generator is not None and self.noise_mev > 0:
            noise = torch.rand(x.shape, generator=generator, dtype=torch.float64, device="cpu")
            x = x + noise.to(x.device) * self.noise_mev
        e_inc = incident_energy.reshape(-1, 1).double()
        if self.mode == "incident":
            return None, (x / (self.k * e_inc)).clamp(0.0, 1.0)
        layer_e = self.layer_energies(x)
        denom = layer_e[:, self.layer_index]
        shape = torch.where(denom > 0, x / denom.clamp_min(1e-30), 0.0)
        return self.energies_to_u(layer_e, e_inc), shape

    @torch.no_grad()
    def fit(
        self, showers: Tensor, incident_energy: Tensor, generator: torch.Generator | None = None
    ) -> ShowerCodec:
        """Fit ``k``, the energy range and the standardisations on training data.

        Args:
            showers: ``(N, V)`` MeV.
            incident_energy: ``(N, 1)`` MeV, all > 0.
            generator: Source of the dequantisation noise (as in training).
        """
        self._check(showers, incident_energy)
        e = incident_energy.reshape(-1).double()
        self.log_e_min.fill_(float(torch.log(e.min())))
        self.log_e_max.fill_(float(torch.log(e.max())))
        if float(self.log_e_max - self.log_e_min) < 1e-6:  # a single energy: unit-width window
            self.log_e_min.sub_(0.5)
            self.log_e_max.add_(0.5)
        ratio = (showers.double().sum(1) + self.noise_mev * self.n_voxels) / e
        self.k.fill_(max(float(ratio.max()) * self.k_margin, 1e-6))
        energy, shape = self._raw(showers, incident_energy, generator)
        if energy is not None:
            self.energy_transform.fit(energy.float())
            if self.energy_cond is not None:
                y = self.energy_transform(energy.float())
                self.energy_cond.fit(y, self.condition(incident_energy))
        self.shape_transform.fit(shape.float())
        return self

    def transform_energy(self, u: Tensor, incident_energy: Tensor) -> Tensor:
        """Energy variables ``u`` ``(N, L)`` in [0, 1] -> model variables ``(N, L)`` (float32)."""
        y = self.energy_transform(u.float())
        if self.energy_cond is not None:
            y = self.energy_cond(y, self.condition(incident_energy))
        return y  # type: ignore[no-any-return]

    def inverse_energy(self, energy: Tensor, incident_energy: Tensor) -> Tensor:
        """Inverse of :meth:`transform_energy`: model variables ``(N, L)`` -> ``u`` (float32)."""
        y = energy.float()
        if self.energy_cond is not None:
            y = self.energy_cond.inverse(y, self.condition(incident_energy).to(y.device))
        return self.energy_transform.inverse(y)

    @torch.no_grad()
    def encode(
        self, showers: Tensor, incident_energy: Tensor, generator: torch.Generator | None = None
    ) -> Encoded:
        """Showers ``(N, V)`` MeV, energies ``(N, 1)`` MeV -> :class:`Encoded` (float32).

        Noise is added only when ``generator`` is given.
        """
        self._check(showers, incident_energy)
        energy, shape = self._raw(showers, incident_energy, generator)
        return Encoded(
            self.condition(incident_energy),
            None if energy is None else self.transform_energy(energy, incident_energy),
            self.shape_transform(shape.float()),
        )

    def _noisy_layer_energies(self, energy: Tensor, incident_energy: Tensor) -> Tensor:
        u = self.inverse_energy(energy, incident_energy).double()
        return self.u_to_energies(u, incident_energy.double())

    def decode_energy(self, energy: Tensor, incident_energy: Tensor) -> Tensor:
        """Transformed energy variables ``(N, L)`` -> layer energies ``(N, L)`` MeV (float64)."""
        layer_e = self._noisy_layer_energies(energy, incident_energy)
        if self.noise_mev > 0:  # the noise added 0.5 noise_mev per voxel on average
            sizes = torch.tensor(self.layer_sizes, dtype=layer_e.dtype, device=layer_e.device)
            layer_e = (layer_e - 0.5 * self.noise_mev * sizes).clamp_min(0.0)
        return layer_e

    def decode(self, energy: Tensor | None, shape: Tensor, incident_energy: Tensor) -> Tensor:
        """Model variables -> showers ``(N, V)`` MeV (float32), threshold applied.

        In ``"layers"`` mode every layer is renormalised to unit sum and scaled to its decoded
        layer energy, so the layer energies (before the threshold) are the sampled ones.
        """
        e_inc = incident_energy.reshape(-1, 1).double()
        s = self.shape_transform.inverse(shape.float()).double().clamp_min(0.0)
        if self.mode == "incident":
            x = s * self.k * e_inc
            if self.noise_mev > 0:
                x = x - 0.5 * self.noise_mev
        else:
            if energy is None:
                raise ConfigError("decode: 'layers' mode needs the energy variables")
            layer_e = self._noisy_layer_energies(energy, e_inc)
            sums = self.layer_energies(s)
            s = torch.where(sums[:, self.layer_index] > 0, s / sums[:, self.layer_index], 0.0)
            x = s * layer_e[:, self.layer_index]
            if self.noise_mev > 0:  # voxels that held only noise carry ~noise_mev/2 each
                x = x - 0.5 * self.noise_mev
        x = x.clamp_min(0.0)
        if self.threshold_mev > 0:
            x = torch.where(x < self.threshold_mev, 0.0, x)
        return x.float()

    def _check(self, showers: Tensor, incident_energy: Tensor) -> None:
        if showers.ndim != 2 or showers.shape[1] != self.n_voxels:
            raise ConfigError(
                f"showers must have shape (N, {self.n_voxels}), got {tuple(showers.shape)}"
            )
        if incident_energy.numel() != showers.shape[0]:
            raise DataFormatError(
                f"incident energies: expected {showers.shape[0]} values, got "
                f"{incident_energy.numel()}"
            )
        if not bool((incident_energy > 0).all()) or not bool(torch.isfinite(incident_energy).all()):
            raise DataFormatError("incident energies must all be finite and > 0 MeV")
        if not bool(torch.isfinite(showers).all()) or bool((showers < 0).any()):
            raise DataFormatError(
                "showers must be finite and >= 0 MeV (clip negative voxels first)"
            )

    def summary(self) -> dict[str, Any]:
        """Fitted constants and settings, JSON-serialisable (written to the run directory)."""
        lo, hi = self.training_range_mev
        return {
            "mode": self.mode,
            "layer_sizes": self.layer_sizes,
            "energy_steps": self.energy_steps if self.mode == "layers" else [],
            "shape_steps": self.shape_steps,
            "noise_mev": self.noise_mev,
            "threshold_mev": self.threshold_mev,
            "k": float(self.k),
            "incident_energy_range_mev": [lo, hi],
            "energy_transform": self.energy_transform.spec(),
            "energy_conditional_knots": self.energy_conditional,
            "shape_transform": self.shape_transform.spec(),
        }
