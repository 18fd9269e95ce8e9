"""The calorimeter codec: showers in MeV <-> the variables a surrogate learns.

:class:`ShowerCodec` is a :class:`~physgen.core.codec.Codec` built from the elementwise
transforms of :mod:`physgen.preprocess`; it turns showers in MeV into model variables and back.
In ``"layers"`` mode (CaloFlow/CaloDREAM style) a shower becomes

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

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from physgen.core.batch import Encoded
from physgen.errors import ConfigError, DataFormatError
from physgen.preprocess import ConditionalStandardize, build_transform

__all__ = ["ShowerCodec"]


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
        if torch.onnx.is_in_onnx_export():
            # the tracer freezes the batch size of a new tensor: sum the contiguous layer
            # slices instead (the same values up to the order of the float additions)
            edges = [0, *itertools.accumulate(self.layer_sizes)]
            return torch.stack([showers[:, a:b].sum(1) for a, b in itertools.pairwise(edges)], 1)
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
        """Inverse of :meth:`transform_energy`: model variables ``(N, L)`` -> ``u`` (float64).

        In double precision: ``u_i`` near 1 (a layer taking almost all the remaining energy)
        leaves ``1 - u_i`` with few significant bits in float32, and the later layers'
        energies are proportional to it.
        """
        y = energy.double()
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
