"""Compiled Discrete-QCD dipole cascade with a complex-step derivative in ln(Lambda).

The shower of :mod:`physgen.diffsim.shower`, one event at a time, in numba. Every
kinematic quantity is a ``complex128`` whose real part is the value at ``ln Lambda`` and
whose imaginary part, divided by the step ``h``, is its derivative with respect to
``ln Lambda`` (complex-step differentiation, Squire & Trapp, SIAM Rev. 40 (1998) 110: exact
to rounding because no difference is taken). All decisions (which column wins, whether an
emission lies above the cutoff, when the cascade stops) read real parts only, so the
event's structure is the one the real-valued shower would produce, and the derivative is
the pathwise one with that structure held fixed.

Random numbers are not drawn from a stream: each is a hash of (event seed, dipole id,
column, slot) (SplitMix64 finaliser, Steele et al., OOPSLA 2014), so a moved
event reuses exactly the numbers it used before wherever its structure is unchanged.

numba's on-disk cache of the kernel is invalidated by edits to this file only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

__all__ = ["run_showers"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0  # 2**-53
#: Slots of the per-(dipole, column) random numbers.
_SLOT_HEIGHT, _SLOT_PHI = np.uint64(1), np.uint64(2)
#: Slots of the per-event orientation of the initial q qbar axis.
_SLOT_COS, _SLOT_AZ = np.uint64(3), np.uint64(4)


@njit(cache=True)
def _mix(x: np.uint64) -> Any:  # pragma: no cover - compiled
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _uniform(
    seed: np.uint64, dipole: np.uint64, column: np.int64, slot: np.uint64
) -> float:  # pragma: no cover - compiled
    """A uniform in (0, 1) from the hash of its indices."""
    h = _mix(seed ^ _mix(dipole))
    h = _mix(h ^ np.uint64(column + 4096))
    h = _mix(h ^ slot)
    return (float(h >> np.uint64(11)) + 0.5) * _TWO53


@njit(cache=True)
def _to_lab(
    v: np.ndarray, pa: np.ndarray, pb: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Map a dipole-frame momentum ``v`` (``a`` along +z) to the lab frame of ``pa``, ``pb``.

    Rotation taking +z to the direction of ``a`` in the dipole rest frame, then the boost
    by the dipole's velocity. Complex-analytic throughout.
    """
    e = pa[0] + pb[0]
    bx, by, bz = (pa[1] + pb[1]) / e, (pa[2] + pb[2]) / e, (pa[3] + pb[3]) / e
    b2 = bx * bx + by * by + bz * bz
    gam = 1.0 / np.sqrt(1.0 - b2)
    # a in the dipole rest frame (boost by -beta)
    bp = bx * pa[1] + by * pa[2] + bz * pa[3]
    f = (gam - 1.0) * bp / b2 - gam * pa[0] if b2.real > 1e-300 else -gam * pa[0]
    ax, ay, az = pa[1] + f * bx, pa[2] + f * by, pa[3] + f * bz
    na = np.sqrt(ax * ax + ay * ay + az * az)
    nx, ny, nz = ax / na, ay / na, az / na
    st = np.sqrt(nx * nx + ny * ny)
    cp, sp = nx / st, ny / st
    # R = Rz(phi) Ry(theta): columns (ct cp, ct sp, -st), (-sp, cp, 0), (nx, ny, nz)
    x = nz * cp * v[1] - sp * v[2] + nx * v[3]
    y = nz * sp * v[1] + cp * v[2] + ny * v[3]
    z = -st * v[1] + nz * v[3]
    # boost by +beta
    bp = bx * x + by * y + bz * z
    f = (gam - 1.0) * bp / b2 + gam * v[0] if b2.real > 1e-300 else gam * v[0]
    out[0] = gam * (v[0] + bp)
    out[1] = x + f * bx
    out[2] = y + f * by
    out[3] = z + f * bz


#: Columns per dipole: indices -_HALF .. _HALF - 1 (rapidity (c + 1/2) delta_y).
_HALF = 40


