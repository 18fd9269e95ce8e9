"""Physics processes with exact tree-level matrix elements: e+e- -> mu+mu-, e+e- -> q qbar g.

Both are multi-channel integrands on the unit cube whose integral is the cross section in
pb, and both turn a point into four-momenta (GeV) for event files. Conventions: beams
along ``z`` with the electron towards ``+z``; ``theta`` is the angle between the incoming
electron and the outgoing negative lepton (or quark).

Masses: the matrix elements and phase-space maps are massless (the cross sections are
the massless Born ones). The four-momenta written to event files carry the particles'
PDG masses (:mod:`physgen.nis.particles`): the beams are electrons and positrons of
energy ``sqrt(s)/2`` and ``|p_z| = sqrt(E^2 - m_e^2)``, and massive final-state particles
(the muons) are put on their mass shell by :func:`~physgen.nis.phasespace.put_on_shell`,
which keeps energy, momentum and directions. The quarks and the gluon of ``ee-qqg`` are
massless, as in its five-flavour matrix element (a shower program such as Pythia gives
c and b quarks their masses when it reads the event).
"""

from __future__ import annotations

import math

import torch
from scipy import integrate as _quad
from torch import Tensor

from physgen.errors import ConfigError
from physgen.nis.integrands import MultiChannelIntegrand
from physgen.nis.particles import PDG_MASS_GEV
from physgen.nis.phasespace import (
    log_map,
    put_on_shell,
    rotate_euler,
    three_body_momenta,
    two_body_momenta,
)

__all__ = ["GEV2_TO_PB", "EEToMuMu", "EEToQQG", "PhysicsProcess"]

#: Conversion of GeV^-2 to picobarn.
GEV2_TO_PB = 0.3893793721e9
_ALPHA = 1.0 / 132.507
_SW2 = 0.2312
_MZ, _GZ = 91.1876, 2.4952


