"""Sampling-calorimeter optimisation with the differentiable GFlash, checked by brute force.

**Problem.** A sampling calorimeter of fixed total depth ``D`` (radiation lengths of the
stack, default 25 X0) is a stack of absorber (default lead) and active (default liquid argon,
``d_active`` = 4 mm fixed) layers; the free parameter is the thickness ratio
``r = d_absorber / d_active``. Find the cheapest ``r`` whose energy resolution
``sigma_E / E`` at the reference energies (default 10 GeV electrons) is at most ``target``.

**Cost model** (:meth:`CalorimeterDesign.cost`, in litres of absorber-equivalent volume): a
cylindrical tower of radius ``k R_M`` (``k`` = ``containment_rm`` = 2: about 95 % lateral
containment, em-showers.md 3.2) and depth ``D X0_eff``, whose active material costs
``cost_ratio`` (10) times the absorber per unit volume::

    cost = pi (k R_M)^2 * D X0_eff * (r + cost_ratio) / (1 + r)  / 1e6   [mm^3 -> litres]

More absorber makes the stack shorter (smaller X0_eff), narrower (smaller R_M) and poorer in
active material: the cost falls monotonically with ``r`` while the sampling term
``c_s = 0.027 sqrt(d_active / f_mip)`` (Wigmans, em-showers.md 3.3, GFlash's default above
its 0.11 floor) grows, so the optimum lies where the resolution reaches the target. The
active thickness is fixed: in this model a thinner active layer improves the resolution at
no cost (a per-channel cost would be needed to make it a free parameter).

**Resolution**: ``std / mean`` of the deposited energy (all radii; longitudinal leakage
and the sampling fluctuations of GFlash) of ``n`` showers per energy. The differentiable
estimate (:func:`resolution`) uses :class:`~physgen.diffsim.calorimeter.DiffGFlash` on fixed
random numbers; :func:`optimise` minimises the cost under the constraint on
``ln r`` by gradient descent with an augmented Lagrangian (primal-dual iteration).

**Checks**: :func:`grid_scan` measures the resolution on a grid of ``r`` with the numba
:class:`~physgen.calo.simulate.gflash.GFlashEngine` on real slab stacks
(:func:`build_detector`, independent showers per point, bootstrap 1 sigma errors) and
locates the optimum with its 1 sigma band (:func:`crossing`); :func:`cascade_check`
repeats a few points with the particle-by-particle cascade engine.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from physgen.diffsim.calorimeter import DiffGFlash, SamplingStack
from physgen.errors import ConfigError

__all__ = [
    "CalorimeterDesign",
    "GridScan",
    "OptimisationResult",
    "build_detector",
    "cascade_check",
    "crossing",
    "grid_scan",
    "optimise",
    "resolution",
]

F64 = npt.NDArray[np.float64]


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CalorimeterDesign:
    """The fixed part of the design problem (see the module docstring).

    Attributes:
        absorber: Absorber material.
        active: Active material.
        active_mm: Active-layer thickness, mm (fixed).
        depth_x0: Total depth, radiation lengths of the stack.
        cost_ratio: Cost of active material per unit volume / that of the absorber.
        containment_rm: Tower radius in Moliere radii (cost model).
        particle: ``"electron"``, ``"positron"`` or ``"photon"``.
    """

    absorber: str = "Pb"
    active: str = "LAr"
    active_mm: float = 4.0
    depth_x0: float = 25.0
    cost_ratio: float = 10.0
    containment_rm: float = 2.0
    particle: str = "electron"

    def __post_init__(self) -> None:
        for name in ("active_mm", "depth_x0", "cost_ratio", "containment_rm"):
            _positive(f"--{name.replace('_', '-')}", getattr(self, name))
        self.stack(1.0)  # materials checked here

    def stack(self, ratio: float | Tensor) -> SamplingStack:
        """The stack at ``ratio = d_absorber / d_active`` (one layer, ``depth_x0`` deep)."""
        return SamplingStack(
            self.absorber,
            self.active,
            ratio * self.active_mm,
            self.active_mm,
            n_layers=1,
            periods_per_layer=None,
            depth_x0=self.depth_x0,
        )

    def cost(self, ratio: float | Tensor) -> Tensor:
        """Cost in litres of absorber-equivalent volume (module docstring), differentiable."""
        r = torch.as_tensor(ratio, dtype=torch.float64)
        sim = DiffGFlash(self.stack(r), None, particle=self.particle)
        med = sim.medium()
        area = math.pi * (self.containment_rm * med.rm_mm) ** 2
        return area * self.depth_x0 * med.x0_mm * (r + self.cost_ratio) / (1.0 + r) / 1e6


def _energies(energies_gev: tuple[float, ...] | list[float]) -> list[float]:
    if len(energies_gev) == 0:
        raise ConfigError("--energy: give at least one reference energy")
    return [_positive("--energy", float(e)) for e in energies_gev]


def resolution(
    design: CalorimeterDesign,
    ratio: float | Tensor,
    energies_gev: list[float],
    n: int,
    seed: int,
) -> Tensor:
    """Differentiable ``sigma_E / E`` ``(n_energies,)`` at ``ratio`` on fixed random numbers.

    Energy ``j`` uses showers ``j n .. (j+1) n - 1`` of the run ``seed`` (the same numbers for
    every ratio, so the estimate is a smooth function of ``ratio``); the deposited energy
    of each is :meth:`DiffGFlash.response` (one Gamma draw for the whole shower).
    """
    sim = DiffGFlash(design.stack(ratio), None, particle=design.particle)
    out = []
    for j, e in enumerate(energies_gev):
        noise = sim.noise(n, seed, start=j * n)
        x = sim.response(torch.full((n,), e * 1e3, dtype=torch.float64), noise)
        out.append(x.std() / x.mean())
    return torch.stack(out)


def _resolution_error(res: F64, n: int) -> F64:
    """Gaussian 1 sigma of std/mean from n showers."""
    return res * np.sqrt(1.0 / (2.0 * (n - 1)) + res**2 / n)


@dataclass
class OptimisationResult:
    """Outcome of :func:`optimise`.

    Attributes:
        ratio: Optimum d_absorber / d_active.
        ratio_error: Its statistical 1 sigma from the fixed sample (resolution error over
            the slope of the most constraining energy).
        absorber_mm: Optimum absorber thickness, mm.
        cost: Cost at the optimum, litres.
        resolution: sigma_E/E per energy at the optimum (fixed sample).
        path: One dict per step: ``step``, ``ratio``, ``cost``, ``resolution`` (list),
            ``multiplier`` (list), ``objective``.
        settings: The inputs.
        time_s: Wall time.
    """

    ratio: float
    ratio_error: float
    absorber_mm: float
    cost: float
    resolution: list[float]
    path: list[dict[str, Any]]
    settings: dict[str, Any]
    time_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def optimise(
    design: CalorimeterDesign,
    target: float,
    energies_gev: tuple[float, ...] | list[float] = (10.0,),
    *,
    n: int = 2000,
    steps: int = 150,
    lr: float = 0.1,
    start_ratio: float = 1.0,
    penalty: float = 50.0,
    dual_every: int = 1,
    seed: int = 0,
) -> OptimisationResult:
    """Minimise the cost subject to ``resolution <= target`` by gradient descent.

    Plain gradient descent (``torch.optim.SGD``, learning rate ``lr`` annealed to 0 on a
    cosine) on ``theta = ln r`` of the objective ``ln cost(r) + sum_j psi(g_j, lambda_j)``
    with ``g_j = sigma_j / target - 1`` and the augmented-Lagrangian term
    ``psi = (max(0, lambda + mu g)^2 - lambda^2) / (2 mu)`` (``mu`` = ``penalty``); every
    ``dual_every`` steps ``lambda <- max(0, lambda + mu g)`` (a primal-dual iteration).
    The log of the cost keeps the gradient of order one over the decade of cost the ratios
    span; Adam's per-step normalisation oscillated around the constraint (measured), plain
    descent converges. The returned optimum is the last step.

    Raises:
        ConfigError: Bad target, energies, sizes or rates.
    """
    t0 = time.perf_counter()
    if not (math.isfinite(target) and 0 < target < 1):
        raise ConfigError(f"--target-resolution: expected a fraction in (0, 1), got {target!r}")
    es = _energies(list(energies_gev))
    for name, v, lo in (("--n", n, 10), ("--steps", steps, 1), ("dual_every", dual_every, 1)):
        if v < lo:
            raise ConfigError(f"{name}: expected an integer >= {lo}, got {v}")
    _positive("--lr", lr)
    _positive("--start-ratio", start_ratio)
    _positive("penalty", penalty)
    theta = torch.tensor(math.log(start_ratio), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    lam = torch.zeros(len(es), dtype=torch.float64)
    path: list[dict[str, Any]] = []
    for step in range(steps + 1):
        ratio = torch.exp(theta)
        res = resolution(design, ratio, es, n, seed)
        cost = design.cost(ratio)
        g = res / target - 1.0
        aug = (torch.relu(lam + penalty * g) ** 2 - lam**2).sum() / (2 * penalty)
        objective = torch.log(cost) + aug
        path.append(
            {
                "step": step,
                "ratio": float(ratio.detach()),
                "cost": float(cost.detach()),
                "resolution": [float(v) for v in res.detach()],
                "multiplier": [float(v) for v in lam],
                "objective": float(objective.detach()),
            }
        )
        if step == steps:
            break
        opt.zero_grad()
        objective.backward()  # type: ignore[no-untyped-call]
        opt.step()
        schedule.step()
        if (step + 1) % dual_every == 0:
            lam = torch.relu(lam + penalty * g.detach())
    # statistical error of the optimum: resolution error / slope of the binding energy
    ratio = torch.exp(theta.detach()).requires_grad_(True)
    res = resolution(design, ratio, es, n, seed)
    j = int(torch.argmax(res.detach()))
    (slope,) = torch.autograd.grad(res[j], ratio)
    err = _resolution_error(res.detach().numpy(), n)[j] / max(abs(float(slope)), 1e-12)
    r_opt = float(ratio.detach())
    return OptimisationResult(
        ratio=r_opt,
        ratio_error=float(err),
        absorber_mm=r_opt * design.active_mm,
        cost=float(design.cost(r_opt)),
        resolution=[float(v) for v in res.detach()],
        path=path,
        settings={
            "design": asdict(design),
            "target": target,
            "energies_gev": es,
            "n": n,
            "steps": steps,
            "lr": lr,
            "start_ratio": start_ratio,
            "penalty": penalty,
            "dual_every": dual_every,
            "seed": seed,
        },
        time_s=time.perf_counter() - t0,
    )


# ------------------------------------------------------------------ brute-force checks


def build_detector(design: CalorimeterDesign, ratio: float) -> Any:
    """The design at ``ratio`` as a :class:`~physgen.calo.simulate.detector.Detector`.

    Whole periods (absorber, active) up to ``depth_x0``, then absorber (and active if
    needed) to fill the remaining depth exactly; one readout layer with a single voxel of
    radius 100 m, so the voxel sum is the whole active energy.
    """
    from physgen.calo.layout import Geometry, Layer
    from physgen.calo.simulate.detector import Detector, Slab
    from physgen.calo.simulate.materials import get_material

    r = _positive("ratio", float(ratio))
    d_abs, d_act = r * design.active_mm, design.active_mm
    x0_abs, x0_act = get_material(design.absorber).x0_mm, get_material(design.active).x0_mm
    t_period = d_abs / x0_abs + d_act / x0_act
    n_full = math.floor(design.depth_x0 / t_period + 1e-9)
    slabs = []
    for _ in range(n_full):
        slabs += [Slab(design.absorber, d_abs, False, 0), Slab(design.active, d_act, True, 0)]
    rest = design.depth_x0 - n_full * t_period
    if rest > 1e-9:
        a = min(rest * x0_abs, d_abs)
        slabs.append(Slab(design.absorber, a, False, 0))
        if rest - a / x0_abs > 1e-9:
            slabs.append(Slab(design.active, (rest - a / x0_abs) * x0_act, True, 0))
    geo = Geometry(
        name="diffsim-tower",
        particle=design.particle,
        layers=(Layer(id=0, r_edges=(0.0, 1e5), n_alpha=1),),
        description="one voxel of radius 100 m",
    )
    return Detector(
        name=f"diffsim-{design.absorber}-{design.active}-r{r:.4g}",
        slabs=tuple(slabs),
        geometry=geo,
        particles=("electron", "positron", "photon"),
        energy_range_mev=(1.0e3, 1.0e6),
        description=f"{n_full} x ({d_abs:.4g} mm {design.absorber} + {d_act:.4g} mm "
        f"{design.active}), {design.depth_x0:g} X0",
    )


def _bootstrap_error(x: F64, n_boot: int, rng: np.random.Generator) -> float:
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    s = x[idx]
    return float((s.std(axis=1, ddof=1) / s.mean(axis=1)).std(ddof=1))


def _engine_responses(engine: Any, particle: str, energy_mev: float, seeds: Any) -> F64:
    return np.array([engine.simulate_one(particle, energy_mev, int(s)).sum() for s in seeds])


@dataclass
class GridScan:
    """Resolution on a grid of ratios (:func:`grid_scan`).

    Attributes:
        ratios: ``(n_r,)`` d_absorber / d_active.
        cost: ``(n_r,)`` litres.
        resolution: ``(n_r, n_energies)`` sigma_E/E (numba GFlash).
        error: ``(n_r, n_energies)`` bootstrap 1 sigma.
        optimum: ``(ratio, low, high)``: where the resolution (and its +-1 sigma band)
            reaches the target, or None without a crossing.
        settings: The inputs; ``time_s``: wall time.
    """

    ratios: list[float]
    cost: list[float]
    resolution: list[list[float]]
    error: list[list[float]]
    optimum: tuple[float, float, float] | None
    settings: dict[str, Any] = field(default_factory=dict)
    time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def crossing(ratios: F64, res: F64, err: F64, target: float) -> tuple[float, float, float] | None:
    """Ratio where ``res`` first rises through ``target`` (linear interpolation) and the
    ratios where ``res + err`` and ``res - err`` do: ``(best, low, high)``, or None."""

    def first(y: F64) -> float | None:
        for i in range(len(ratios) - 1):
            if y[i] <= target < y[i + 1]:
                f = (target - y[i]) / (y[i + 1] - y[i])
                return float(ratios[i] + f * (ratios[i + 1] - ratios[i]))
        return None

    best, lo, hi = first(res), first(res + err), first(res - err)
    if best is None:
        return None
    return (
        best,
        lo if lo is not None else float(ratios[0]),
        hi if hi is not None else float(ratios[-1]),
    )


def grid_scan(
    design: CalorimeterDesign,
    ratios: list[float] | F64,
    target: float,
    energies_gev: tuple[float, ...] | list[float] = (10.0,),
    *,
    n: int = 2000,
    seed: int = 0,
    bootstrap: int = 200,
) -> GridScan:
    """Resolution per ratio from the numba GFlash engine on slab stacks (independent showers).

    Point ``i``, energy ``j`` uses the per-shower seeds of ``physgen simulate``
    (:func:`~physgen.calo.simulate.run.shower_seeds`) of run ``seed + 1`` starting at
    ``(i n_energies + j) n``: independent of the gradient sample and of the other points.
    """
    from physgen.calo.simulate.gflash import GFlashEngine
    from physgen.calo.simulate.run import shower_seeds

    t0 = time.perf_counter()
    rs = np.asarray(sorted(_positive("--grid", float(r)) for r in ratios), dtype=np.float64)
    if rs.size < 2:
        raise ConfigError("--grid: need at least two ratios")
    es = _energies(list(energies_gev))
    rng = np.random.default_rng(seed)
    res = np.zeros((rs.size, len(es)))
    err = np.zeros_like(res)
    for i, r in enumerate(rs):
        engine = GFlashEngine(build_detector(design, float(r)))
        for j, e in enumerate(es):
            seeds = shower_seeds(seed + 1, n, start=(i * len(es) + j) * n)
            x = _engine_responses(engine, design.particle, e * 1e3, seeds)
            res[i, j] = x.std(ddof=1) / x.mean()
            err[i, j] = _bootstrap_error(x, bootstrap, rng)
    crossings = [crossing(rs, res[:, j], err[:, j], target) for j in range(len(es))]
    found = [c for c in crossings if c is not None]
    optimum = None
    if found:
        optimum = (min(c[0] for c in found), min(c[1] for c in found), min(c[2] for c in found))
    return GridScan(
        ratios=rs.tolist(),
        cost=[float(design.cost(float(r))) for r in rs],
        resolution=res.tolist(),
        error=err.tolist(),
        optimum=optimum,
        settings={"n": n, "seed": seed, "bootstrap": bootstrap, "energies_gev": es},
        time_s=time.perf_counter() - t0,
    )


def cascade_check(
    design: CalorimeterDesign,
    ratios: list[float],
    energy_gev: float = 10.0,
    *,
    n: int = 500,
    seed: int = 0,
    bootstrap: int = 200,
) -> list[dict[str, Any]]:
    """Resolution of the cascade engine (and of numba GFlash, same n) at a few ratios.

    Returns one dict per ratio: ``ratio``, ``cascade`` and ``gflash`` (resolution, error,
    mean raw active energy in MeV, seconds).
    """
    from physgen.calo.simulate.cascade import CascadeEngine
    from physgen.calo.simulate.gflash import GFlashEngine
    from physgen.calo.simulate.run import shower_seeds

    _positive("energy", energy_gev)
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(ratios):
        det = build_detector(design, float(r))
        row: dict[str, Any] = {"ratio": float(r), "energy_gev": energy_gev, "n": n}
        for name, engine in (("cascade", CascadeEngine(det)), ("gflash", GFlashEngine(det))):
            t = time.perf_counter()
            seeds = shower_seeds(seed + 2, n, start=i * n)
            x = _engine_responses(engine, design.particle, energy_gev * 1e3, seeds)
            row[name] = {
                "resolution": float(x.std(ddof=1) / x.mean()),
                "error": _bootstrap_error(x, bootstrap, rng),
                "mean_active_mev": float(x.mean()),
                "time_s": time.perf_counter() - t,
            }
        out.append(row)
    return out