@njit(cache=True)
def _candidate(
    seed: np.uint64,
    dip_id: np.uint64,
    pa: np.ndarray,
    pb: np.ndarray,
    ln_lam: complex,
    kappa_now: complex,
    unbounded: bool,
    kappa0: complex,
    dy: float,
    xs: np.ndarray,
    caps: np.ndarray,
    has: np.ndarray,
    fresh: bool,
) -> tuple[complex, np.int64]:  # pragma: no cover - compiled
    """Highest emission of one dipole below ``kappa_now``: (kappa, column) or (0, big).

    Per column c the state is the candidate ``xs[c]`` (uniform on [0, caps[c]]) and its cap.
    A fresh dipole draws x = R caps with R from the hash. After a recoil (``fresh`` False)
    the column keeps its number, rescaled: given that nothing lies above kappa_now,
    x / min(kappa_now, cap) is again uniform on (0, 1), and the new candidate is that
    uniform times the new cap (exact in distribution, continuous in Lambda).
    """
    s = 2.0 * (pa[0] * pb[0] - pa[1] * pb[1] - pa[2] * pb[2] - pa[3] * pb[3])
    big_l = np.log(s) - 2.0 * ln_lam  # ln(s_d / Lambda^2)
    best = 0.0 + 0.0j
    best_col = np.int64(1 << 30)
    for i in range(2 * _HALF):
        col = np.int64(i - _HALF)
        y = (col + 0.5) * dy
        lim = big_l - 2.0 * math.log(2.0 * math.cosh(y))
        if lim.real <= kappa0.real:
            has[i] = False
            continue
        cap = lim if (unbounded or lim.real < kappa_now.real) else kappa_now
        if fresh or not has[i]:
            r = _uniform(seed, dip_id, col, _SLOT_HEIGHT) + 0.0j
        else:
            old = caps[i] if caps[i].real < kappa_now.real else kappa_now
            r = xs[i] / old
        xs[i], caps[i], has[i] = r * cap, cap, True
        kap = xs[i]
        if kap.real > kappa0.real and kap.real > best.real:
            best, best_col = kap, col
    return best, best_col


