"""Jet substructure observables on plain arrays of constituents: m, M, w, τ21, z_g, ln ρ.

The six observables of the OmniFold Z+jets benchmark (Andreassen et al., PRL 124 (2020)
182001, arXiv:1911.09107), computed from the constituents of one jet given as numpy arrays
``(pt, eta, phi, mass)`` (GeV, -, rad, GeV), so that they are testable without FastJet.
Angular distances are ``ΔR² = Δy² + Δφ²`` in rapidity ``y`` (not pseudorapidity) and
azimuth, as FastJet measures them; the two agree for massless constituents.

* ``m``: jet mass (GeV) of the summed four-momentum (E-scheme jet).
* ``M``: constituent multiplicity.
* ``w``: width (β = 1 girth), ``w = Σ pT_i ΔR_iJ / Σ pT_i``, ΔR to the E-scheme jet axis.
* ``tau21``: N-subjettiness ratio ``τ2/τ1`` with β = 1, ``τ_N = Σ_i pT_i min_k ΔR_ik /
  Σ_i pT_i`` (Thaler and Van Tilburg, JHEP 03 (2011) 015, arXiv:1011.2268; the ratio does not
  depend on the normalisation). Axes: **exclusive-kT axes with winner-take-all
  recombination** (fjcontrib's ``WTA_KT_Axes``; Larkoski, Neill and Thaler, JHEP 04 (2014)
  017, arXiv:1401.2158): the constituents are clustered with the kT distance
  ``min(pT_i², pT_j²) ΔR_ij²`` and no beam distance until N pseudojets remain; a merged
  pseudojet has ``pT = pT_i + pT_j`` and the direction of the harder one. The τ1 axis is
  the WTA merger of the two τ2 axes (kT clustering is sequential). No minimisation pass
  follows. A jet with ``M <= 2`` has ``τ2 = 0``; ``τ1 = 0`` (one constituent, or all
  collinear) gives ``tau21 = 0``.
* ``zg``: soft drop groomed momentum fraction, β = 0, z_cut = 0.1 (modified mass drop;
  Larkoski, Marzani, Soyez and Thaler, JHEP 05 (2014) 146, arXiv:1402.2657). The
  constituents are reclustered with Cambridge/Aachen (E-scheme, no radius limit) and
  declustered from the top: at each splitting ``z = min(pT1, pT2) / (pT1 + pT2)``; the
  first splitting with ``z > z_cut (ΔR12/R0)^β`` stops the grooming and gives ``z_g = z``,
  otherwise the softer branch is dropped and the harder one declustered. If no splitting
  passes (the jet is groomed down to one constituent), ``z_g = 0`` by convention, and the
  groomed jet is that constituent (fjcontrib's grooming mode). ``z_g`` and ``m_SD`` agree
  with fjcontrib's ``SoftDrop`` (through the ``fastjet`` package) to 1e-9 on random jets
  (``tests/events``), except that fjcontrib reports ``-1`` where nothing passes.
* ``lnrho``: ``ln ρ = ln(m_SD² / pT_jet²)`` with ``m_SD`` the groomed mass and ``pT_jet``
  the ungroomed jet pT. Floored at :data:`LNRHO_MIN` (= -20) so that a groomed jet of
  zero mass (a single photon, two collinear massless particles) gives a finite value.

Example:
    >>> import numpy as np
    >>> obs = jet_observables([100.0, 100.0], [0.0, 0.0], [-0.1, 0.1], [0.0, 0.0])
    >>> dict(zip(OBSERVABLES, np.round(obs, 4).tolist()))  # doctest: +NORMALIZE_WHITESPACE
    {'m': 19.9667, 'M': 2.0, 'w': 0.1, 'tau21': 0.0, 'zg': 0.5, 'lnrho': -4.5985}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError
from physgen.events.particles import four_momenta

__all__ = [
    "LNRHO_MIN",
    "OBSERVABLES",
    "jet_observables",
    "lnrho",
    "multiplicity",
    "nsubjettiness",
    "soft_drop",
    "tau21",
    "width",
    "wta_kt_axes",
]

FloatArray = npt.NDArray[np.float64]

#: The six observables, in the column order of every output (units: GeV, count, -, -, -, -).
OBSERVABLES: tuple[str, ...] = ("m", "M", "w", "tau21", "zg", "lnrho")
#: Lower bound of ``lnrho`` (a groomed jet of zero mass would give -inf).
LNRHO_MIN = -20.0
#: Soft drop defaults of the benchmark: β = 0, z_cut = 0.1, R0 = jet radius 0.4.
Z_CUT = 0.1
SD_BETA = 0.0
SD_R0 = 0.4

_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class _Jet:
    """Constituents in the forms the observables need (one conversion per jet)."""

    p4: FloatArray  # (n, 4) px, py, pz, E
    pt: FloatArray  # (n,)
    y: FloatArray  # (n,) rapidity
    phi: FloatArray  # (n,)
    mass: FloatArray  # (n,) as given (a single constituent's mass is exact, not from p4)


def _delta_phi(a: FloatArray | float, b: FloatArray | float) -> FloatArray:
    """``a - b`` wrapped into ``[-pi, pi)``."""
    return np.asarray((np.asarray(a) - np.asarray(b) + math.pi) % _TWO_PI - math.pi)


def _rapidity(p4: FloatArray) -> FloatArray:
    """Rapidity ``asinh(pz / mT)`` of ``(..., 4)`` momenta, ``mT² = E² - pz²`` (stable at
    large |y|, unlike ``0.5 ln((E + pz)/(E - pz))``)."""
    mt2 = p4[..., 3] ** 2 - p4[..., 2] ** 2
    mt = np.sqrt(np.maximum(mt2, 1e-300))
    return np.asarray(np.arcsinh(p4[..., 2] / mt))


def _mass(p4: FloatArray) -> float:
    m2 = float(p4[3] ** 2 - p4[0] ** 2 - p4[1] ** 2 - p4[2] ** 2)
    return math.sqrt(m2) if m2 > 0 else 0.0


def _as_jet(pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike) -> _Jet:
    arrays = [np.asarray(a, dtype=np.float64) for a in (pt, eta, phi, mass)]
    n = arrays[0].shape
    for name, a in zip(("pt", "eta", "phi", "mass"), arrays):
        if a.ndim != 1 or a.shape != n:
            raise DataFormatError(
                f"constituents: {name} has shape {a.shape}, expected one shape (n,) for all four"
            )
        if not np.isfinite(a).all():
            raise DataFormatError(f"constituents: {name} holds NaN or inf")
    if n[0] == 0:
        raise DataFormatError("constituents: a jet needs at least one constituent")
    if (arrays[0] <= 0).any() or (arrays[3] < 0).any():
        raise DataFormatError("constituents: expected pt > 0 and mass >= 0 (GeV)")
    p4 = four_momenta(*arrays)
    return _Jet(p4=p4, pt=arrays[0], y=_rapidity(p4), phi=arrays[2], mass=arrays[3])


def _pairwise_dr2(y: FloatArray, phi: FloatArray) -> FloatArray:
    dphi = _delta_phi(phi[:, None], phi[None, :])
    return np.asarray((y[:, None] - y[None, :]) ** 2 + dphi**2)


# --------------------------------------------------------------------------- observables


def multiplicity(pt: npt.ArrayLike) -> int:
    """Constituent multiplicity ``M`` (the length of ``pt``)."""
    return int(np.asarray(pt).shape[0])


def _width(jet: _Jet) -> float:
    total = jet.p4.sum(axis=0)
    if math.hypot(total[0], total[1]) <= 0:
        return 0.0
    y_j = float(_rapidity(total))
    phi_j = math.atan2(total[1], total[0])
    dr = np.sqrt((jet.y - y_j) ** 2 + _delta_phi(jet.phi, phi_j) ** 2)
    return float((jet.pt * dr).sum() / jet.pt.sum())


def width(pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike) -> float:
    """Jet width ``w = Σ pT_i ΔR_iJ / Σ pT_i`` about the E-scheme jet axis.

    Args:
        pt: Constituent transverse momenta (GeV), ``(n,)``, all > 0.
        eta: Constituent pseudorapidities, ``(n,)``.
        phi: Constituent azimuths (rad), ``(n,)``.
        mass: Constituent masses (GeV), ``(n,)``.

    Returns:
        The width (dimensionless, >= 0).

    Raises:
        DataFormatError: Arrays of different shapes, non-finite values, no constituent.
    """
    return _width(_as_jet(pt, eta, phi, mass))


def _wta_kt(jet: _Jet, n_axes: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Exclusive kT clustering with WTA recombination down to ``n_axes`` pseudojets.

    Returns:
        ``(pt, y, phi)`` of the ``min(n_axes, n)`` remaining pseudojets, in the order of
        their first constituent.
    """
    pt = jet.pt.copy()
    y = jet.y.copy()
    phi = jet.phi.copy()
    n = pt.shape[0]
    if n <= n_axes:
        return pt, y, phi
    pt2 = pt * pt
    d = np.minimum(pt2[:, None], pt2[None, :]) * _pairwise_dr2(y, phi)
    np.fill_diagonal(d, np.inf)
    alive = np.ones(n, dtype=bool)
    for _ in range(n - n_axes):
        i, j = divmod(int(np.argmin(d)), n)
        if pt[j] > pt[i]:  # i is the harder one: it keeps its direction (WTA)
            i, j = j, i
        pt[i] += pt[j]
        pt2[i] = pt[i] * pt[i]
        alive[j] = False
        d[j, :] = np.inf
        d[:, j] = np.inf
        row = np.minimum(pt2[i], pt2) * ((y - y[i]) ** 2 + _delta_phi(phi, phi[i]) ** 2)
        row[~alive] = np.inf
        row[i] = np.inf
        d[i, :] = row
        d[:, i] = row
    return pt[alive], y[alive], phi[alive]


