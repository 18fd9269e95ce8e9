"""``bench/trust.py coverage``: do ensemble bands cover a known truth?

Toy with a known density: ``x1`` a camel (``0.5 N(-1.5, 0.5²) + 0.5 N(1.5, 0.5²)``), ``x2 | x1 ~
N(x1 / 2, 0.5²)``; the band is judged on the ``x1`` marginal, whose bin probabilities are
exact. For each of ``--datasets`` independent training sets of ``--n-train`` events, three
kinds of ensembles of a spline flow (:data:`COVERAGE_FLOW`) give ``K`` members each, every
member sampled ``--n-sample`` times:

* ``deep``: K trainings with different seeds on the same data;
* ``bootstrap``: K trainings, each on a bootstrap resample of the data;
* ``bayesian``: one training of the Bayesian flow (variational last layers), K weight draws.

Coverage = fraction of bins whose mean +- 1 sigma contains the true probability (68 % for a
calibrated band), over all bins and separately for the core (true p above the median) and the
tails; the relative band width std / mean shows whether the band widens where data are scarce.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "trust-bench"
COVERAGE_FLOW: dict[str, Any] = {"shape_transforms": 3, "shape_hidden": [32, 32], "shape_bins": 8}
EDGES = np.linspace(-3.5, 3.5, 36)
KINDS = ("deep", "bootstrap", "bayesian")


def toy(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 2)`` events of the coverage toy."""
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    x1 = 1.5 * sign + 0.5 * rng.normal(size=n)
    return np.stack([x1, 0.5 * x1 + 0.5 * rng.normal(size=n)], axis=1)


def truth_probabilities(edges: np.ndarray = EDGES) -> np.ndarray:
    """Exact bin probabilities of ``x1`` inside the edges (renormalised to them)."""
    from physgen.trust.ensemble import bin_probabilities

    def cdf(e: np.ndarray) -> np.ndarray:
        return np.asarray(0.5 * stats.norm.cdf(e, -1.5, 0.5) + 0.5 * stats.norm.cdf(e, 1.5, 0.5))

    return bin_probabilities(cdf, edges)


def _cached_hist(key: list[Any], make: Any) -> tuple[np.ndarray, float]:
    """``make() -> (probabilities, training seconds)``, cached by ``key``."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"coverage-{h}.npz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        p, seconds = make()
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, p=p, seconds=seconds)
        os.replace(tmp, path)
    with np.load(path) as f:
        return np.asarray(f["p"]), float(f["seconds"])


def _x1_probabilities(x: np.ndarray) -> np.ndarray:
    """Bin probabilities of the first column of events ``(n, 2)``."""
    arr = np.asarray(x)
    assert arr.ndim == 2 and arr.shape[1] == 2, arr.shape
    h, _ = np.histogram(arr[:, 0], EDGES)
    return np.asarray(h / h.sum(), dtype=np.float64)


def members(kind: str, data: np.ndarray, d: int, args: Any) -> tuple[np.ndarray, float]:
    """The K members' ``x1`` bin probabilities ``(K, B)`` and the training seconds."""
    import torch

    from physgen import density
    from physgen.nn.bayesian import weight_draw

    torch.set_num_threads(args.threads)
    k, n_s, epochs = args.members, args.n_sample, args.epochs
    rows_out: list[np.ndarray] = []
    base = [4, d, kind, k, n_s, epochs, COVERAGE_FLOW, len(data)]
    if kind == "bayesian":
        cfg = {**COVERAGE_FLOW, "bayesian_layers": 1}

        def make_all() -> tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            est = density.fit(data, model="flow", config=cfg, epochs=2 * epochs, seed=d,
                              optim={"batch_size": 128}, progress=False)  # fmt: skip
            seconds = time.perf_counter() - t0
            out = []
            for j in range(k):
                with weight_draw(est.model, 1000 + j):
                    out.append(_x1_probabilities(est(n=n_s).sample(seed=j)))
            return np.stack(out), seconds

        return _cached_hist(base, make_all)
    t_train = 0.0
    for j in range(k):

        def make_one(j: int = j) -> tuple[np.ndarray, float]:
            rows = np.arange(len(data))
            if kind == "bootstrap":
                rows = np.random.default_rng([d, j, 99]).integers(0, len(data), len(data))
            t0 = time.perf_counter()
            est = density.fit(data[rows], model="flow", config=COVERAGE_FLOW, epochs=epochs,
                              seed=100 * d + j, optim={"batch_size": 128}, progress=False)  # fmt: skip
            seconds = time.perf_counter() - t0
            return _x1_probabilities(est(n=n_s).sample(seed=j)), seconds

        p, seconds = _cached_hist([*base, j], make_one)
        rows_out.append(p)
        t_train += seconds
    return np.stack(rows_out), t_train