@njit(cache=True)
def _emit(
    pa: np.ndarray,
    pb: np.ndarray,
    kappa: complex,
    col: np.int64,
    phi: float,
    ln_lam: complex,
    q0: float,
    dy: float,
    na: np.ndarray,
    ng: np.ndarray,
    nb: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Dipole 2 -> 3: new momenta of a, g, b for an emission at (kappa, y of ``col``).

    Ariadne invariants: x_a = 1 - k e^-y, x_b = 1 - k e^y, x_g = 2 - x_a - x_b with
    k = k_perp / sqrt(s_d), so s_ag s_gb / s_d = k_perp^2 and y = ln(s_ag / s_gb) / 2. The
    end with the larger x (a for y > 0) keeps its direction in the dipole frame. The
    transverse momentum is k_perp = Lambda e^(kappa/2) - Q0: an emission that crosses the
    cutoff as Lambda moves appears with zero momentum, so infrared-safe observables stay
    continuous (only the multiplicity jumps).
    """
    s = 2.0 * (pa[0] * pb[0] - pa[1] * pb[1] - pa[2] * pb[2] - pa[3] * pb[3])
    rs = np.sqrt(s)
    y = (col + 0.5) * dy
    k = (np.exp(ln_lam + 0.5 * kappa) - q0) / rs
    xa = 1.0 - k * math.exp(-y)
    xb = 1.0 - k * math.exp(y)
    xg = 2.0 - xa - xb
    half = 0.5 * rs
    # cosines from exact differences (1 + c_ab = 2 k^2 / (x_a x_b)): no cancellation for
    # soft gluons
    opc_ab = 2.0 * k * k / (xa * xb)
    c_ab = opc_ab - 1.0
    s_ab = np.sqrt(opc_ab * (2.0 - opc_ab))
    cph, sph = math.cos(phi), math.sin(phi)
    va = np.empty(4, dtype=np.complex128)
    vg = np.empty(4, dtype=np.complex128)
    vb = np.empty(4, dtype=np.complex128)
    if y > 0:  # a keeps its direction (+z)
        omc = math.exp(y) / (xa * math.cosh(y))  # 1 - c_ag = 2 (1 - x_b) / (x_a x_g)
        c_ag = 1.0 - omc
        s_ag = np.sqrt(omc * (2.0 - omc))
        va[0], va[1], va[2], va[3] = xa * half, 0.0, 0.0, xa * half
        vg[0], vg[1], vg[2], vg[3] = (
            xg * half,
            xg * half * s_ag * cph,
            xg * half * s_ag * sph,
            xg * half * c_ag,
        )
        vb[0], vb[1], vb[2], vb[3] = (
            xb * half,
            -xb * half * s_ab * cph,
            -xb * half * s_ab * sph,
            xb * half * c_ab,
        )
    else:  # b keeps its direction (-z)
        omc = math.exp(-y) / (xb * math.cosh(y))
        c_bg = 1.0 - omc
        s_bg = np.sqrt(omc * (2.0 - omc))
        vb[0], vb[1], vb[2], vb[3] = xb * half, 0.0, 0.0, -xb * half
        vg[0], vg[1], vg[2], vg[3] = (
            xg * half,
            xg * half * s_bg * cph,
            xg * half * s_bg * sph,
            -xg * half * c_bg,
        )
        va[0], va[1], va[2], va[3] = (
            xa * half,
            -xa * half * s_ab * cph,
            -xa * half * s_ab * sph,
            -xa * half * c_ab,
        )
    _to_lab(va, pa, pb, na)
    _to_lab(vg, pa, pb, ng)
    _to_lab(vb, pa, pb, nb)


@njit(cache=True)
def _one_event(
    seed: np.uint64,
    ln_lam: complex,
    sqrt_s: float,
    ln_q0sq: float,
    dy: float,
    p: np.ndarray,
    kappas: np.ndarray,
) -> tuple[int, int, bool]:  # pragma: no cover - compiled
    """Shower one event into ``p`` (max_partons, 4); returns (partons, emissions, truncated)."""
    max_p = p.shape[0]
    kappa0 = ln_q0sq - 2.0 * ln_lam
    q0 = math.exp(0.5 * ln_q0sq)
    # initial q qbar along an isotropic axis (event shapes do not depend on it)
    ct = 2.0 * _uniform(seed, np.uint64(0), np.int64(0), _SLOT_COS) - 1.0
    az = 2.0 * math.pi * _uniform(seed, np.uint64(0), np.int64(0), _SLOT_AZ)
    st = math.sqrt(max(0.0, 1.0 - ct * ct))
    e = 0.5 * sqrt_s
    p[0, 0], p[0, 1], p[0, 2], p[0, 3] = e, e * st * math.cos(az), e * st * math.sin(az), e * ct
    p[1, 0], p[1, 1], p[1, 2], p[1, 3] = e, -p[0, 1], -p[0, 2], -p[0, 3]
    chain = np.empty(max_p, dtype=np.int64)  # parton slots in colour order
    dip_id = np.empty(max_p, dtype=np.uint64)  # dipole k = (chain[k], chain[k+1])
    cand = np.zeros(max_p, dtype=np.complex128)
    cand_col = np.zeros(max_p, dtype=np.int64)
    xs = np.zeros((max_p, 2 * _HALF), dtype=np.complex128)
    caps = np.zeros((max_p, 2 * _HALF), dtype=np.complex128)
    has = np.zeros((max_p, 2 * _HALF), dtype=np.bool_)
    stale = np.ones(max_p, dtype=np.bool_)
    fresh = np.ones(max_p, dtype=np.bool_)
    chain[0], chain[1] = 0, 1
    dip_id[0] = np.uint64(1)
    n_part, n_emit = 2, 0
    kappa_now = 0.0 + 0.0j
    unbounded = True
    na = np.empty(4, dtype=np.complex128)
    ng = np.empty(4, dtype=np.complex128)
    nb = np.empty(4, dtype=np.complex128)
    while True:
        n_dip = n_part - 1
        best, best_k = -1.0, -1
        for k in range(n_dip):
            if stale[k]:
                cand[k], cand_col[k] = _candidate(
                    seed, dip_id[k], p[chain[k]], p[chain[k + 1]], ln_lam, kappa_now,
                    unbounded, kappa0, dy, xs[k], caps[k], has[k], fresh[k],
                )  # fmt: skip
                stale[k], fresh[k] = False, False
            if cand[k].real > kappa0.real and cand[k].real > best:
                best, best_k = cand[k].real, k
        if best_k < 0:
            return n_part, n_emit, False
        if n_part >= max_p:
            return n_part, n_emit, True
        k = best_k
        ia, ib, ig = chain[k], chain[k + 1], n_part
        u_phi = _uniform(seed, dip_id[k], cand_col[k], _SLOT_PHI)
        _emit(p[ia], p[ib], cand[k], cand_col[k], 2.0 * math.pi * u_phi - math.pi, ln_lam,
              q0, dy, na, ng, nb)  # fmt: skip
        p[ia, :] = na
        p[ig, :] = ng
        p[ib, :] = nb
        kappa_now, unbounded = cand[k], False
        kappas[n_emit] = cand[k]
        # chain: insert g after position k; dipole k splits into (a, g) and (g, b)
        for j in range(n_part, k + 1, -1):
            chain[j] = chain[j - 1]
        for j in range(n_dip, k + 1, -1):
            dip_id[j], cand[j], cand_col[j] = dip_id[j - 1], cand[j - 1], cand_col[j - 1]
            stale[j], fresh[j] = stale[j - 1], fresh[j - 1]
            xs[j, :], caps[j, :], has[j, :] = xs[j - 1, :], caps[j - 1, :], has[j - 1, :]
        chain[k + 1] = ig
        parent = dip_id[k]
        dip_id[k], dip_id[k + 1] = _mix(parent ^ np.uint64(1)), _mix(parent ^ np.uint64(2))
        stale[k], stale[k + 1], fresh[k], fresh[k + 1] = True, True, True, True
        # the neighbours' ends recoiled: their columns are rescaled to the new masses
        if k > 0:
            stale[k - 1] = True
        if k + 2 <= n_dip:
            stale[k + 2] = True
        n_part += 1
        n_emit += 1


@njit(cache=True)
def run_showers(
    seeds: np.ndarray,
    ln_lam_re: float,
    ln_lam_im: float,
    sqrt_s: float,
    ln_q0sq: float,
    dy: float,
    max_partons: int,
    p_out: np.ndarray,
    n_out: np.ndarray,
    kappa_out: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Shower ``len(seeds)`` events; returns how many hit ``max_partons`` (truncated).

    Args:
        seeds: ``(N,)`` uint64 event seeds.
        ln_lam_re, ln_lam_im: ln(Lambda / GeV) and its complex step.
        sqrt_s: Centre-of-mass energy, GeV.
        ln_q0sq: ln(Q0^2 / GeV^2) of the k_perp cutoff.
        dy: Column width in rapidity, (33 - 2 n_f) / 18.
        max_partons: Capacity per event.
        p_out: ``(N, max_partons, 4)`` complex128, (E, px, py, pz) in GeV, zero-padded.
        n_out: ``(N,)`` int64 partons per event.
        kappa_out: ``(N, max_partons)`` complex128, kappa of each emission in order.
    """
    ln_lam = complex(ln_lam_re, ln_lam_im)
    truncated = 0
    for i in range(seeds.shape[0]):
        n, _, trunc = _one_event(seeds[i], ln_lam, sqrt_s, ln_q0sq, dy, p_out[i], kappa_out[i])
        n_out[i] = n
        truncated += int(trunc)
    return truncated