def _tau(jet: _Jet, axes_y: FloatArray, axes_phi: FloatArray) -> float:
    dr2 = (jet.y[:, None] - axes_y[None, :]) ** 2 + _delta_phi(
        jet.phi[:, None], axes_phi[None, :]
    ) ** 2
    return float((jet.pt * np.sqrt(dr2.min(axis=1))).sum() / jet.pt.sum())


def _tau12(jet: _Jet) -> tuple[float, float]:
    pt2, y2, phi2 = _wta_kt(jet, 2)
    if pt2.shape[0] < 2:  # a single constituent: its own axis
        return 0.0, 0.0
    hard = 0 if pt2[0] >= pt2[1] else 1  # the WTA merger of the two τ2 axes
    tau1 = _tau(jet, y2[hard : hard + 1], phi2[hard : hard + 1])
    tau2 = _tau(jet, y2, phi2)
    return tau1, tau2


def wta_kt_axes(
    pt: npt.ArrayLike,
    eta: npt.ArrayLike,
    phi: npt.ArrayLike,
    mass: npt.ArrayLike,
    n_axes: int,
) -> FloatArray:
    """The ``n_axes`` exclusive-kT winner-take-all axes of a jet's constituents.

    Args:
        pt: Constituent transverse momenta (GeV), ``(n,)``.
        eta: Constituent pseudorapidities, ``(n,)``.
        phi: Constituent azimuths (rad), ``(n,)``.
        mass: Constituent masses (GeV), ``(n,)``.
        n_axes: Number of axes (>= 1).

    Returns:
        ``(min(n_axes, n), 2)`` axes as ``(y, phi)``: each is the direction of a constituent.
    """
    if n_axes < 1:
        raise DataFormatError(f"n_axes: expected >= 1, got {n_axes}")
    _, y, ph = _wta_kt(_as_jet(pt, eta, phi, mass), int(n_axes))
    return np.stack([y, ph], axis=1)


