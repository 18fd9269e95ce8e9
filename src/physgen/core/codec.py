"""Codecs: the invertible map between data space and the variables a model learns.

A model never sees data-space arrays: a :class:`Codec` encodes data ``x (N, D)`` and a
condition ``c (N, K)`` into an :class:`~physgen.core.batch.Encoded` batch (an encoded
condition and one or two blocks of model variables), and decodes model variables back. The
two blocks are the two stages of a chain ``p(a | c) p(b | a, c)``: for calorimeter showers
``a`` are the layer-energy variables and ``b`` the voxel shape
(:class:`~physgen.calo.codec.ShowerCodec`); for plain vectors
(:class:`VectorCodec`) ``a`` is empty unless a split is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from physgen.core.batch import Encoded
from physgen.errors import ConfigError, DataFormatError

__all__ = ["Codec", "VectorCodec"]


@runtime_checkable
class Codec(Protocol):
    """What a model needs from its codec.

    Attributes:
        condition_dim: Width of the encoded condition (0: unconditional).
        first_dim: Width of the first-stage variables ``a`` (0: a single stage).
        second_dim: Width of the second-stage variables ``b``.
        groups: Sizes of the groups of ``b`` that transformer networks make tokens of
            (calorimeter layers; one feature per token for vectors); they sum to
            ``second_dim``.
    """

    condition_dim: int

    @property
    def first_dim(self) -> int: ...

    @property
    def second_dim(self) -> int: ...

    @property
    def groups(self) -> list[int]: ...

    def condition(self, c: Tensor) -> Tensor:
        """Data-space conditions -> encoded ``(N, condition_dim)`` float32."""

    def check_condition(self, c: Tensor) -> Tensor:
        """Validate data-space conditions and return them as ``(N, K)``."""

    def encode(self, x: Tensor, c: Tensor, generator: torch.Generator | None = None) -> Encoded:
        """Data ``x`` and conditions ``c`` -> :class:`Encoded`."""

    def decode(self, first: Tensor | None, second: Tensor, c: Tensor) -> Tensor:
        """Model variables -> data ``(N, D)``."""

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description of the fitted codec."""


_EPS = 1e-6
#: Smallest distance to a one-sided bound (float32 samples may round onto the bound).
_TINY = 1e-30
_F32_MAX = float(torch.finfo(torch.float32).max)


