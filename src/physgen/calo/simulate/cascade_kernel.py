"""Compiled (numba) transport kernel of the EM cascade Monte Carlo.

One call of :func:`run_shower` simulates one shower: a LIFO stack of photons,
electrons and positrons is transported through the planar slab stack with the
per-material tables of :mod:`physgen.calo.simulate.cascade_physics`. Steps never cross
a slab boundary, so deposits are attributed to the right slab (0.3 mm Si
included). The random numbers come from a xoshiro256** generator seeded by
splitmix64 from the 64-bit shower seed, so a seed gives the same shower in any
process.

All compiled helpers live in this one file on purpose: numba's on-disk cache is
invalidated by edits to the file of the cached function only, so splitting the
samplers into another module could leave a stale compiled kernel behind.

Per-material tables (see :class:`physgen.calo.simulate.cascade_physics.MaterialTables`) are
interpolated linearly in ln T on the common grid ``GRID_*``: ``mu_photo, mu_compt,
mu_pair, brems_rate`` are ``(n_materials, GRID_N)``; the charge-dependent ``dedx``
(continuous loss), ``range_e`` (CSDA range) and ``blam_e`` (discrete-brems interaction
lengths to rest) are ``(2 n_materials, GRID_N)``, electron rows first, then positron rows.

Particle types: 0 photon, 1 electron, 2 positron. Energies are kinetic, MeV;
lengths mm.

Parameter vector ``params`` (float64): [0] electron/positron tracking cut,
[1] photon cut, [2] brems photon cut k_cut, [3] max step in X0, [4] max fractional
continuous loss per step, [5] LPM (Migdal) suppression flag (1/0), [6] energy above
which a created charged track is counted in the diagnostics, [7] final range (mm): an
e+/e- whose CSDA range is at most this, at most the max step and at most the distance
to the nearest slab face (so it cannot leave its slab) is finished in one step, unless
the integral method places a discrete brems emission before the end of its range (then
it steps exactly there). New entries are appended, so the indices stay stable.

Transport. Photons carry their remaining number of mean free paths across slab faces
(one exponential draw per interaction). An e+/e- step starts with one ln T shared by all
table look-ups; away from the range-out case above, the step is the smallest of the
max-loss-fraction step, the max step, the sampled discrete-brems distance and the slab
face, with the energy loss at the mid-step stopping power, a Highland deflection
(generalised to large angles) and a correlated lateral displacement.

Statistics vector ``stats`` (float64, ``N_STATS``): [0] energy leaving through the front
(z < 0), [1] leaving through the back, [2] charged tracks created above params[6],
[3] total charged track length (mm), [4] number of charged steps, [5] total deposited
energy, [6] all charged tracks, [7] photons created, [8] depth (z, mm) of the first
interaction of a primary photon, [9] total-energy fraction of the electron if that
interaction was a conversion (else -1), [10:13] direction and [13:15] x, y (mm) of the
primary when it leaves the stack through either face (zero if it does not).

The file is long on purpose: numba's on-disk cache (``cache=True``) is invalidated by a
change of the file that defines a function, not of the files its callees come from, so a
kernel split over modules would keep running stale machine code after an edit of a callee.
The random-number generator, the interaction samplers and the transport loop therefore
stay in one file.
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


# The generator state is a tuple of four uint64 passed by value and returned updated
# (``u, s = _rand(s)``): no array, so no reference counting in the hot loops.


@njit(cache=True)  # type: ignore[misc]
def _splitmix(x):  # type: ignore[no-untyped-def]
    z = x
    z = (z ^ (z >> _U30)) * _SM1
    z = (z ^ (z >> _U27)) * _SM2
    return z ^ (z >> _U31)


@njit(cache=True)  # type: ignore[misc]
def _seed_state(seed):  # type: ignore[no-untyped-def]
    """xoshiro256** state from a 64-bit seed (splitmix64)."""
    x = np.uint64(seed)
    x0 = x + _GOLDEN
    x1 = x0 + _GOLDEN
    x2 = x1 + _GOLDEN
    x3 = x2 + _GOLDEN
    return _splitmix(x0), _splitmix(x1), _splitmix(x2), _splitmix(x3)


@njit(cache=True)  # type: ignore[misc]
def _rand(s):  # type: ignore[no-untyped-def]
    """Uniform in [0, 1) from xoshiro256**; returns (u, new state)."""
    s0, s1, s2, s3 = s
    r = s1 * _U5
    r = ((r << _U7) | (r >> _U57)) * _U9
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U45) | (s3 >> _U19)
    return float(r >> _U11) * (1.0 / 9007199254740992.0), (s0, s1, s2, s3)


@njit(cache=True)  # type: ignore[misc]
def _rexp(s):  # type: ignore[no-untyped-def]
    """Standard exponential variate; returns (x, new state)."""
    u, s = _rand(s)
    return -math.log(1.0 - u), s


@njit(cache=True)  # type: ignore[misc]
def _normal_pair(s):  # type: ignore[no-untyped-def]
    """Two independent standard normal variates (Marsaglia's polar method), new state."""
    for _ in range(1000):
        u1, s = _rand(s)
        u2, s = _rand(s)
        v1 = 2.0 * u1 - 1.0
        v2 = 2.0 * u2 - 1.0
        r2 = v1 * v1 + v2 * v2
        if 0.0 < r2 < 1.0:
            f = math.sqrt(-2.0 * math.log(r2) / r2)
            return v1 * f, v2 * f, s
    return 0.0, 0.0, s


@njit(cache=True)  # type: ignore[misc]
def _azimuth(s):  # type: ignore[no-untyped-def]
    """(cos phi, sin phi) of a uniform azimuth by rejection in the unit disk, new state."""
    for _ in range(1000):
        u1, s = _rand(s)
        u2, s = _rand(s)
        v1 = 2.0 * u1 - 1.0
        v2 = 2.0 * u2 - 1.0
        r2 = v1 * v1 + v2 * v2
        if 1e-12 < r2 < 1.0:
            inv = 1.0 / math.sqrt(r2)
            return v1 * inv, v2 * inv, s
    return 1.0, 0.0, s


@njit(cache=True)  # type: ignore[misc]
def _grid_f(e: float) -> float:
    """Fractional index of ``e`` (MeV) on the table grid (unclamped)."""
    return (math.log(e) - _LN0) / _DLN


@njit(cache=True, inline="always")  # type: ignore[misc]
def _lerp(tab: np.ndarray, m: int, f: float) -> float:
    """Table row ``m`` at the fractional grid index ``f`` (clamped to the grid)."""
    if f <= 0.0:
        return float(tab[m, 0])
    i = int(f)
    if i >= _NG - 1:
        return float(tab[m, _NG - 1])
    w = f - i
    return float(tab[m, i] * (1.0 - w) + tab[m, i + 1] * w)


@njit(cache=True)  # type: ignore[misc]
def _log1m(x: float) -> float:
    """ln(1 - x) for 0 <= x < 1 (series below 0.1, error < 2e-8)."""
    if x < 0.1:
        return -(x + x * x * (0.5 + x * (1.0 / 3.0 + x * (0.25 + x * (0.2 + x / 6.0)))))
    return math.log(1.0 - x)


@njit(cache=True)  # type: ignore[misc]
def _frame(ux: float, uy: float, uz: float) -> tuple[float, float, float, float, float, float]:
    """Two unit vectors perpendicular to u (and to each other)."""
    den = math.sqrt(max(ux * ux + uy * uy, 0.0))
    if den < 1e-8:
        return 1.0, 0.0, 0.0, 0.0, 1.0, 0.0
    inv = 1.0 / den
    return ux * uz * inv, uy * uz * inv, -den, -uy * inv, ux * inv, 0.0


@njit(cache=True)  # type: ignore[misc]
def _turn(  # type: ignore[no-untyped-def]
    ux, uy, uz, cost, cp, sp, a1, a2, a3, b1, b2, b3
) -> tuple[float, float, float]:
    """Direction at polar angle acos(cost), azimuth (cp, sp) about u in the frame (a, b)."""
    sint = math.sqrt(max(0.0, 1.0 - cost * cost))
    nx = cost * ux + sint * (cp * a1 + sp * b1)
    ny = cost * uy + sint * (cp * a2 + sp * b2)
    nz = cost * uz + sint * (cp * a3 + sp * b3)
    inv = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx * inv, ny * inv, nz * inv


@njit(cache=True)  # type: ignore[misc]
def _isotropic(s):  # type: ignore[no-untyped-def]
    u1, s = _rand(s)
    u2, s = _rand(s)
    c = 2.0 * u1 - 1.0
    ph = 2.0 * math.pi * u2
    st = math.sqrt(max(0.0, 1.0 - c * c))
    return st * math.cos(ph), st * math.sin(ph), c, s


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
def sample_pair_eps(k, z, s):  # type: ignore[no-untyped-def]
    """Total-energy fraction of one lepton in a conversion (Bethe-Heitler, Butcher-Messel).

    ``s`` is the generator state; returns (fraction, new state).
    """
    eps0 = ME / k
    if k < 2.0:
        u, s = _rand(s)
        return eps0 + (0.5 - eps0) * u, s
    fc = _coulomb_f(z) if k > 50.0 else 0.0
    lnz3 = math.log(z) / 3.0
    z13 = z ** (1.0 / 3.0)
    dmin = 136.0 / z13 * eps0 * 4.0
    p1, p2 = _screen(dmin)
    fmax = max(p1 / 4.0 - lnz3 - fc, 0.0) + max(p2 / 4.0 - lnz3 - fc, 0.0) / 6.0
    for _ in range(1000):
        u, s = _rand(s)
        e = eps0 + (0.5 - eps0) * u
        d = 136.0 / z13 * eps0 / (e * (1.0 - e))
        p1, p2 = _screen(d)
        f = (e * e + (1.0 - e) ** 2) * max(p1 / 4.0 - lnz3 - fc, 0.0) + (2.0 / 3.0) * e * (
            1.0 - e
        ) * max(p2 / 4.0 - lnz3 - fc, 0.0)
        u, s = _rand(s)
        if u * fmax <= f:
            return e, s
    return 0.5, s


@njit(cache=True)  # type: ignore[misc]
def sample_compton(e, s):  # type: ignore[no-untyped-def]
    """Klein-Nishina (Butcher-Messel): returns (E'/E, cos theta of the photon, new state)."""
    k = e / ME
    eps0 = 1.0 / (1.0 + 2.0 * k)
    eps0sq = eps0 * eps0
    a1 = -math.log(eps0)
    a2 = a1 + 0.5 * (1.0 - eps0sq)
    eps = 1.0
    onecost = 0.0
    for _ in range(1000):
        u, s = _rand(s)
        u2, s = _rand(s)
        if a1 > a2 * u:
            eps = math.exp(-a1 * u2)
            epssq = eps * eps
        else:
            epssq = eps0sq + (1.0 - eps0sq) * u2
            eps = math.sqrt(epssq)
        onecost = (1.0 - eps) / (eps * k)
        sint2 = onecost * (2.0 - onecost)
        u, s = _rand(s)
        if 1.0 - eps * sint2 / (1.0 + epssq) >= u:
            break
    return eps, 1.0 - onecost, s


@njit(cache=True)  # type: ignore[misc]
def sample_brems_y(ycut, s):  # type: ignore[no-untyped-def]
    """y = k/T from (1/y)(4/3 - 4/3 y + y^2) on [ycut, 1]; returns (y, new state)."""
    for _ in range(10000):
        u, s = _rand(s)
        y = ycut**u
        u, s = _rand(s)
        if u * (4.0 / 3.0) <= 4.0 / 3.0 - 4.0 / 3.0 * y + y * y:
            return float(y), s
    return ycut, s


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
    # theta0 = 13.6 / (p beta) sqrt(x/X0) corr, squared without roots:
    # (p beta)^2 = p^4 / E^2 with p^2 = t (t + 2 m), E = t + m
    p2 = t * (t + 2.0 * ME)
    etot2 = (t + ME) * (t + ME)
    beta2 = p2 / etot2
    xr = step / x0
    corr = max(1.0 + 0.038 * math.log(max(xr / beta2, 1e-3)), 0.5)
    return 184.96 * etot2 / (p2 * p2) * xr * corr * corr


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
    s = _seed_state(seed)
    acc = 0.0
    for _ in range(n):
        y, s = sample_brems_y(ycut, s)
        for _j in range(1000):
            u, s = _rand(s)
            if u * _RATIO_MAX <= brems_screening_ratio(z, t + ME, y * t):
                break
            y, s = sample_brems_y(ycut, s)
        acc += y
    return acc / n


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
    dedx,
    brems_rate,
    range_e,
    blam_e,
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
    rs = _seed_state(seed)
    cnt = np.zeros(1, dtype=np.int64)

    def deposit(slab: int, x: float, y: float, e: float) -> None:
        # a closure: numba inlines it without re-binding (and reference counting) the arrays
        slab_e[slab] += e
        if active[slab] and readout[slab] >= 0 and e > 0.0:
            n = cnt[0]
            if n < de.shape[0]:
                dl[n] = readout[slab]
                dx[n] = x
                dy[n] = y
                de[n] = e
            cnt[0] = n + 1

    slab_e[:] = 0.0
    stats[:] = 0.0
    e_cut, g_cut, k_cut = params[0], params[1], params[2]
    max_step_x0, loss_frac, lpm, count_cut = params[3], params[4], params[5] > 0.5, params[6]
    final_range = params[7]
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
            # fg: grid index of the current energy; n_mfp: mean free paths left to
            # the next interaction (carried across slab faces)
            fg = 0.0
            n_mfp = 0.0
            if en > g_cut:
                fg = _grid_f(en)
                n_mfp, rs = _rexp(rs)
            while alive:
                if en <= g_cut:
                    deposit(slab, x, y, en)
                    break
                m = slab_mat[slab]
                mp = _lerp(mu_photo, m, fg)
                mc = _lerp(mu_compt, m, fg)
                mpp = _lerp(mu_pair, m, fg)
                mu = mp + mc + mpp
                sint = n_mfp / mu
                if uz > 0.0:
                    sb = (z_edges[slab + 1] - z) / uz
                elif uz < 0.0:
                    sb = (z_edges[slab] - z) / uz
                else:
                    sb = _INF
                if sb < sint:
                    n_mfp -= sb * mu
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
                r, rs = _rand(rs)
                r *= mu
                if primary:
                    stats[8] = z
                    primary = False
                    if r >= mp + mc:
                        stats[9] = -2.0  # filled below
                if r < mp:
                    if en > e_cut:
                        if sp >= cap:
                            return -1
                        vx, vy, vz, rs = _isotropic(rs)
                        st_t[sp] = 1
                        st_f[sp, 0] = en
                        st_f[sp, 1], st_f[sp, 2], st_f[sp, 3] = x, y, z
                        st_f[sp, 4], st_f[sp, 5], st_f[sp, 6] = vx, vy, vz
                        sp += 1
                        stats[6] += 1.0
                        if en > count_cut:
                            stats[2] += 1.0
                    else:
                        deposit(slab, x, y, en)
                    alive = False
                elif r < mp + mc:
                    eps, cost, rs = sample_compton(en, rs)
                    e1 = eps * en
                    te = en - e1
                    cp, sp_, rs = _azimuth(rs)
                    a1, a2, a3, b1, b2, b3 = _frame(ux, uy, uz)
                    nx, ny, nz = _turn(ux, uy, uz, cost, cp, sp_, a1, a2, a3, b1, b2, b3)
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
                        deposit(slab, x, y, te)
                    en = e1
                    ux, uy, uz = nx, ny, nz
                    if en > g_cut:
                        fg = _grid_f(en)
                        n_mfp, rs = _rexp(rs)
                else:
                    eps, rs = sample_pair_eps(en, pair_z[m], rs)
                    t1 = eps * en - ME
                    t2 = en - eps * en - ME
                    u, rs = _rand(rs)
                    first_is_electron = u < 0.5
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
        # rows of the e+/e- tables: [0, n_mat) electrons, [n_mat, 2 n_mat) positrons
        row_off = 0 if pt == 1 else brems_rate.shape[0]
        while alive:
            if en <= e_cut:
                deposit(slab, x, y, en)
                break
            m = slab_mat[slab]
            me = m + row_off
            fg = _grid_f(en)
            sdedx = _lerp(dedx, me, fg)
            rate = _lerp(brems_rate, m, fg)
            # discrete-brems interaction lengths to the next emission
            n_lam = _INF
            if rate > 0.0:
                n_lam, rs = _rexp(rs)
            s_max = max_step_x0 * x0[m]
            zlo = z_edges[slab]
            zhi = z_edges[slab + 1]
            stats[4] += 1.0
            rng = _lerp(range_e, me, fg)
            if rng <= final_range and rng <= s_max and rng <= min(z - zlo, zhi - z):
                # ------------------------------------------------ cannot leave the slab
                lam = _lerp(blam_e, me, fg)
                if n_lam >= lam:
                    # no discrete brems before rest: the whole range in one step
                    q = _theta0sq(rng, 0.5 * en, x0[m])
                    gr = _geom(rng, q / rng) if rng > 0.0 else 0.0
                    deposit(slab, x + 0.5 * gr * ux, y + 0.5 * gr * uy, en)
                    stats[3] += rng
                    x += gr * ux
                    y += gr * uy
                    z += gr * uz
                    en = 0.0
                    break
                # emission where the interaction lengths left to rest equal lam - n_lam
                target = lam - n_lam
                jlo = 0
                jhi = min(max(int(fg), 0), _NG - 2) + 1
                while jhi - jlo > 1:
                    jm = (jlo + jhi) // 2
                    if blam_e[me, jm] <= target:
                        jlo = jm
                    else:
                        jhi = jm
                dlam = blam_e[me, jlo + 1] - blam_e[me, jlo]
                tw = min(max((target - blam_e[me, jlo]) / dlam, 0.0), 1.0) if dlam > 0.0 else 0.0
                e_em = min(math.exp(_LN0 + (jlo + tw) * _DLN), en)
                r_em = range_e[me, jlo] * (1.0 - tw) + range_e[me, jlo + 1] * tw
                step = max(rng - r_em, 0.0)
                d_e = en - e_em
                th2 = _theta0sq(step, en - 0.5 * d_e, x0[m])
                g = _geom(step, th2 / step) if step > 0.0 else 0.0
                at_boundary = False
                do_brems = True
            else:
                # ------------------------------------------------------- normal step
                s_loss = loss_frac * en / sdedx
                if en * (1.0 - loss_frac) < e_cut:
                    s_loss = en / sdedx
                s_br = n_lam / rate if rate > 0.0 else _INF
                if uz > 0.0:
                    sb = (zhi - z) / uz
                elif uz < 0.0:
                    sb = (zlo - z) / uz
                else:
                    sb = _INF
                if sb < 0.0:
                    sb = 0.0
                step = min(s_loss, s_max, s_br)
                brems_limited = s_br <= min(s_loss, s_max)
                # energy loss with the mid-step stopping power
                d_e = sdedx * step
                if d_e < en:
                    d_e = _lerp(dedx, me, fg + _log1m(0.5 * d_e / en) / _DLN) * step
                # true path -> geometric displacement along u: g = s (1 - e^-q) / q with
                # q = theta0^2(s) the mean (1 - cos) of the step (transport-path correction)
                th2 = _theta0sq(step, max(en - 0.5 * min(d_e, en), 1e-3), x0[m])
                c = th2 / step if step > 0.0 else 0.0
                g = _geom(step, c)
                at_boundary = False
                if sb <= g:
                    at_boundary = True
                    if c * step > 1e-9:
                        step = -math.log(1.0 - min(c * sb, 1.0 - 1e-12)) / c
                    else:
                        step = sb
                    g = sb
                    d_e = sdedx * step
                    if d_e < en:
                        d_e = _lerp(dedx, me, fg + _log1m(0.5 * d_e / en) / _DLN) * step
                    th2 = _theta0sq(step, max(en - 0.5 * min(d_e, en), 1e-3), x0[m])
                do_brems = brems_limited and not at_boundary
                if d_e >= en:
                    # ranges out inside this step
                    sr = step * en / max(d_e, 1e-300)
                    gr = _geom(sr, c)
                    deposit(slab, x + 0.5 * gr * ux, y + 0.5 * gr * uy, en)
                    stats[3] += sr
                    x += gr * ux
                    y += gr * uy
                    z += gr * uz
                    en = 0.0
                    break
            deposit(slab, x + 0.5 * g * ux, y + 0.5 * g * uy, d_e)
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
            # multiple scattering (Highland at the mid-step energy, generalised to large
            # angles) with a correlated lateral displacement
            if step > 0.0:
                ex = math.exp(-2.0 / th2) if th2 > 0.02 else 0.0
                u, rs = _rand(rs)
                u = -th2 * math.log(1.0 - u * (1.0 - ex))
                cost = max(1.0 - u, -1.0)
                cp, sp_, rs = _azimuth(rs)
                a1, a2, a3, b1, b2, b3 = _frame(ux, uy, uz)
                if not at_boundary and 0 <= slab < n_slabs:
                    sinth = math.sqrt(max(0.0, 1.0 - cost * cost))
                    thc = min(math.sqrt(th2), 1.0) * 0.28867513
                    n1, n2, rs = _normal_pair(rs)
                    d1 = g * (0.5 * sinth * cp + thc * n1)
                    d2 = g * (0.5 * sinth * sp_ + thc * n2)
                    nzp = z + d1 * a3 + d2 * b3
                    if z_edges[slab] < nzp < z_edges[slab + 1]:
                        x += d1 * a1 + d2 * b1
                        y += d1 * a2 + d2 * b2
                        z = nzp
                ux, uy, uz = _turn(ux, uy, uz, cost, cp, sp_, a1, a2, a3, b1, b2, b3)
            if slab < 0 or slab >= n_slabs:
                stats[0 if slab < 0 else 1] += en + (2.0 * ME if pt == 2 else 0.0)
                if primary:
                    stats[10], stats[11], stats[12] = ux, uy, uz
                    stats[13], stats[14] = x, y
                alive = False
                en = 0.0
                break
            if do_brems and en > k_cut:
                yv, rs = sample_brems_y(k_cut / en, rs)
                for _ in range(1000):
                    u, rs = _rand(rs)
                    if u * _RATIO_MAX <= brems_screening_ratio(pair_z[m], en + ME, yv * en):
                        break
                    yv, rs = sample_brems_y(k_cut / en, rs)
                keep = True
                if keep and lpm:
                    acc = _migdal_acceptance(yv, en + ME, e_lpm[m], pair_z[m])
                    if acc < 1.0:
                        u, rs = _rand(rs)
                        keep = u <= acc
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
                deposit(slab, x, y, 2.0 * ME)
            else:
                vx, vy, vz, rs = _isotropic(rs)
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