def nsubjettiness(
    pt: npt.ArrayLike,
    eta: npt.ArrayLike,
    phi: npt.ArrayLike,
    mass: npt.ArrayLike,
    n_axes: int,
) -> float:
    """N-subjettiness ``τ_N`` (β = 1) with exclusive-kT WTA axes, normalised by ``Σ pT_i``.

    Args:
        pt: Constituent transverse momenta (GeV), ``(n,)``.
        eta: Constituent pseudorapidities, ``(n,)``.
        phi: Constituent azimuths (rad), ``(n,)``.
        mass: Constituent masses (GeV), ``(n,)``.
        n_axes: N (>= 1); ``τ_N = 0`` when the jet has at most N constituents.

    Returns:
        ``Σ_i pT_i min_k ΔR_ik / Σ_i pT_i`` (dimensionless).
    """
    if n_axes < 1:
        raise DataFormatError(f"n_axes: expected >= 1, got {n_axes}")
    jet = _as_jet(pt, eta, phi, mass)
    _, y, ph = _wta_kt(jet, int(n_axes))
    return _tau(jet, y, ph)


def tau21(pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike) -> float:
    """``τ21 = τ2/τ1`` (β = 1, WTA kT axes); 0 when ``τ1 = 0``. Arguments as :func:`width`."""
    t1, t2 = _tau12(_as_jet(pt, eta, phi, mass))
    return t2 / t1 if t1 > 0 else 0.0


