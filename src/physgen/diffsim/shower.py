"""A differentiable Discrete-QCD dipole shower for e+e- -> partons.

The physics (Andersson, Gustafson & Sjoegren, Nucl. Phys. B 463 (1996) 217; the event-moving
construction of Nachman & Prestel, arXiv:2208.02274; our reconstruction in
``shared/reference/unfold-anomaly-jets.md`` section 6):

- A colour dipole of mass^2 s emits gluons in rapidity y (dipole rest frame) and
  kappa = ln(k_perp^2 / Lambda^2). With one-loop running, alpha_s(k_perp^2) =
  12 pi / ((33 - 2 n_f) kappa), the large-N_c emission density is
  dn = (dy / delta_y) (dkappa / kappa) with delta_y = (33 - 2 n_f) / 18.
- The rapidity range is cut into columns of width delta_y centred at (j + 1/2) delta_y;
  a column exists while its kinematic limit kappa_lim(y) = ln(s / Lambda^2) - 2 ln(2 cosh y)
  (x_g <= 1) lies above the cutoff kappa_0 = ln(Q0^2 / Lambda^2). Each column holds at most
  one emission: the highest one, at kappa = R * kappa_max with a fixed uniform R (the
  Sudakov factor kappa / kappa_max inverted exactly: no veto). Emissions below kappa_0 are
  dropped.
- The cascade is ordered in kappa across all dipoles of the event: the highest candidate
  is emitted (Ariadne 2 -> 3 kinematics, the more energetic end keeps its direction), the
  dipole splits into two (the folds of the triangle picture), each with kappa_max capped by
  the emission just made, and the two neighbouring dipoles, whose ends recoiled, are
  re-evaluated below it. No g -> q qbar splitting (n_f enters delta_y and the running).

Choices made for moving (where this shower differs from the original Discrete QCD): kappa
is continuous (the original also quantises it on a lattice tied to delta_y), while the
rapidity of an emission is its column's centre; an emission's transverse momentum is
k_perp = Lambda e^(kappa/2) - Q0, so an emission crossing the cutoff as Lambda moves appears
with zero momentum (infrared-safe observables stay continuous; the physics well above Q0 is
unchanged); a recoiling neighbour keeps its column numbers, rescaled so that they stay
uniform given the cascade so far (exact in distribution, continuous in Lambda). What
remains discontinuous: emissions that switch order, which the pathwise derivative misses
(about 5 % of d<1-T>/d alpha_s, ``bench/diffsim.py derivatives``).

Every random number is a hash of (event seed, dipole id, column, slot), so an
event is a deterministic function x = g(u; Lambda) and can be *moved*: its momenta are
differentiable in ln Lambda wherever its structure (which emissions exist) is unchanged,
and :meth:`DiscreteQCDShower.run` returns the pathwise derivatives d p / d alpha_s (complex
step in ln Lambda through the compiled cascade, exact to rounding) beside the momenta.

The parameter users set is alpha_s(M_Z) at one loop with n_f = 5,
Lambda = M_Z exp(-6 pi / (23 alpha_s)) (0.118 -> 88 MeV), valid from 0.08 to 0.2.

Example:
    >>> sh = DiscreteQCDShower()
    >>> ev = sh.run(alpha_s=0.118, n=100, seed=1)
    >>> ev.momenta.shape[0], bool(abs(ev.momenta.sum(axis=1)[:, 1:]).max() < 1e-9)
    (100, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError

__all__ = [
    "ALPHA_S_RANGE",
    "M_Z",
    "DiscreteQCDShower",
    "PartonEvents",
    "alpha_s_from_lambda",
    "check_alpha_s",
    "event_seeds",
    "lambda_from_alpha_s",
]

F64 = npt.NDArray[np.float64]
#: Z mass, GeV (PDG).
M_Z = 91.1876
#: alpha_s(M_Z) values the shower accepts.
ALPHA_S_RANGE = (0.08, 0.2)
_STEP = 1e-20  # complex step in ln Lambda
_SEED_MIX = 0x5DEECE66D


def lambda_from_alpha_s(alpha_s: float, n_f: int = 5) -> float:
    """One-loop Lambda_QCD (GeV) with alpha_s(M_Z) = 12 pi / ((33 - 2 n_f) ln(M_Z^2 / Lambda^2))."""
    b = 33.0 - 2.0 * n_f
    return M_Z * math.exp(-6.0 * math.pi / (b * alpha_s))


def alpha_s_from_lambda(lam: float, n_f: int = 5) -> float:
    """Inverse of :func:`lambda_from_alpha_s`.

    Raises:
        ConfigError: Lambda not in (0, M_Z) GeV.
    """
    if not (math.isfinite(lam) and 0 < lam < M_Z):
        raise ConfigError(f"Lambda_QCD must lie in (0, {M_Z}) GeV, got {lam}")
    b = 33.0 - 2.0 * n_f
    return 12.0 * math.pi / (b * math.log(M_Z**2 / lam**2))


def check_alpha_s(alpha_s: float, what: str = "alpha_s") -> float:
    """Return ``alpha_s`` as a float, or raise :class:`ConfigError` outside the valid range."""
    a = float(alpha_s)
    lo, hi = ALPHA_S_RANGE
    if not (math.isfinite(a) and lo <= a <= hi):
        raise ConfigError(f"{what} must lie in [{lo}, {hi}] (alpha_s(M_Z)), got {alpha_s}")
    return a


@dataclass(frozen=True)
class PartonEvents:
    """Showered events at one alpha_s, with their derivatives.

    Attributes:
        momenta: ``(N, P, 4)`` float64, (E, px, py, pz) in GeV, zero rows past ``n_partons``.
        dmomenta: ``(N, P, 4)`` float64, d momenta / d alpha_s(M_Z) at fixed random numbers.
        n_partons: ``(N,)`` int64 partons per event (2 + emissions).
        kappas: ``(N, P)`` float64, kappa of the emissions in cascade order (0 past the last).
        alpha_s: alpha_s(M_Z) of the events.
        seeds: ``(N,)`` uint64 event seeds (the random numbers u, by hash).
        truncated: Events that reached the parton capacity (their cascade was cut short).
    """

    momenta: F64
    dmomenta: F64
    n_partons: npt.NDArray[np.int64]
    kappas: F64
    alpha_s: float
    seeds: npt.NDArray[np.uint64]
    truncated: int

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """``(N, P)`` True on real partons."""
        return np.arange(self.momenta.shape[1])[None, :] < self.n_partons[:, None]

    def moved(self, alpha_s: float) -> F64:
        """First-order move of the momenta to ``alpha_s``: p + dp/d alpha_s * (alpha_s - a0)."""
        return self.momenta + self.dmomenta * (float(alpha_s) - self.alpha_s)


class DiscreteQCDShower:
    """The Discrete-QCD dipole cascade of the module docstring, for e+e- -> q qbar + gluons.

    Args:
        sqrt_s: Centre-of-mass energy, GeV (default the Z pole).
        q0: Cutoff in k_perp, GeV (emissions below it are unresolved).
        n_f: Active flavours in the running and in delta_y = (33 - 2 n_f) / 18.
        max_partons: Capacity per event (events reaching it are counted as truncated).

    Raises:
        ConfigError: sqrt(s) not above 2 Q0 (no phase space), Q0 <= 0, n_f outside 0..6.
    """

    def __init__(
        self, sqrt_s: float = M_Z, q0: float = 1.0, n_f: int = 5, max_partons: int = 96
    ) -> None:
        if not (math.isfinite(q0) and q0 > 0):
            raise ConfigError(f"q0 (the k_perp cutoff) must be a positive number of GeV, got {q0}")
        if not (math.isfinite(sqrt_s) and sqrt_s > 2.0 * q0):
            raise ConfigError(
                f"sqrt_s must lie above twice the cutoff ({2 * q0:g} GeV), got {sqrt_s} GeV"
            )
        if not 0 <= int(n_f) <= 6:
            raise ConfigError(f"n_f must be 0..6, got {n_f}")
        if int(max_partons) < 3:
            raise ConfigError(f"max_partons must be at least 3, got {max_partons}")
        self.sqrt_s = float(sqrt_s)
        self.q0 = float(q0)
        self.n_f = int(n_f)
        self.max_partons = int(max_partons)
        self.delta_y = (33.0 - 2.0 * self.n_f) / 18.0

    def lambda_qcd(self, alpha_s: float) -> float:
        """Lambda_QCD in GeV for alpha_s(M_Z), one loop with this shower's n_f."""
        return lambda_from_alpha_s(check_alpha_s(alpha_s), self.n_f)

    def dln_lambda_dalpha_s(self, alpha_s: float) -> float:
        """d ln Lambda / d alpha_s(M_Z) = 12 pi / ((33 - 2 n_f) alpha_s^2) (one loop)."""
        return 12.0 * math.pi / ((33.0 - 2.0 * self.n_f) * alpha_s**2) / 2.0

    def run(
        self,
        alpha_s: float,
        n: int | None = None,
        seed: int = 0,
        seeds: npt.ArrayLike | None = None,
    ) -> PartonEvents:
        """Shower events at ``alpha_s`` with their pathwise derivatives.

        Args:
            alpha_s: alpha_s(M_Z), in [0.08, 0.2].
            n: Number of events (with ``seed``); or give ``seeds``.
            seed: Sample seed: event i uses a hash of (seed, i) as its random numbers.
            seeds: ``(N,)`` explicit event seeds (moving a sample: pass its ``seeds``).

        Returns:
            :class:`PartonEvents`; ``dmomenta`` is d p / d alpha_s(M_Z).
        """
        from physgen.diffsim.shower_kernel import run_showers

        a = check_alpha_s(alpha_s)
        if seeds is None:
            if n is None or int(n) < 1:
                raise ConfigError(f"n must be a positive number of events, got {n}")
            ev_seeds = event_seeds(seed, int(n))
        else:
            ev_seeds = np.ascontiguousarray(seeds, dtype=np.uint64).reshape(-1)
        n_ev = ev_seeds.shape[0]
        ln_lam = math.log(self.lambda_qcd(a))
        p = np.zeros((n_ev, self.max_partons, 4), dtype=np.complex128)
        n_out = np.zeros(n_ev, dtype=np.int64)
        kap = np.zeros((n_ev, self.max_partons), dtype=np.complex128)
        truncated = run_showers(
            ev_seeds, ln_lam, _STEP, self.sqrt_s, 2.0 * math.log(self.q0), self.delta_y,
            self.max_partons, p, n_out, kap,
        )  # fmt: skip
        chain = self.dln_lambda_dalpha_s(a) / _STEP
        return PartonEvents(
            momenta=np.ascontiguousarray(p.real),
            dmomenta=np.ascontiguousarray(p.imag * chain),
            n_partons=n_out,
            kappas=np.ascontiguousarray(kap.real),
            alpha_s=a,
            seeds=ev_seeds,
            truncated=int(truncated),
        )


def event_seeds(seed: int, n: int, stream: int = 0) -> npt.NDArray[np.uint64]:
    """``(n,)`` uint64 per-event seeds of sample (``seed``, ``stream``).

    Different seeds or streams give independent samples (pseudo-data use stream 0, the
    simulated sample of a fit stream 1, brute-force grid points streams 2, 3, ...).
    """
    if int(seed) < 0 or int(stream) < 0:
        raise ConfigError(f"seed and stream must be non-negative integers, got {seed}, {stream}")
    ss = np.random.SeedSequence([int(seed), _SEED_MIX, int(stream)])
    out: npt.NDArray[np.uint64] = np.array(
        ss.generate_state(2 * n, dtype=np.uint32).view(np.uint64), dtype=np.uint64
    )
    return out
