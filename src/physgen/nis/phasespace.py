"""Phase-space mappings for massless final states in the e+e- centre-of-mass frame.

All functions work on float64 tensors; four-momenta are ``(E, px, py, pz)`` in GeV
with shape ``(n, 4)`` per particle. Beams run along ``z`` (electron towards ``+z``).
:func:`put_on_shell` gives massless momenta their physical masses for event files.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from physgen.errors import ConfigError

__all__ = [
    "PHASE_SPACE_2",
    "log_map",
    "put_on_shell",
    "rotate_euler",
    "three_body_momenta",
    "two_body_momenta",
]

#: Volume of massless two-body phase space, ``int dPhi_2 = 1/(8 pi)``.
PHASE_SPACE_2 = 1.0 / (8.0 * math.pi)


def log_map(x: Tensor, low: float, high: float) -> tuple[Tensor, Tensor]:
    """Logarithmic mapping ``u = low (high/low)^x`` (density ``~ 1/u``).

    Args:
        x: Unit-interval values, shape ``(n,)``.
        low: Lower end (> 0).
        high: Upper end (> low).

    Returns:
        ``(u, du/dx)``, both shape ``(n,)``.
    """
    r = math.log(high / low)
    u = low * torch.exp(r * x)
    return u, u * r


def two_body_momenta(sqrt_s: float, cos_theta: Tensor, phi: Tensor) -> tuple[Tensor, Tensor]:
    """Back-to-back massless momenta with the first along ``(theta, phi)``.

    Args:
        sqrt_s: Centre-of-mass energy in GeV.
        cos_theta: Polar-angle cosines, shape ``(n,)``.
        phi: Azimuths in radians, shape ``(n,)``.

    Returns:
        Two four-momenta, each shape ``(n, 4)`` in GeV.
    """
    e = 0.5 * sqrt_s
    sin_theta = torch.sqrt((1.0 - cos_theta**2).clamp(min=0.0))
    p = torch.stack(
        [
            torch.full_like(cos_theta, e),
            e * sin_theta * torch.cos(phi),
            e * sin_theta * torch.sin(phi),
            e * cos_theta,
        ],
        dim=-1,
    )
    q = p.clone()
    q[:, 1:] = -q[:, 1:]
    return p, q


def rotate_euler(p: Tensor, cos_theta: Tensor, phi: Tensor, chi: Tensor) -> Tensor:
    """Rotate three-vectors by ``R_z(phi) R_y(theta) R_z(chi)``.

    Args:
        p: Four-momenta, shape ``(n, k, 4)``; the energies are kept.
        cos_theta, phi, chi: Euler angles, each shape ``(n,)``.

    Returns:
        Rotated four-momenta, shape ``(n, k, 4)``.
    """
    st = torch.sqrt((1.0 - cos_theta**2).clamp(min=0.0))
    ct = cos_theta
    cp, sp = torch.cos(phi), torch.sin(phi)
    cc, sc = torch.cos(chi), torch.sin(chi)
    # rows of R = Rz(phi) Ry(theta) Rz(chi)
    r = torch.stack(
        [
            torch.stack([cp * ct * cc - sp * sc, -cp * ct * sc - sp * cc, cp * st], -1),
            torch.stack([sp * ct * cc + cp * sc, -sp * ct * sc + cp * cc, sp * st], -1),
            torch.stack([-st * cc, st * sc, ct], -1),
        ],
        dim=-2,
    )  # (n, 3, 3)
    vec = torch.einsum("nij,nkj->nki", r, p[..., 1:])
    return torch.cat([p[..., :1], vec], dim=-1)


def three_body_momenta(sqrt_s: float, x1: Tensor, x2: Tensor) -> Tensor:
    """Massless three-body momenta in a fixed plane from energy fractions.

    Particle 1 runs along ``+z``, particle 2 lies in the ``xz`` plane, particle 3 balances.

    Args:
        sqrt_s: Centre-of-mass energy in GeV.
        x1, x2: Energy fractions ``x_i = 2 E_i / sqrt(s)`` with ``x1 + x2 >= 1``, shape ``(n,)``.

    Returns:
        Four-momenta, shape ``(n, 3, 4)``.
    """
    x3 = 2.0 - x1 - x2
    e1, e2 = 0.5 * sqrt_s * x1, 0.5 * sqrt_s * x2
    e3 = 0.5 * sqrt_s * x3
    # s12 = s (1 - x3) = 2 E1 E2 (1 - cos12)
    cos12 = (1.0 - 2.0 * (1.0 - x3) / (x1 * x2)).clamp(-1.0, 1.0)
    sin12 = torch.sqrt((1.0 - cos12**2).clamp(min=0.0))
    zero = torch.zeros_like(x1)
    p1 = torch.stack([e1, zero, zero, e1], -1)
    p2 = torch.stack([e2, e2 * sin12, zero, e2 * cos12], -1)
    p3v = -(p1[:, 1:] + p2[:, 1:])
    p3 = torch.cat([e3[:, None], p3v], -1)
    return torch.stack([p1, p2, p3], dim=1)


def put_on_shell(p: Tensor, masses: Tensor, sqrt_s: float, iterations: int = 50) -> Tensor:
    """Give massless momenta masses, conserving energy and momentum (RAMBO's reshuffling).

    In the centre-of-mass frame every three-momentum is scaled by one factor ``xi`` per
    event, ``p_i -> (sqrt(m_i^2 + xi^2 |p_i|^2), xi p_i)``, with ``xi`` solving
    ``sum_i sqrt(m_i^2 + xi^2 |p_i|^2) = sqrt(s)`` (Newton's method; Kleiss, Stirling and
    Ellis, Comput. Phys. Commun. 40 (1986) 359). Directions are kept, the three-momenta
    still sum to zero and the energies to ``sqrt(s)``, and ``E_i^2 - |p_i|^2 = m_i^2``.
    For two particles of equal mass ``xi = sqrt(1 - 4 m^2 / s)``.

    Args:
        p: Massless four-momenta ``(n, k, 4)`` in GeV, summing to ``(sqrt_s, 0, 0, 0)``.
        masses: Masses ``(k,)`` or ``(n, k)`` in GeV, float64 (a float32 tensor has lost
            digits already); all zeros: the momenta are returned unchanged.
        sqrt_s: Centre-of-mass energy in GeV.
        iterations: Most Newton steps (it converges in a few).

    Returns:
        On-shell four-momenta ``(n, k, 4)`` in GeV.

    Raises:
        ConfigError: The masses add up to ``sqrt_s`` or more.
    """
    m = torch.as_tensor(masses, dtype=torch.float64).expand(p.shape[:-1])
    if not bool((m > 0).any()):
        return p.clone()
    if bool((m.sum(-1) >= sqrt_s).any()):
        raise ConfigError(
            f"final-state masses sum to {float(m.sum(-1).max()):.6g} GeV, not below "
            f"sqrt_s = {sqrt_s:.6g} GeV"
        )
    q2 = (p[..., 1:] ** 2).sum(-1)  # (n, k)
    m2 = m * m
    xi = torch.sqrt(1.0 - (m.sum(-1, keepdim=True) / sqrt_s) ** 2)  # exact for 2 equal masses
    for _ in range(iterations):
        e = torch.sqrt(m2 + xi * xi * q2)
        f = e.sum(-1, keepdim=True) - sqrt_s
        if bool((f.abs() <= 4e-16 * sqrt_s).all()):
            break
        df = (xi * q2 / e).sum(-1, keepdim=True)
        xi = xi - f / df
    e = torch.sqrt(m2 + xi * xi * q2)
    return torch.cat([e[..., None], xi[..., None] * p[..., 1:]], dim=-1)