def _ca_tree(jet: _Jet) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Cambridge/Aachen clustering (E-scheme, no radius limit) of the constituents.

    Returns:
        ``(p4, parents)``: ``(2n - 1, 4)`` momenta of the nodes (constituents first, then
        the mergers in clustering order, the last one the whole jet) and ``(2n - 1, 2)``
        the two parents of each merger (``-1`` for a constituent).
    """
    n = jet.pt.shape[0]
    p4 = np.zeros((2 * n - 1, 4))
    p4[:n] = jet.p4
    parents = np.full((2 * n - 1, 2), -1, dtype=np.int64)
    y = jet.y.copy()
    phi = jet.phi.copy()
    node = np.arange(n, dtype=np.int64)  # the node held by each slot
    d = _pairwise_dr2(y, phi)
    np.fill_diagonal(d, np.inf)
    alive = np.ones(n, dtype=bool)
    for k in range(n, 2 * n - 1):
        i, j = divmod(int(np.argmin(d)), n)
        parents[k] = (node[i], node[j])
        p = p4[node[i]] + p4[node[j]]
        p4[k] = p
        node[i] = k
        y[i] = float(_rapidity(p))
        phi[i] = math.atan2(p[1], p[0])
        alive[j] = False
        d[j, :] = np.inf
        d[:, j] = np.inf
        row = (y - y[i]) ** 2 + _delta_phi(phi, phi[i]) ** 2
        row[~alive] = np.inf
        row[i] = np.inf
        d[i, :] = row
        d[:, i] = row
    return p4, parents


def _soft_drop(jet: _Jet, z_cut: float, beta: float, r0: float) -> tuple[float, float]:
    p4, parents = _ca_tree(jet)
    k = p4.shape[0] - 1
    while parents[k, 0] >= 0:
        a, b = int(parents[k, 0]), int(parents[k, 1])
        pta = math.hypot(p4[a, 0], p4[a, 1])
        ptb = math.hypot(p4[b, 0], p4[b, 1])
        z = min(pta, ptb) / (pta + ptb)
        threshold = z_cut
        if beta != 0.0:
            dy = float(_rapidity(p4[a]) - _rapidity(p4[b]))
            dphi = float(_delta_phi(math.atan2(p4[a, 1], p4[a, 0]), math.atan2(p4[b, 1], p4[b, 0])))
            threshold *= (math.hypot(dy, dphi) / r0) ** beta
        if z > threshold:
            return z, _mass(p4[k])
        k = a if pta >= ptb else b
    return 0.0, float(jet.mass[k])  # groomed down to constituent k


def soft_drop(
    pt: npt.ArrayLike,
    eta: npt.ArrayLike,
    phi: npt.ArrayLike,
    mass: npt.ArrayLike,
    *,
    z_cut: float = Z_CUT,
    beta: float = SD_BETA,
    r0: float = SD_R0,
) -> tuple[float, float]:
    """Soft drop grooming: ``(z_g, m_SD)``.

    Args:
        pt: Constituent transverse momenta (GeV), ``(n,)``.
        eta: Constituent pseudorapidities, ``(n,)``.
        phi: Constituent azimuths (rad), ``(n,)``.
        mass: Constituent masses (GeV), ``(n,)``.
        z_cut: Soft drop threshold (0.1).
        beta: Angular exponent β (0: modified mass drop).
        r0: Characteristic radius R0 (the jet radius, 0.4); irrelevant for β = 0.

    Returns:
        ``z_g`` (0 when no splitting passes) and the groomed mass ``m_SD`` (GeV).
    """
    return _soft_drop(_as_jet(pt, eta, phi, mass), float(z_cut), float(beta), float(r0))


def _lnrho(m_sd: float, pt_jet: float) -> float:
    if m_sd <= 0 or pt_jet <= 0:
        return LNRHO_MIN
    return max(2.0 * math.log(m_sd / pt_jet), LNRHO_MIN)


def lnrho(pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike) -> float:
    """``ln ρ = ln(m_SD² / pT_jet²)`` (soft drop β = 0, z_cut = 0.1), floored at
    :data:`LNRHO_MIN`. Arguments as :func:`width`."""
    jet = _as_jet(pt, eta, phi, mass)
    _, m_sd = _soft_drop(jet, Z_CUT, SD_BETA, SD_R0)
    total = jet.p4.sum(axis=0)
    return _lnrho(m_sd, math.hypot(total[0], total[1]))


def jet_observables(
    pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike
) -> FloatArray:
    """The six observables of one jet, in the order of :data:`OBSERVABLES`.

    Args:
        pt: Constituent transverse momenta (GeV), ``(n,)``, all > 0.
        eta: Constituent pseudorapidities, ``(n,)``.
        phi: Constituent azimuths (rad), ``(n,)``.
        mass: Constituent masses (GeV), ``(n,)``, >= 0.

    Returns:
        ``(6,)`` float64: ``m`` (GeV), ``M``, ``w``, ``tau21``, ``zg``, ``lnrho``.

    Raises:
        DataFormatError: Arrays of different shapes, non-finite values, no constituent,
            ``pt <= 0`` or ``mass < 0``.
    """
    jet = _as_jet(pt, eta, phi, mass)
    total = jet.p4.sum(axis=0)
    t1, t2 = _tau12(jet)
    zg, m_sd = _soft_drop(jet, Z_CUT, SD_BETA, SD_R0)
    return np.array(
        [
            _mass(total) if jet.pt.shape[0] > 1 else float(jet.mass[0]),
            float(jet.pt.shape[0]),
            _width(jet),
            t2 / t1 if t1 > 0 else 0.0,
            zg,
            _lnrho(m_sd, math.hypot(total[0], total[1])),
        ],
        dtype=np.float64,
    )