class PhysicsProcess(MultiChannelIntegrand):
    """A multi-channel integrand that also knows the particles of each event.

    Attributes:
        sqrt_s: Collision energy in GeV.
        beam_pdg: PDG ids of the two beams (the first moves towards ``+z``).
        colors: ``(colour, anticolour)`` tags of each final-state particle (0 = none).
    """

    sqrt_s: float = 91.1876
    beam_pdg: tuple[int, int] = (11, -11)
    colors: tuple[tuple[int, int], ...] = ()

    def final_state(self, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Final-state particles of points ``y``.

        Args:
            y: Common-cube points, shape ``(n, dim)``.
            generator: Random generator for discrete choices (e.g. quark flavour).

        Returns:
            ``(pdg, p)``: PDG ids ``(n, k)`` (int64) and four-momenta ``(n, k, 4)`` in GeV,
            on the mass shell of each particle as written to event files (see the module
            docstring).
        """
        raise NotImplementedError  # pragma: no cover

    def beam_momenta(self, n: int) -> Tensor:
        """Incoming on-shell four-momenta, shape ``(n, 2, 4)`` in GeV.

        Each beam has energy ``sqrt(s)/2`` and ``|p_z| = sqrt(E^2 - m^2)`` with its PDG mass.
        """
        e = 0.5 * self.sqrt_s
        pz = [math.sqrt(e * e - PDG_MASS_GEV.get(abs(b), 0.0) ** 2) for b in self.beam_pdg]
        p = torch.tensor([[e, 0.0, 0.0, pz[0]], [e, 0.0, 0.0, -pz[1]]], dtype=torch.float64)
        return p.expand(n, 2, 4).clone()

    def massless_beam_momenta(self, n: int) -> Tensor:
        """Massless incoming four-momenta ``(n, 2, 4)`` in GeV, as the matrix elements use."""
        e = 0.5 * self.sqrt_s
        p = torch.tensor([[e, 0.0, 0.0, e], [e, 0.0, 0.0, -e]], dtype=torch.float64)
        return p.expand(n, 2, 4).clone()


def _z_couplings(s: float) -> tuple[float, float]:
    """Propagator factors ``(chi1, chi2)`` of the gamma/Z interference and Z^2 terms."""
    kappa = 1.0 / (4.0 * _SW2 * (1.0 - _SW2))
    den = (s - _MZ**2) ** 2 + (_GZ * _MZ) ** 2
    chi1 = kappa * s * (s - _MZ**2) / den
    chi2 = kappa**2 * s * s / den
    return chi1, chi2


class EEToMuMu(PhysicsProcess):
    """``e+ e- -> gamma/Z -> mu+ mu-`` at tree level (massless leptons, Born couplings).

    The matrix element is massless; :meth:`final_state` puts the muons on their mass
    shell (``|p| = sqrt(s/4 - m_mu^2)``, a relative change of ``2 m_mu^2 / s`` = 2.7e-6
    at the Z pole) for event files.

    ``dsigma/dOmega = alpha^2/(4 s) [A0 (1 + cos^2) + A1 cos]`` with
    ``A0 = 1 + 2 v^2 chi1 + (a^2 + v^2)^2 chi2``, ``A1 = 4 a^2 chi1 + 8 a^2 v^2 chi2``,
    ``v = -1/2 + 2 sin^2(theta_W)``, ``a = -1/2``; total cross section
    ``4 pi alpha^2 A0 / (3 s)`` (the analytic ``exact``, pb). Variables: ``y1 -> cos theta``,
    ``y2 -> phi``. One channel.
    """

    name = "ee-mumu"
    dim = 2
    n_channels = 1
    unit = "pb"
    colors = ((0, 0), (0, 0))

    def __init__(self, sqrt_s: float = 91.1876) -> None:
        if not sqrt_s > 2.0 * PDG_MASS_GEV[13]:
            raise ConfigError(f"ee-mumu: sqrt_s must exceed 2 m_mu = 0.2113 GeV, got {sqrt_s}")
        self.sqrt_s = sqrt_s
        s = sqrt_s**2
        chi1, chi2 = _z_couplings(s)
        v, a = -0.5 + 2.0 * _SW2, -0.5
        self.a0 = 1.0 + 2.0 * v * v * chi1 + (a * a + v * v) ** 2 * chi2
        self.a1 = 4.0 * a * a * chi1 + 8.0 * a * a * v * v * chi2
        self._pref = _ALPHA**2 / (4.0 * s) * GEV2_TO_PB
        self.exact = 4.0 * math.pi * _ALPHA**2 * self.a0 / (3.0 * s) * GEV2_TO_PB
        self.exact_error = 0.0

    def __call__(self, y: Tensor) -> Tensor:
        c = 2.0 * y[:, 0] - 1.0
        dsigma_domega = self._pref * (self.a0 * (1.0 + c * c) + self.a1 * c)
        return dsigma_domega * (4.0 * math.pi)  # dOmega = 4 pi dy1 dy2

    def final_state(self, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        c = 2.0 * y[:, 0] - 1.0
        phi = 2.0 * math.pi * y[:, 1]
        mu_minus, mu_plus = two_body_momenta(self.sqrt_s, c, phi)
        pdg = torch.tensor([13, -13], dtype=torch.int64).expand(y.shape[0], 2).clone()
        massless = torch.stack([mu_minus, mu_plus], dim=1)
        m_mu = PDG_MASS_GEV[13]
        masses = torch.tensor([m_mu, m_mu], dtype=torch.float64)
        return pdg, put_on_shell(massless, masses, self.sqrt_s)


_QUARK_CHARGES = {1: -1.0 / 3.0, 2: 2.0 / 3.0, 3: -1.0 / 3.0, 4: 2.0 / 3.0, 5: -1.0 / 3.0}


class EEToQQG(PhysicsProcess):
    """``e+ e- -> gamma* -> q qbar g`` at tree level with the cut ``s_ij/s > y_cut``.

    Exact matrix element for virtual-photon exchange (Z neglected), 5 massless flavours:
    ``|M|^2 = 192 pi^2 sigma0 alpha_s C_F sum_{b,j} (p_b.q_j)^2 / ((q.k)(qbar.k))`` with
    ``sigma0 = 4 pi alpha^2 N_c sum Q_q^2 / (3 s)``; orientation-averaged this is the textbook
    ``dsigma/dx1 dx2 = sigma0 alpha_s C_F/(2 pi) (x1^2 + x2^2)/((1-x1)(1-x2))``, and
    ``exact`` is that formula integrated over the cut region by 2-D quadrature.
    Variables: ``y1 = s_qbar g / s``, ``y2 = s_q g / s``, ``y3..y5`` the Euler angles
    ``(cos theta, phi, chi)`` of the event plane. Two channels: logarithmic sampling of
    ``y1`` (gluon collinear to the antiquark) or of ``y2`` (collinear to the quark), prior
    weights ``alpha_c ~ 1/y_c``.
    """

    name = "ee-qqg"
    dim = 5
    n_channels = 2
    unit = "pb"
    colors = ((501, 0), (0, 502), (502, 501))

    def __init__(self, sqrt_s: float = 35.0, y_cut: float = 0.01, alpha_s: float = 0.118) -> None:
        if not sqrt_s > 0:
            raise ConfigError(f"ee-qqg: sqrt_s must be > 0 GeV, got {sqrt_s}")
        if not 0.0 < y_cut < 1.0 / 3.0:
            raise ConfigError(f"ee-qqg: y_cut must be in (0, 1/3), got {y_cut}")
        self.sqrt_s = sqrt_s
        self.y_cut = y_cut
        self.alpha_s = alpha_s
        s = sqrt_s**2
        sum_q2 = sum(q * q for q in _QUARK_CHARGES.values())
        self.sigma0 = 4.0 * math.pi * _ALPHA**2 * 3.0 * sum_q2 / (3.0 * s) * GEV2_TO_PB
        cf = 4.0 / 3.0
        self._k = 192.0 * math.pi**2 * self.sigma0 * alpha_s * cf
        self.exact = self._reference(cf)
        self.exact_error = 1e-9 * self.exact

    def _reference(self, cf: float) -> float:
        yc = self.y_cut

        def dens(u2: float, u1: float) -> float:
            return ((1 - u1) ** 2 + (1 - u2) ** 2) / (u1 * u2)

        val, _ = _quad.dblquad(
            dens, yc, 1 - 2 * yc, lambda u1: yc, lambda u1: 1 - yc - u1, epsabs=0.0, epsrel=1e-11
        )
        return float(self.sigma0 * self.alpha_s * cf / (2 * math.pi) * val)

    def _momenta(self, y: Tensor) -> Tensor:
        x1, x2 = 1.0 - y[:, 0], 1.0 - y[:, 1]  # quark, antiquark energy fractions
        p = three_body_momenta(self.sqrt_s, x1, x2)
        return rotate_euler(
            p, 2.0 * y[:, 2] - 1.0, 2.0 * math.pi * y[:, 3], 2.0 * math.pi * y[:, 4]
        )

    def __call__(self, y: Tensor) -> Tensor:
        u1, u2 = y[:, 0], y[:, 1]
        u3 = 1.0 - u1 - u2
        yc = self.y_cut
        inside = (u1 > yc) & (u2 > yc) & (u3 > yc)
        y_safe = torch.where(inside[:, None], y, torch.full_like(y, 0.3))
        p = self._momenta(y_safe)
        beams = self.massless_beam_momenta(y.shape[0])

        def dot(a: Tensor, b: Tensor) -> Tensor:
            return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)

        num = torch.zeros(y.shape[0], dtype=torch.float64)
        for b in range(2):
            for j in range(2):
                num = num + dot(beams[:, b], p[:, j]) ** 2
        den = dot(p[:, 0], p[:, 2]) * dot(p[:, 1], p[:, 2])
        f = self._k * num / den / (256.0 * math.pi**3)
        return torch.where(inside, f, torch.zeros_like(f))

    def channel_map(self, x: Tensor, channel: int) -> tuple[Tensor, Tensor]:
        if channel not in (0, 1):
            raise ConfigError(f"ee-qqg: channel {channel} out of range [0, 2)")
        yc = self.y_cut
        u_log, jac_log = log_map(x[:, channel], yc, 1.0)
        other = 1 - channel
        u_flat = yc + (1.0 - yc) * x[:, other]
        y = x.clone()
        y[:, channel] = u_log
        y[:, other] = u_flat
        return y, jac_log * (1.0 - yc)

    def prior(self, y: Tensor) -> Tensor:
        u1 = y[:, 0].clamp(min=1e-300)
        u2 = y[:, 1].clamp(min=1e-300)
        a0 = u2 / (u1 + u2)
        return torch.stack([a0, 1.0 - a0], dim=-1)

    def final_state(self, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        ids = torch.tensor(list(_QUARK_CHARGES), dtype=torch.int64)
        q2 = torch.tensor([q * q for q in _QUARK_CHARGES.values()], dtype=torch.float64)
        pick = torch.multinomial(q2 / q2.sum(), y.shape[0], replacement=True, generator=generator)
        flav = ids[pick]
        pdg = torch.stack([flav, -flav, torch.full_like(flav, 21)], dim=1)
        return pdg, self._momenta(y)
