"""Two-stage conditional normalizing flows on zuko (exact log-likelihood).

CaloFlow (Krause & Shih, arXiv:2106.05285) for showers: flow I ``p(a | c)`` over the
first-stage variables and flow II ``p(b | a, c)`` over the second; on vectors a single flow
``p(x | c)`` (the neural posterior estimator of Papamakarios & Murray, arXiv:1605.06376, when
``c`` is the observation and ``x`` the parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor

from physgen.core.batch import Encoded
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.flow_fast import coupling_inverse
from physgen.models.registry import register
from physgen.nn.bayesian import kl_divergence, make_variational

__all__ = ["Flow", "FlowConfig"]


@dataclass
class FlowConfig:
    """Options of the ``flow`` model.

    Attributes:
        energy_transforms: Autoregressive spline transforms of flow I (energy variables).
        energy_hidden: Hidden layers of flow I's masked MLPs.
        energy_bins: Spline bins of flow I.
        shape_kind: Flow II transforms: ``nsf`` (rational-quadratic splines) or ``maf``
            (affine; much cheaper for thousands of voxels).
        shape_transforms: Transforms of flow II.
        shape_hidden: Hidden layers of flow II's masked MLPs.
        shape_bins: Spline bins of flow II (``nsf`` only).
        shape_passes: Sequential passes to invert a flow-II transform: 2 = coupling (one
            network pass per transform to sample, CaloINN style), 0 = fully autoregressive
            (MAF, V passes to sample, CaloFlow teacher style).
        bayesian_layers: 0 (a point network) or the number of last linear layers of every
            transform's network made variational (:mod:`physgen.nn.bayesian`; Bayesian INN,
            arXiv:2104.04543): the loss becomes the negative ELBO, sampling uses the mean
            weights, and :func:`physgen.nn.bayesian.weight_draw` samples one member of the
            Bayesian ensemble.
        bayesian_prior_std: Standard deviation of the Gaussian prior of those weights.
        fast_sampling: Sample a coupling spline flow II (``nsf`` with 2 passes) on CPU with
            :func:`physgen.models.flow_fast.coupling_inverse`: the same map as zuko's inverse
            (to float32 rounding) at a fraction of the cost. A sampling option; False keeps
            zuko's own inverse (for comparison; ONNX export and GPU tensors always use it).
    """

    energy_transforms: int = 6
    energy_hidden: tuple[int, ...] = (64, 64)
    energy_bins: int = 8
    shape_kind: str = "nsf"
    shape_transforms: int = 6
    shape_hidden: tuple[int, ...] = field(default_factory=lambda: (256, 256))
    shape_bins: int = 8
    shape_passes: int = 2
    bayesian_layers: int = 0
    bayesian_prior_std: float = 1.0
    fast_sampling: bool = True


def _context(c: Tensor) -> Tensor | None:
    """zuko's context: None for an empty (unconditional) one."""
    return c if c.shape[1] else None


@register("flow")
class Flow(ShowerGenerator):
    """Flow I ``p(a | c)`` (first stage, when the codec has one: the energy variables of a
    shower codec in ``layers`` mode) and flow II ``p(b | a, c)``.

    Both are conditional zuko flows with a standard normal base; sampling draws the base noise
    from the caller's generator and applies the inverse transforms.
    """

    Config = FlowConfig
    tractable = True
    sampling_options = ("fast_sampling",)

    def __init__(self, codec: Any, config: FlowConfig) -> None:
        super().__init__(codec, config)
        if config.shape_kind not in ("nsf", "maf"):
            raise ConfigError(f"flow shape_kind must be 'nsf' or 'maf', got {config.shape_kind!r}")
        n_e, n_v, k = codec.first_dim, codec.second_dim, codec.condition_dim
        self.energy_flow: zuko.flows.Flow | None = None
        if n_e:
            self.energy_flow = zuko.flows.NSF(
                n_e,
                context=k,
                transforms=config.energy_transforms,
                bins=config.energy_bins,
                hidden_features=tuple(config.energy_hidden),
            )
        passes = config.shape_passes or None
        kwargs = {
            "context": k + n_e,
            "transforms": config.shape_transforms,
            "hidden_features": tuple(config.shape_hidden),
            "passes": passes,
        }
        if config.shape_kind == "nsf":
            self.shape_flow = zuko.flows.NSF(n_v, bins=config.shape_bins, **kwargs)
        else:
            self.shape_flow = zuko.flows.MAF(n_v, **kwargs)
        if config.bayesian_layers < 0 or config.bayesian_prior_std <= 0:
            raise ConfigError(
                "flow bayesian_layers must be >= 0 and bayesian_prior_std > 0, got "
                f"{config.bayesian_layers} and {config.bayesian_prior_std}"
            )
        if config.bayesian_layers:
            make_variational(self, config.bayesian_layers, config.bayesian_prior_std)

    def log_prob_encoded(self, batch: Encoded) -> Tensor:
        c = batch.condition
        lp = torch.zeros(len(batch), device=c.device)
        if self.energy_flow is not None:
            assert batch.energy is not None
            lp = lp + self.energy_flow(_context(c)).log_prob(batch.energy)
            c = torch.cat([c, batch.energy], 1)
        return lp + self.shape_flow(_context(c)).log_prob(batch.shape)  # type: ignore[no-any-return]

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Mean negative log-likelihood per dimension (nats); for a Bayesian flow the
        negative ELBO per event and dimension, ``(NLL + KL / N_train) / D``."""
        dims = batch.shape.shape[1] + (0 if batch.energy is None else batch.energy.shape[1])
        nll = -self.log_prob_encoded(batch).mean()
        if self.config.bayesian_layers:
            if self.dataset_size is None:
                raise ConfigError(
                    "a Bayesian flow needs model.dataset_size (training rows) for its KL term; "
                    "the training loop sets it"
                )
            nll = nll + kl_divergence(self) / self.dataset_size
        return nll / dims

    def noise_widths(self) -> list[int]:
        """Base noise of flow I (if any), then of flow II."""
        return [w for w in (self.codec.first_dim, self.codec.second_dim) if w]

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        c, n_e = condition, self.codec.first_dim
        energy = None
        if self.energy_flow is not None:
            energy = self.energy_flow(_context(c)).transform.inv(z[:, :n_e])
            c = torch.cat([c, energy], 1)
        ctx = _context(c)
        if self.config.fast_sampling and _plain_evaluation():
            shape = coupling_inverse(self.shape_flow, z[:, n_e:].contiguous(), ctx)
            if shape is not None:
                return energy, shape
        return energy, self.shape_flow(ctx).transform.inv(z[:, n_e:])


def _plain_evaluation() -> bool:
    """No autograd, compilation or ONNX export in progress (the fast inverse is not differentiable
    and not traceable)."""
    return not (
        torch.is_grad_enabled() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
    )
