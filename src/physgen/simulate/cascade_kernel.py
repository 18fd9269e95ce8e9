"""Compiled (numba) transport kernel of the EM cascade Monte Carlo.

One call of :func:`run_shower` simulates one shower: a LIFO stack of photons,
electrons and positrons is transported through the planar slab stack with the
per-material tables of :mod:`physgen.simulate.cascade_physics`. Steps never cross
a slab boundary, so deposits are attributed to the right slab (0.3 mm Si
included). The random numbers come from a xoshiro256** generator seeded by
splitmix64 from the 64-bit shower seed, so a seed gives the same shower in any
process.

All compiled helpers live in this one file on purpose: numba's on-disk cache is
invalidated by edits to the file of the cached function only, so splitting the
samplers into another module could leave a stale compiled kernel behind.

Particle types: 0 photon, 1 electron, 2 positron. Energies are kinetic, MeV;
lengths mm.

Parameter vector ``params`` (float64): [0] electron/positron tracking cut,
[1] photon cut, [2] brems photon cut k_cut, [3] max step in X0, [4] max fractional
continuous loss per step, [5] LPM (Migdal) suppression flag (1/0), [6] energy above which a created
charged track is counted in the diagnostics.

Statistics vector ``stats`` (float64, 8): [0] energy leaving through the front
(z < 0), [1] leaving through the back, [2] charged tracks created above params[6],
[3] total charged track length (mm), [4] number of charged steps, [5] total deposited
energy, [6] all charged tracks, [7] photons created, [8] depth (z, mm) of the first
interaction of a primary photon, [9] total-energy fraction of the electron if that
interaction was a conversion (else -1), [10:13] direction and [13:15] x, y (mm) of the
primary when it leaves the stack through either face (zero if it does not).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["N_STATS", "mean_brems_y", "run_shower"]

N_STATS = 16
#: Energy grid of all tables: ln(E/MeV) from ln(1e-3) in steps of ln(10)/100, 1 keV - 10 TeV.
#: (Defined here, not in cascade_physics, so that a change invalidates numba's cache.)
GRID_LN_E0 = math.log(1.0e-3)
GRID_DLN_E = math.log(10.0) / 100.0
GRID_N = 1001
#: Upper bound of the brems screening ratio (rejection-sampling envelope).
BREMS_RATIO_MAX = 1.03
ME = 0.51099895
_LN0 = GRID_LN_E0
_DLN = GRID_DLN_E
_NG = GRID_N
_INF = 1.0e30
_RATIO_MAX = BREMS_RATIO_MAX
_ALPHA = 1.0 / 137.035999084

_U7 = np.uint64(7)
_U57 = np.uint64(57)
_U17 = np.uint64(17)
_U45 = np.uint64(45)
_U19 = np.uint64(19)
_U11 = np.uint64(11)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U5 = np.uint64(5)
_U9 = np.uint64(9)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SM1 = np.uint64(0xBF58476D1CE4E5B9)
_SM2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)  # type: ignore[misc]
def _seed_state(seed: int, state: np.ndarray) -> None:
    x = np.uint64(seed)
    for i in range(4):
        x = x + _GOLDEN
        z = x
        z = (z ^ (z >> _U30)) * _SM1
        z = (z ^ (z >> _U27)) * _SM2
        state[i] = z ^ (z >> _U31)


@njit(cache=True)  # type: ignore[misc]
def _rand(s: np.ndarray) -> float:
    """Uniform in [0, 1) from xoshiro256**."""
    s1 = s[1]
    r = s1 * _U5
    r = ((r << _U7) | (r >> _U57)) * _U9
    t = s1 << _U17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << _U45) | (s[3] >> _U19)
    return float(r >> _U11) * (1.0 / 9007199254740992.0)


@njit(cache=True)  # type: ignore[misc]
def _rexp(s: np.ndarray) -> float:
    """Standard exponential variate."""
    return -math.log(1.0 - _rand(s))


@njit(cache=True)  # type: ignore[misc]
def _rnorm(s: np.ndarray) -> float:
    u1 = 1.0 - _rand(s)
    u2 = _rand(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)  # type: ignore[misc]
def _interp(tab: np.ndarray, m: int, e: float) -> float:
    f = (math.log(e) - _LN0) / _DLN
    if f <= 0.0:
        return float(tab[m, 0])
    i = int(f)
    if i >= _NG - 1:
        return float(tab[m, _NG - 1])
    w = f - i
    return float(tab[m, i] * (1.0 - w) + tab[m, i + 1] * w)


@njit(cache=True)  # type: ignore[misc]
def _frame(ux: float, uy: float, uz: float) -> tuple[float, float, float, float, float, float]:
    """Two unit vectors perpendicular to u (and to each other)."""
    den = math.sqrt(max(ux * ux + uy * uy, 0.0))
    if den < 1e-8:
        return 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    return ux * uz / den, uy * uz / den, -den, -uy / den, ux / den, 0.0


@njit(cache=True)  # type: ignore[misc]
def _rotate(ux: float, uy: float, uz: float, cost: float, phi: float) -> tuple[float, float, float]:
    sint = math.sqrt(max(0.0, 1.0 - cost * cost))
    a1, a2, a3, b1, b2, b3 = _frame(ux, uy, uz)
    cp, sp = math.cos(phi), math.sin(phi)
    nx = cost * ux + sint * (cp * a1 + sp * b1)
    ny = cost * uy + sint * (cp * a2 + sp * b2)
    nz = cost * uz + sint * (cp * a3 + sp * b3)
    n = math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx / n, ny / n, nz / n


@njit(cache=True)  # type: ignore[misc]
def _isotropic(s: np.ndarray) -> tuple[float, float, float]:
    c = 2.0 * _rand(s) - 1.0
    ph = 2.0 * math.pi * _rand(s)
    st = math.sqrt(max(0.0, 1.0 - c * c))
    return st * math.cos(ph), st * math.sin(ph), c


@njit(cache=True)  # type: ignore[misc]
def _coulomb_f(z: float) -> float:
    a2 = (_ALPHA * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2 * a2 - 0.002 * a2**3)


@njit(cache=True)  # type: ignore[misc]
def _screen(delta: float) -> tuple[float, float]:
    if delta <= 1.0:
        return (
            20.867 - 3.242 * delta + 0.625 * delta * delta,
            20.209 - 1.930 * delta - 0.086 * delta * delta,
        )
    v = 21.12 - 4.184 * math.log(delta + 0.952)
    return v, v


@njit(cache=True)  # type: ignore[misc]
def brems_screening_ratio(z: float, etot: float, k: float) -> float:
    """Screened Bethe-Heitler / complete-screening brems (<= 1.03, see cascade_physics)."""
    y = min(k / etot, 1.0 - 1e-12)
    delta = 136.0 * ME / z ** (1.0 / 3.0) * k / (etot * max(etot - k, 1e-12))
    c = math.log(z) / 3.0 + _coulomb_f(z)
    p1, p2 = _screen(delta)
    q1, _ = _screen(0.0)
    a = 1.0 + (1.0 - y) ** 2
    b = 2.0 / 3.0 * (1.0 - y)
    num = a * max(p1 / 4.0 - c, 0.0) - b * max(p2 / 4.0 - c, 0.0)
    den = (a - b) * (q1 / 4.0 - c)
    return min(max(num / den, 0.0), _RATIO_MAX)


@njit(cache=True)  # type: ignore[misc]
def sample_pair_eps(k: float, z: float, s: np.ndarray) -> float:
    """Total-energy fraction of one lepton in a conversion (Bethe-Heitler, Butcher-Messel)."""
    eps0 = ME / k
    if k < 2.0:
        return eps0 + (0.5 - eps0) * _rand(s)
    fc = _coulomb_f(z) if k > 50.0 else 0.0
    lnz3 = math.log(z) / 3.0
    z13 = z ** (1.0 / 3.0)
    dmin = 136.0 / z13 * eps0 * 4.0
    p1, p2 = _screen(dmin)
    fmax = max(p1 / 4.0 - lnz3 - fc, 0.0) + max(p2 / 4.0 - lnz3 - fc, 0.0) / 6.0
    for _ in range(1000):
        e = eps0 + (0.5 - eps0) * _rand(s)
        d = 136.0 / z13 * eps0 / (e * (1.0 - e))
        p1, p2 = _screen(d)
        f = (e * e + (1.0 - e) ** 2) * max(p1 / 4.0 - lnz3 - fc, 0.0) + (2.0 / 3.0) * e * (
            1.0 - e
        ) * max(p2 / 4.0 - lnz3 - fc, 0.0)
        if _rand(s) * fmax <= f:
            return e
    return 0.5


@njit(cache=True)  # type: ignore[misc]
def sample_compton(e: float, s: np.ndarray) -> tuple[float, float]:
    """Klein-Nishina (Butcher-Messel): returns (E'/E, cos theta of the photon)."""
    k = e / ME
    eps0 = 1.0 / (1.0 + 2.0 * k)
    eps0sq = eps0 * eps0
    a1 = -math.log(eps0)
    a2 = a1 + 0.5 * (1.0 - eps0sq)
    eps = 1.0
    onecost = 0.0
    for _ in range(1000):
        if a1 > a2 * _rand(s):
            eps = math.exp(-a1 * _rand(s))
            epssq = eps * eps
        else:
            epssq = eps0sq + (1.0 - eps0sq) * _rand(s)
            eps = math.sqrt(epssq)
        onecost = (1.0 - eps) / (eps * k)
        sint2 = onecost * (2.0 - onecost)
        if 1.0 - eps * sint2 / (1.0 + epssq) >= _rand(s):
            break
    return eps, 1.0 - onecost


@njit(cache=True)  # type: ignore[misc]
def sample_brems_y(ycut: float, s: np.ndarray) -> float:
    """y = k/T from (1/y)(4/3 - 4/3 y + y^2) on [ycut, 1]."""
    for _ in range(10000):
        y = ycut ** _rand(s)
        if _rand(s) * (4.0 / 3.0) <= 4.0 / 3.0 - 4.0 / 3.0 * y + y * y:
            return float(y)
    return ycut


@njit(cache=True)  # type: ignore[misc]
def _migdal_acceptance(y: float, etot: float, e_lpm: float, z: float) -> float:
    """Migdal (LPM) brems cross section / complete-screening one, clamped to <= 1.

    s = sqrt(E_LPM k / (8 E (E - k) xi)); phi, G from the Stanev et al. fits, xi(s)
    interpolating between 2 (s < s1) and 1 (s > 1), s1 = (Z^1/3 / 184.15)^2.
    """
    k = y * etot
    s2 = e_lpm * k / (8.0 * etot * max(etot - k, 1e-12))
    if s2 > 4.0:
        return 1.0
    s = math.sqrt(s2)
    s1 = (z ** (1.0 / 3.0) / 184.15) ** 2
    if s < s1:
        xi = 2.0
    elif s < 1.0:
        xi = 1.0 + math.log(s) / math.log(s1)
    else:
        xi = 1.0
    s = math.sqrt(s2 / xi)
    phi = 1.0 - math.exp(
        -6.0 * s * (1.0 + (3.0 - math.pi) * s) + s**3 / (0.623 + 0.796 * s + 0.658 * s * s)
    )
    psi = 1.0 - math.exp(
        -4.0 * s - 8.0 * s * s / (1.0 + 3.936 * s + 4.97 * s * s - 0.05 * s**3 + 7.5 * s**4)
    )
    g = max(3.0 * psi - 2.0 * phi, 0.0)
    b = 2.0 * (1.0 + (1.0 - y) ** 2)
    return min(1.0, xi * (y * y * g + b * phi) / (y * y + b))


@njit(cache=True)  # type: ignore[misc]
def _theta0sq(step: float, t: float, x0: float) -> float:
    """Highland theta0^2 (projected, rad^2) of an e+/e- of kinetic energy t over ``step``."""
    if step <= 0.0:
        return 0.0
    pc = math.sqrt(t * (t + 2.0 * ME))
    beta2 = pc * pc / ((t + ME) ** 2)
    xr = step / x0
    corr = max(1.0 + 0.038 * math.log(max(xr / beta2, 1e-3)), 0.5)
    th0 = 13.6 / (pc * math.sqrt(beta2)) * math.sqrt(xr) * corr
    return th0 * th0


@njit(cache=True)  # type: ignore[misc]
def _geom(step: float, c: float) -> float:
    """Mean displacement along the initial direction after a true path ``step``."""
    q = c * step
    if q < 1e-6:
        return step * (1.0 - 0.5 * q)
    return step * (1.0 - math.exp(-q)) / q


@njit(cache=True)  # type: ignore[misc]
def mean_brems_y(ycut: float, n: int, seed: int, t: float, z: float) -> float:
    """Mean y = k/t of ``n`` photons from the kernel's screened brems sampler.

    Args:
        ycut: k_cut / t.
        n: Number of photons.
        seed: RNG seed.
        t: Electron kinetic energy (MeV).
        z: Atomic number for the screening functions.
    """
    s = np.zeros(4, dtype=np.uint64)
    _seed_state(seed, s)
    acc = 0.0
    for _ in range(n):
        y = sample_brems_y(ycut, s)
        for _j in range(1000):
            if _rand(s) * _RATIO_MAX <= brems_screening_ratio(z, t + ME, y * t):
                break
            y = sample_brems_y(ycut, s)
        acc += y
    return acc / n


@njit(cache=True)  # type: ignore[misc]
def _deposit(slab, x, y, e, slab_e, active, readout, dl, dx, dy, de, cnt):  # type: ignore[no-untyped-def]
    slab_e[slab] += e
    if active[slab] and readout[slab] >= 0 and e > 0.0:
        n = cnt[0]
        if n < de.shape[0]:
            dl[n] = readout[slab]
            dx[n] = x
            dy[n] = y
            de[n] = e
        cnt[0] = n + 1


@njit(cache=True)  # type: ignore[misc]
def run_shower(  # type: ignore[no-untyped-def]
    ptype0,
    e0,
    seed,
    z_edges,
    slab_mat,
    active,
    readout,
    mu_photo,
    mu_compt,
    mu_pair,
    dedx_em,
    dedx_ep,
    brems_rate,
    x0,
    pair_z,
    e_lpm,
    params,
    st_t,
    st_f,
    slab_e,
    dl,
    dx,
    dy,
    de,
    stats,
):
    """Simulate one shower; see the module docstring for the arguments.

    ``st_t`` (int64) and ``st_f`` (float64, ``(cap, 7)``: E, x, y, z, ux, uy, uz) are
    the particle stack; ``dl, dx, dy, de`` the active-deposit buffer. Returns the
    number of active deposits (may exceed the buffer: then call again with a larger
    one), or -1 if the particle stack overflowed.
    """
    rs = np.zeros(4, dtype=np.uint64)
    _seed_state(seed, rs)
    cnt = np.zeros(1, dtype=np.int64)
    slab_e[:] = 0.0
    stats[:] = 0.0
    e_cut, g_cut, k_cut = params[0], params[1], params[2]
    max_step_x0, loss_frac, lpm, count_cut = params[3], params[4], params[5] > 0.5, params[6]
    n_slabs = slab_mat.shape[0]
    zmax = z_edges[n_slabs]
    cap = st_t.shape[0]
    sp = 0
    st_t[0] = ptype0
    st_f[0, 0] = e0
    st_f[0, 1] = 0.0
    st_f[0, 2] = 0.0
    st_f[0, 3] = 0.0
    st_f[0, 4] = 0.0
    st_f[0, 5] = 0.0
    st_f[0, 6] = 1.0
    sp = 1
    if ptype0 != 0:
        stats[6] += 1.0
        if e0 > count_cut:
            stats[2] += 1.0
    stats[9] = -1.0
    first = True
    while sp > 0:
        sp -= 1
        primary = first
        first = False
        pt = st_t[sp]
        en = st_f[sp, 0]
        x, y, z = st_f[sp, 1], st_f[sp, 2], st_f[sp, 3]
        ux, uy, uz = st_f[sp, 4], st_f[sp, 5], st_f[sp, 6]
        # locate the slab (particles are created inside the stack)
        lo, hi = 0, n_slabs
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if z_edges[mid] <= z:
                lo = mid
            else:
                hi = mid
        slab = lo
        if z == z_edges[slab] and uz < 0.0 and slab > 0:
            slab -= 1
        alive = True
        if pt == 0:
            # ---------------------------------------------------------- photon
            while alive:
                if en <= g_cut:
                    _deposit(slab, x, y, en, slab_e, active, readout, dl, dx, dy, de, cnt)
                    break
                m = slab_mat[slab]
                mp = _interp(mu_photo, m, en)
                mc = _interp(mu_compt, m, en)
                mpp = _interp(mu_pair, m, en)
                mu = mp + mc + mpp
                sint = _rexp(rs) / mu
                if uz > 0.0:
                    sb = (z_edges[slab + 1] - z) / uz
                elif uz < 0.0:
                    sb = (z_edges[slab] - z) / uz
                else:
                    sb = _INF
                if sb < sint:
                    x += sb * ux
                    y += sb * uy
                    if uz > 0.0:
                        slab += 1
                        z = z_edges[slab] if slab < n_slabs else zmax
                    else:
                        z = z_edges[slab]
                        slab -= 1
                    if slab < 0 or slab >= n_slabs:
                        stats[0 if slab < 0 else 1] += en
                        if primary:
                            stats[10], stats[11], stats[12] = ux, uy, uz
                            stats[13], stats[14] = x, y
                        alive = False
                    continue
                x += sint * ux
                y += sint * uy
                z += sint * uz
                r = _rand(rs) * mu
                if primary:
                    stats[8] = z
                    primary = False
                    if r >= mp + mc:
                        stats[9] = -2.0  # filled below
                if r < mp:
                    if en > e_cut:
                        if sp >= cap:
                            return -1
                        vx, vy, vz = _isotropic(rs)
                        st_t[sp] = 1
                        st_f[sp, 0] = en
                        st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                        st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = vx, vy, vz
                        sp += 1
                        stats[6] += 1.0
                        if en > count_cut:
                            stats[2] += 1.0
                    else:
                        _deposit(slab, x, y, en, slab_e, active, readout, dl, dx, dy, de, cnt)
                    alive = False
                elif r < mp + mc:
                    eps, cost = sample_compton(en, rs)
                    e1 = eps * en
                    te = en - e1
                    phi = 2.0 * math.pi * _rand(rs)
                    nx, ny, nz = _rotate(ux, uy, uz, cost, phi)
                    if te > e_cut:
                        px, py, pz = en * ux - e1 * nx, en * uy - e1 * ny, en * uz - e1 * nz
                        pn = math.sqrt(px * px + py * py + pz * pz)
                        if sp >= cap:
                            return -1
                        st_t[sp] = 1
                        st_f[sp, 0] = te
                        st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                        st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = px / pn, py / pn, pz / pn
                        sp += 1
                        stats[6] += 1.0
                        if te > count_cut:
                            stats[2] += 1.0
                    else:
                        _deposit(slab, x, y, te, slab_e, active, readout, dl, dx, dy, de, cnt)
                    en = e1
                    ux, uy, uz = nx, ny, nz
                else:
                    eps = sample_pair_eps(en, pair_z[m], rs)
                    t1 = eps * en - ME
                    t2 = en - eps * en - ME
                    first_is_electron = _rand(rs) < 0.5
                    if stats[9] == -2.0:
                        stats[9] = eps if first_is_electron else 1.0 - eps
                    for j in range(2):
                        tt = t1 if j == 0 else t2
                        ptj = 1 if ((j == 0) == first_is_electron) else 2
                        if sp >= cap:
                            return -1
                        st_t[sp] = ptj
                        st_f[sp, 0] = max(tt, 0.0)
                        st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                        st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = ux, uy, uz
                        sp += 1
                        stats[6] += 1.0
                        if tt > count_cut:
                            stats[2] += 1.0
                    alive = False
            continue
        # -------------------------------------------------------------- e-/e+
        dedx = dedx_em if pt == 1 else dedx_ep
        while alive:
            if en <= e_cut:
                _deposit(slab, x, y, en, slab_e, active, readout, dl, dx, dy, de, cnt)
                break
            m = slab_mat[slab]
            sdedx = _interp(dedx, m, en)
            rate = _interp(brems_rate, m, en)
            s_loss = loss_frac * en / sdedx
            if en * (1.0 - loss_frac) < e_cut:
                s_loss = en / sdedx
            s_max = max_step_x0 * x0[m]
            s_br = _rexp(rs) / rate if rate > 0.0 else _INF
            if uz > 0.0:
                sb = (z_edges[slab + 1] - z) / uz
            elif uz < 0.0:
                sb = (z_edges[slab] - z) / uz
            else:
                sb = _INF
            if sb < 0.0:
                sb = 0.0
            step = min(s_loss, s_max, s_br)
            brems_limited = s_br <= min(s_loss, s_max)
            stats[4] += 1.0
            # true path -> geometric displacement along u: g = s (1 - e^-q) / q with
            # q = theta0^2(s) the mean (1 - cos) of the step (transport-path correction)
            d_e = sdedx * step
            q = _theta0sq(step, max(en - 0.5 * min(d_e, en), 1e-3), x0[m])
            c = q / step if step > 0.0 else 0.0
            g = _geom(step, c)
            at_boundary = False
            if sb <= g:
                at_boundary = True
                if c * step > 1e-9:
                    step = -math.log(1.0 - min(c * sb, 1.0 - 1e-12)) / c
                else:
                    step = sb
                g = sb
            do_brems = brems_limited and not at_boundary
            d_e = sdedx * step
            if d_e < en:
                d_e = _interp(dedx, m, en - 0.5 * d_e) * step
            if d_e >= en:
                # ranges out inside this step
                sr = step * en / max(d_e, 1e-300)
                gr = _geom(sr, c)
                _deposit(
                    slab,
                    x + 0.5 * gr * ux,
                    y + 0.5 * gr * uy,
                    en,
                    slab_e,
                    active,
                    readout,
                    dl,
                    dx,
                    dy,
                    de,
                    cnt,
                )
                stats[3] += sr
                x += gr * ux
                y += gr * uy
                z += gr * uz
                en = 0.0
                break
            tmid = en - 0.5 * d_e
            _deposit(
                slab,
                x + 0.5 * g * ux,
                y + 0.5 * g * uy,
                d_e,
                slab_e,
                active,
                readout,
                dl,
                dx,
                dy,
                de,
                cnt,
            )
            stats[3] += step
            en -= d_e
            x += g * ux
            y += g * uy
            if at_boundary:
                if uz > 0.0:
                    slab += 1
                    z = z_edges[slab] if slab < n_slabs else zmax
                else:
                    z = z_edges[slab]
                    slab -= 1
            else:
                z += g * uz
            # multiple scattering (Highland, generalised to large angles)
            if step > 0.0:
                th2 = _theta0sq(step, tmid, x0[m])
                ex = math.exp(-2.0 / th2) if th2 > 0.02 else 0.0
                u = -th2 * math.log(1.0 - _rand(rs) * (1.0 - ex))
                cost = max(1.0 - u, -1.0)
                phi = 2.0 * math.pi * _rand(rs)
                sinth = math.sqrt(max(0.0, 1.0 - cost * cost))
                if not at_boundary and 0 <= slab < n_slabs:
                    a1, a2, a3, b1, b2, b3 = _frame(ux, uy, uz)
                    thc = min(math.sqrt(th2), 1.0)
                    d1 = g * (0.5 * sinth * math.cos(phi) + thc * _rnorm(rs) * 0.28867513)
                    d2 = g * (0.5 * sinth * math.sin(phi) + thc * _rnorm(rs) * 0.28867513)
                    nzp = z + d1 * a3 + d2 * b3
                    if z_edges[slab] < nzp < z_edges[slab + 1]:
                        x += d1 * a1 + d2 * b1
                        y += d1 * a2 + d2 * b2
                        z = nzp
                ux, uy, uz = _rotate(ux, uy, uz, cost, phi)
            if slab < 0 or slab >= n_slabs:
                stats[0 if slab < 0 else 1] += en + (2.0 * ME if pt == 2 else 0.0)
                if primary:
                    stats[10], stats[11], stats[12] = ux, uy, uz
                    stats[13], stats[14] = x, y
                alive = False
                en = 0.0
                break
            if do_brems and en > k_cut:
                yv = sample_brems_y(k_cut / en, rs)
                for _ in range(1000):
                    if _rand(rs) * _RATIO_MAX <= brems_screening_ratio(pair_z[m], en + ME, yv * en):
                        break
                    yv = sample_brems_y(k_cut / en, rs)
                keep = True
                if keep and lpm:
                    acc = _migdal_acceptance(yv, en + ME, e_lpm[m], pair_z[m])
                    if acc < 1.0 and _rand(rs) > acc:
                        keep = False
                if keep:
                    k = yv * en
                    en -= k
                    if sp >= cap:
                        return -1
                    st_t[sp] = 0
                    st_f[sp, 0] = k
                    st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                    st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = ux, uy, uz
                    sp += 1
                    stats[7] += 1.0
        if pt == 2 and alive:
            # positron at rest: two back-to-back 511 keV photons
            if g_cut >= ME:
                _deposit(slab, x, y, 2.0 * ME, slab_e, active, readout, dl, dx, dy, de, cnt)
            else:
                vx, vy, vz = _isotropic(rs)
                for j in range(2):
                    if sp >= cap:
                        return -1
                    sgn = 1.0 if j == 0 else -1.0
                    st_t[sp] = 0
                    st_f[sp, 0] = ME
                    st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                    st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = sgn * vx, sgn * vy, sgn * vz
                    sp += 1
                    stats[7] += 1.0
    stats[5] = slab_e.sum()
    if stats[9] == -2.0:
        stats[9] = -1.0
    return cnt[0]