class VectorCodec(nn.Module):
    """Standardising codec for vectors ``x (N, D)`` with conditions ``c (N, K)``.

    Bounded columns of ``x`` are first mapped to the real line, so that samples respect the
    support: ``(lo, hi)`` by ``y = logit((x - lo) / (hi - lo))`` (e.g. a uniform prior's box),
    ``(lo, None)`` by ``y = log(x - lo)`` (masses, energies: positive quantities spanning
    decades) and ``(None, hi)`` by ``y = -log(hi - x)``; every column of ``y`` and of ``c`` is
    then standardised with the mean and standard deviation of the fitting sample. The map is
    invertible and differentiable, and its log-Jacobian :meth:`log_abs_det_jacobian` turns a
    density of the model variables into one in data space.

    Args:
        x_dim: D.
        c_dim: K (0: unconditional).
        bounds: Per column of ``x`` a ``(lo, hi)`` pair, one side of which may be None (or
            infinite) for a one-sided support, or None for an unbounded column; None: no
            bounded columns.
        first: The first ``first`` columns of ``x`` form the first stage ``a`` of a two-stage
            chain ``p(a | c) p(b | a, c)`` (0: one stage).
        min_std: Floor of the standard deviations (constant columns).
    """

    def __init__(
        self,
        x_dim: int,
        c_dim: int = 0,
        *,
        bounds: Sequence[tuple[float, float] | None] | None = None,
        first: int = 0,
        min_std: float = 1e-6,
    ) -> None:
        super().__init__()
        if x_dim < 1 or c_dim < 0:
            raise ConfigError(f"vector codec: need x_dim >= 1 and c_dim >= 0, got {x_dim}, {c_dim}")
        if not 0 <= first < x_dim:
            raise ConfigError(f"vector codec: first must be in [0, {x_dim}), got {first}")
        lo = torch.full((x_dim,), -math.inf, dtype=torch.float64)
        hi = torch.full((x_dim,), math.inf, dtype=torch.float64)
        if bounds is not None:
            if len(bounds) != x_dim:
                raise ConfigError(f"bounds: expected {x_dim} entries, got {len(bounds)}")
            for i, b in enumerate(bounds):
                if b is None:
                    continue
                try:
                    a = -math.inf if b[0] is None else float(b[0])
                    z = math.inf if b[1] is None else float(b[1])
                except (TypeError, ValueError, IndexError):
                    a, z = math.nan, math.nan
                if len(b) != 2 or math.isnan(a) or math.isnan(z) or not a < z or a == math.inf:
                    raise ConfigError(
                        f"bounds[{i}] = {b!r}: need (lo, hi) with lo < hi (None or inf on one "
                        "side for a one-sided support), or None"
                    )
                lo[i], hi[i] = a, z
        self.x_dim, self.condition_dim, self.first = int(x_dim), int(c_dim), int(first)
        self.min_std = float(min_std)
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)
        self.register_buffer("x_mean", torch.zeros(x_dim, dtype=torch.float64))
        self.register_buffer("x_std", torch.ones(x_dim, dtype=torch.float64))
        self.register_buffer("c_mean", torch.zeros(c_dim, dtype=torch.float64))
        self.register_buffer("c_std", torch.ones(c_dim, dtype=torch.float64))

    # ------------------------------------------------------------------ sizes
    lo: Tensor
    hi: Tensor
    x_mean: Tensor
    x_std: Tensor
    c_mean: Tensor
    c_std: Tensor

    @property
    def first_dim(self) -> int:
        """Width of the first stage."""
        return self.first

    @property
    def second_dim(self) -> int:
        """Width of the second stage."""
        return self.x_dim - self.first

    @property
    def groups(self) -> list[int]:
        """One token per feature of the second stage."""
        return [1] * self.second_dim

    @property
    def bounded(self) -> Tensor:
        """``(D,)`` bool: columns with at least one finite bound."""
        return torch.isfinite(self.lo) | torch.isfinite(self.hi)

    def bounds(self) -> list[tuple[float | None, float | None] | None]:
        """The bounds per column (None: that side is open)."""
        out: list[tuple[float | None, float | None] | None] = []
        for a, b in zip(self.lo.tolist(), self.hi.tolist()):
            fa, fb = math.isfinite(a), math.isfinite(b)
            out.append((a if fa else None, b if fb else None) if fa or fb else None)
        return out

    def _kinds(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """``(D,)`` masks: two-sided, lower-only and upper-only bounded columns."""
        flo = torch.isfinite(self.lo).to(device)
        fhi = torch.isfinite(self.hi).to(device)
        return flo & fhi, flo & ~fhi, ~flo & fhi

    # ------------------------------------------------------------------ checks
    def check_condition(self, c: Tensor) -> Tensor:
        """``(N, K)`` (or ``(N,)`` when K = 1) finite conditions -> ``(N, K)``.

        Raises:
            ConfigError: Wrong width or non-finite values.
        """
        if c.ndim == 1 and self.condition_dim == 1:
            c = c.reshape(-1, 1)
        if c.ndim != 2 or c.shape[1] != self.condition_dim:
            raise ConfigError(
                f"condition: expected shape (N, {self.condition_dim}), got {tuple(c.shape)}"
            )
        if not bool(torch.isfinite(c).all()):
            raise DataFormatError("condition: contains NaN or inf")
        return c

    def _check_x(self, x: Tensor, n: int) -> None:
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ConfigError(f"x: expected shape (N, {self.x_dim}), got {tuple(x.shape)}")
        if x.shape[0] != n:
            raise DataFormatError(f"x has {x.shape[0]} rows but the condition has {n}")
        if not bool(torch.isfinite(x).all()):
            raise DataFormatError("x: contains NaN or inf")
        b = self.bounded.to(x.device)
        if bool(b.any()):
            xd = x[:, b].double()
            outside = (xd < self.lo[b].to(x.device)) | (xd > self.hi[b].to(x.device))
            if bool(outside.any()):
                col = int(torch.nonzero(b)[int(outside.any(0).nonzero()[0])])
                raise DataFormatError(
                    f"x column {col}: values outside its bounds "
                    f"({float(self.lo[col]):g}, {float(self.hi[col]):g})"
                )

    # ------------------------------------------------------------------ maps
    def _to_real(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` -> (``y``, ``log|dy/dx|`` summed over columns), float64."""
        x = x.double()
        if not bool(self.bounded.any()):
            return x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        two, low, up = self._kinds(x.device)
        lo, hi = self.lo.to(x.device), self.hi.to(x.device)
        # every branch is evaluated on safe values only (no inf/NaN in unused branches)
        width = torch.where(two, hi - lo, 1.0)
        u = ((x - torch.where(two, lo, 0.0)) / width).clamp(_EPS, 1 - _EPS)
        dist = torch.where(low, x - torch.where(low, lo, 0.0), torch.where(up, hi, 0.0) - x)
        d = torch.where(low | up, dist, 1.0).clamp_min(_TINY)
        y = torch.where(two, torch.log(u) - torch.log1p(-u), x)
        y = torch.where(low, torch.log(d), torch.where(up, -torch.log(d), y))
        ld = torch.where(two, -torch.log(u) - torch.log1p(-u) - torch.log(width), 0.0)
        ld = ld + torch.where(low | up, -torch.log(d), 0.0)
        return y, ld.sum(1)

    def _from_real(self, y: Tensor) -> Tensor:
        if not bool(self.bounded.any()):
            return y
        two, low, up = self._kinds(y.device)
        lo, hi = self.lo.to(y.device), self.hi.to(y.device)
        x = torch.where(two, lo, 0.0) + torch.where(two, hi - lo, 1.0) * torch.sigmoid(y)
        x = torch.where(two, x, y)
        e = torch.exp(torch.where(low, y, torch.where(up, -y, 0.0)))
        x = torch.where(low, torch.where(low, lo, 0.0) + e, x)
        return torch.where(up, torch.where(up, hi, 0.0) - e, x)

    def fit(self, x: Tensor, c: Tensor) -> VectorCodec:
        """Fit the standardisation on ``x (N, D)`` and ``c (N, K)``; returns self."""
        c = self.check_condition(c)
        self._check_x(x, c.shape[0])
        if x.shape[0] < 2:
            raise DataFormatError("vector codec: need at least 2 rows to fit")
        _, low, up = self._kinds(x.device)
        on_edge = ((x.double() == self.lo.to(x.device)) & low) | (
            (x.double() == self.hi.to(x.device)) & up
        )
        if bool(on_edge.any()):
            col = int(on_edge.any(0).nonzero()[0])
            raise DataFormatError(
                f"x column {col}: values on its one-sided bound "
                f"({float(self.lo[col]):g}, {float(self.hi[col]):g}); the column is mapped "
                "through a logarithm of the distance to the bound and needs values strictly "
                "inside (move the bound outwards)"
            )
        y, _ = self._to_real(x)
        self.x_mean.copy_(y.mean(0))
        self.x_std.copy_(y.std(0).clamp_min(self.min_std))
        if self.condition_dim:
            cd = c.double()
            self.c_mean.copy_(cd.mean(0))
            self.c_std.copy_(cd.std(0).clamp_min(self.min_std))
        return self

    def condition(self, c: Tensor) -> Tensor:
        """``(N, K)`` -> standardised ``(N, K)`` float32."""
        c = c.reshape(c.shape[0], -1) if c.ndim != 2 else c
        return ((c.double() - self.c_mean.to(c.device)) / self.c_std.to(c.device)).float()

    def encode(self, x: Tensor, c: Tensor, generator: torch.Generator | None = None) -> Encoded:
        """``x (N, D)``, ``c (N, K)`` -> :class:`Encoded` (float32); ``generator`` is unused."""
        c = self.check_condition(c)
        self._check_x(x, c.shape[0])
        y, _ = self._to_real(x)
        z = ((y - self.x_mean.to(x.device)) / self.x_std.to(x.device)).float()
        a = z[:, : self.first] if self.first else None
        return Encoded(self.condition(c), a, z[:, self.first :])

    def decode(self, first: Tensor | None, second: Tensor, c: Tensor) -> Tensor:
        """Model variables -> ``x (N, D)`` float32 (differentiable)."""
        z = second if first is None else torch.cat([first, second], 1)
        y = z.double() * self.x_std.to(z.device) + self.x_mean.to(z.device)
        x = self._from_real(y).clamp(-_F32_MAX, _F32_MAX).float()  # no inf from exp()
        if bool(self.bounded.any()):  # float32 rounding must not step over a bound
            lo32, hi32 = self._float32_bounds()
            x = torch.minimum(torch.maximum(x, lo32.to(x.device)), hi32.to(x.device))
        return x

    def _float32_bounds(self) -> tuple[Tensor, Tensor]:
        """The bounds as float32 values that lie inside the float64 bounds."""
        lo32, hi32 = self.lo.float(), self.hi.float()
        up, down = torch.tensor(math.inf), torch.tensor(-math.inf)
        lo32 = torch.where(lo32.double() < self.lo, torch.nextafter(lo32, up), lo32)
        hi32 = torch.where(hi32.double() > self.hi, torch.nextafter(hi32, down), hi32)
        return lo32, hi32

    def log_abs_det_jacobian(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """``log |det d encode(x) / dx|`` ``(N,)`` (float64): data density = model density
        of the encoded variables plus this."""
        _, ld = self._to_real(x)
        return ld - torch.log(self.x_std.to(x.device)).sum()

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (to rebuild an unfitted codec of the same shape)."""
        return {
            "x_dim": self.x_dim,
            "c_dim": self.condition_dim,
            "bounds": [list(b) if b is not None else None for b in self.bounds()],
            "first": self.first,
            "min_std": self.min_std,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> VectorCodec:
        """Inverse of :meth:`spec`."""
        bounds = spec.get("bounds")
        return cls(
            int(spec["x_dim"]),
            int(spec["c_dim"]),
            bounds=[tuple(b) if b is not None else None for b in bounds] if bounds else None,
            first=int(spec.get("first", 0)),
            min_std=float(spec.get("min_std", 1e-6)),
        )

    def summary(self) -> dict[str, Any]:
        """Fitted constants, JSON-serialisable."""
        return {
            "kind": "vector",
            **self.spec(),
            "x_mean": self.x_mean.tolist(),
            "x_std": self.x_std.tolist(),
            "c_mean": self.c_mean.tolist(),
            "c_std": self.c_std.tolist(),
        }