def run_coverage(args: Any) -> dict[str, Any]:
    from physgen.trust.ensemble import Band

    truth = truth_probabilities()
    core = truth >= np.median(truth)
    out: dict[str, Any] = {"kinds": {}}
    for kind in KINDS:
        rows = []
        seconds = 0.0
        bands = []
        for d in range(args.datasets):
            data = toy(args.n_train, np.random.default_rng([11, d]))
            m, t = members(kind, data, d, args)
            seconds += t
            b = Band(EDGES, m)
            bands.append(b)
            rows.append(
                {
                    "coverage": b.coverage(truth),
                    "coverage_core": b.coverage(truth, mask=core),
                    "coverage_tails": b.coverage(truth, mask=~core),
                    "rel_width_core": float(np.median(b.relative_width()[core])),
                    "rel_width_tails": float(np.median(b.relative_width()[~core])),
                    "pull_rms": float(
                        np.sqrt(np.mean(((b.mean - truth) / np.maximum(b.std, 1e-12)) ** 2))
                    ),
                }
            )
        agg = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
        trainings = 1 if kind == "bayesian" else args.members
        agg.update(
            {
                "per_dataset": rows,
                "trainings_per_band": trainings,
                "train_seconds_total": seconds,
                "bands": [{"mean": b.mean.tolist(), "std": b.std.tolist()} for b in bands[:1]],
            }
        )
        out["kinds"][kind] = agg
        print(f"coverage {kind}: {agg['coverage']:.2f} (core {agg['coverage_core']:.2f}, tails "
              f"{agg['coverage_tails']:.2f}); rel. width core {agg['rel_width_core']:.3f}, tails "
              f"{agg['rel_width_tails']:.3f}", flush=True)  # fmt: skip
    out["truth"] = truth.tolist()
    out["edges"] = EDGES.tolist()
    out["settings"] = {
        "n_train": args.n_train,
        "members": args.members,
        "datasets": args.datasets,
        "n_sample": args.n_sample,
        "epochs": args.epochs,
        "flow": COVERAGE_FLOW,
    }
    return out


def plot_coverage(res: dict[str, Any], path: Path) -> None:
    """The first data set's bands of each kind against the truth, and the pulls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    plt.style.use(hep.style.ROOT)
    edges = np.asarray(res["edges"])
    truth = np.asarray(res["truth"])
    kinds = list(res["kinds"])
    fig, axes = plt.subplots(2, len(kinds), figsize=(6.5 * len(kinds), 8), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3]}, squeeze=False)  # fmt: skip
    for i, kind in enumerate(kinds):
        r = res["kinds"][kind]
        b = r["bands"][0]
        mean, std = np.asarray(b["mean"]), np.asarray(b["std"])
        ax, rax = axes[0, i], axes[1, i]
        ax.stairs(mean + std, edges, baseline=np.clip(mean - std, 1e-12, None), fill=True,
                  color="C1", alpha=0.4, label=f"{kind}: mean $\\pm 1\\sigma$")  # fmt: skip
        ax.stairs(truth, edges, color="k", lw=1.5, label="truth")
        ax.set_yscale("log")
        ax.set_ylim(1e-6, 0.2)
        ax.set_ylabel("probability per bin")
        ax.set_title(f"{kind}: coverage {r['coverage']:.2f} (tails {r['coverage_tails']:.2f})",
                     fontsize=15)  # fmt: skip
        ax.legend(fontsize=12, loc="upper right")
        pull = (mean - truth) / np.maximum(std, 1e-12)
        rax.plot(0.5 * (edges[1:] + edges[:-1]), np.clip(pull, -4, 4), "o", color="C1", ms=4)
        for y in (-1, 1):
            rax.axhline(y, color="grey", ls=":")
        rax.axhline(0, color="k", lw=0.8)
        rax.set_ylim(-4.5, 4.5)
        rax.set_ylabel("pull")
        rax.set_xlabel("$x_1$")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
