"""The quality-versus-speed front: train (or load) surrogates, judge them, tabulate and plot.

Each model is trained on one simulated file (or an existing run directory is reused),
generates as many showers as an independent reference file (with the reference's incident
energies), is evaluated with the CaloChallenge metrics (fast classifier, repeats) and timed at
batch sizes 1/100/10,000. The table has the CaloChallenge columns; the plot shows low-level AUC
against milliseconds per shower with physgen's Pareto front, and the published CaloChallenge
2022 submissions for orientation (other data: Geant4; other hardware).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgen._optional import require
from physgen.errors import ConfigError
from physgen.outputs import atomic_write_text

__all__ = [
    "FrontEntry",
    "challenge_comparison",
    "comparison_text",
    "entry_from_dict",
    "front_plot",
    "front_table",
    "judge_run",
    "pareto_front",
    "parse_sampling",
    "run_front",
    "time_model",
    "train_or_load",
    "write_front",
]

log = logging.getLogger(__name__)
BATCH_SIZES = (1, 100, 10_000)


@dataclass
class FrontEntry:
    """One model's row of the front.

    Attributes:
        model: Model name.
        run_dir: Its run directory.
        n_parameters: Trainable parameters.
        train: Status, steps and minutes of training (from ``summary.json``).
        auc_low: ``(mean, std)`` calibrated AUC of the low-level classifier.
        auc_high: ``(mean, std)`` of the high-level classifier.
        jsd_low: JSD of the low-level classifier.
        fpd: ``(value, error)``.
        kpd: ``(value, error)``.
        separation: Mean separation power per feature kind.
        ms_per_shower: ``{batch size: (mean, std)}`` on the timing device.
        device: Timing device.
        generated_file: The generated showers that were evaluated.
        sampling: Sampling options that differ from the run's config (e.g. diffusion steps).
    """

    model: str
    run_dir: str
    n_parameters: int
    train: dict[str, Any]
    auc_low: tuple[float, float]
    auc_high: tuple[float, float]
    jsd_low: float
    fpd: tuple[float, float]
    kpd: tuple[float, float]
    separation: dict[str, float]
    ms_per_shower: dict[int, tuple[float, float]] = field(default_factory=dict)
    device: str = "cpu"
    generated_file: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model name, with its sampling overrides when there are any."""
        if not self.sampling:
            return self.model
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.sampling.items()))
        return f"{self.model} ({opts})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        d = asdict(self)
        d["ms_per_shower"] = {str(k): list(v) for k, v in self.ms_per_shower.items()}
        return d


def train_or_load(
    model: str,
    geometry: str,
    train_file: str | Path,
    runs_dir: str | Path,
    *,
    max_time_s: float | None = None,
    preset: str | None = None,
    progress: bool | None = None,
) -> Path:
    """The run directory ``runs_dir/MODEL-GEOMETRY``: reused if finished, resumed if it holds a
    checkpoint, else trained from the preset.

    Returns:
        The run directory.
    """
    from physgen.calo.config import load_config
    from physgen.calo.train import train

    run = Path(runs_dir) / f"{model}-{geometry}"
    if (run / "summary.json").is_file() and (run / "weights.pt").is_file():
        status = json.loads((run / "summary.json").read_text())["status"]
        if status in ("completed", "early-stopped") or max_time_s is None:
            log.info("reusing %s (%s)", run, status)
            return run
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    if (run / "checkpoint.pt").is_file():
        train(None, train_file, run, resume=True, max_time_s=max_time_s, progress=progress)
    else:
        cfg = load_config(model, geometry, preset=preset)
        train(cfg, train_file, run, max_time_s=max_time_s, progress=progress)
    return run


def time_model(
    model: Any, geometry: str, device: str, sizes: Sequence[int]
) -> dict[int, tuple[float, float]]:
    """Milliseconds per shower ``{batch size: (mean, std)}`` of a surrogate (CaloChallenge
    harness: geometry's energies, 5 repeats, 2 at batch >= 10,000, warm-up excluded)."""
    from physgen.calo.evaluate.timing import time_generator

    gen = torch.Generator().manual_seed(0)

    def generate(n: int, e: np.ndarray) -> torch.Tensor:
        return model(torch.from_numpy(e)).sample(generator=gen)  # type: ignore[no-any-return]

    res = time_generator(
        generate, geometry, sizes, repeats=5, warmup=1, device=device, max_repeats_large=2
    )
    return {b.batch_size: (b.ms_per_shower_mean, b.ms_per_shower_std) for b in res.batches}


def judge_run(
    run_dir: str | Path,
    reference_file: str | Path,
    work_dir: str | Path,
    *,
    repeats: int = 3,
    classifier: str = "fast",
    seed: int = 1,
    device: str = "cpu",
    batch_sizes: Sequence[int] = BATCH_SIZES,
    sampling: dict[str, Any] | None = None,
) -> FrontEntry:
    """Generate for the reference energies, evaluate and time one trained run.

    Args:
        run_dir: Run directory of ``physgen train``.
        reference_file: Independent reference showers of the run's geometry.
        work_dir: Where the generated file and the evaluation folder go.
        repeats: Classifier trainings (mean ± std).
        classifier: ``fast`` or ``official``.
        seed: Generation seed.
        device: Device for generation timing.
        batch_sizes: Timing batch sizes.
        sampling: Sampling options over the run's config (``physgen generate --steps``...).
    """
    from physgen.calo.evaluate.pipeline import evaluate
    from physgen.calo.evaluate.timing import count_parameters
    from physgen.calo.generate import generate_showers
    from physgen.calo.rundir import load_run, read_run_config

    run = Path(run_dir)
    cfg = read_run_config(run)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    sampling = dict(sampling or {})
    model = load_run(run, overrides=sampling)
    gen_file = work / f"{cfg.model}-{cfg.geometry}-generated.h5"
    generate_showers(
        model,
        gen_file,
        energies_from=reference_file,
        seed=seed,
        geometry=cfg.geometry,
        progress=False,
    )
    ev = evaluate(
        gen_file,
        reference_file,
        cfg.geometry,
        "hist,cls-low,cls-high,fpd,kpd",
        work / f"eval-{cfg.model}",
        classifier=classifier,
        repeats=repeats,
        label=cfg.model,
        plots=False,
    )
    r = ev.results
    cls = r["classifier"]
    summary = json.loads((run / "summary.json").read_text())
    model_dev = load_run(run, device, overrides=sampling) if device != "cpu" else model
    return FrontEntry(
        model=cfg.model,
        run_dir=str(run),
        n_parameters=count_parameters(model),
        train={
            "status": summary["status"],
            "steps": summary["step"],
            "minutes": summary.get("elapsed_total_s", summary["elapsed_s"]) / 60,
            "best_val_loss": summary["best_val_loss"],
        },
        auc_low=(cls["cls-low"]["auc"], cls["cls-low"]["auc_std"]),
        auc_high=(cls["cls-high"]["auc"], cls["cls-high"]["auc_std"]),
        jsd_low=cls["cls-low"]["jsd"],
        fpd=(r["fpd_kpd"]["fpd"], r["fpd_kpd"]["fpd_err"]),
        kpd=(r["fpd_kpd"]["kpd"], r["fpd_kpd"]["kpd_err"]),
        separation={k: v["mean"] for k, v in r["separation_power_summary"].items()},
        ms_per_shower=time_model(model_dev, cfg.geometry, device, batch_sizes),
        device=device,
        generated_file=str(gen_file),
        sampling=sampling,
    )


def parse_sampling(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``MODEL:KEY=VALUE[,KEY=VALUE...]`` specs into per-model sampling options.

    Values are ints where they parse as ints (``200``), then floats (``0.5``, ``1e-3``), then
    booleans (``true``/``false``), else strings (``ddpm``). Repeating a model merges its
    options.

    Example:
        ``parse_sampling(["diffusion:sampler=ddpm,steps=200"])`` returns
        ``{"diffusion": {"sampler": "ddpm", "steps": 200}}``.

    Raises:
        ConfigError: A malformed spec (the message shows the expected form).
    """
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        model, sep, rest = spec.partition(":")
        pairs = [p.strip() for p in rest.split(",") if p.strip()]
        if not sep or not model.strip() or not pairs or any("=" not in p for p in pairs):
            raise ConfigError(
                f"--sampling {spec!r}: expected MODEL:KEY=VALUE[,KEY=VALUE...], "
                "e.g. diffusion:sampler=ddpm,steps=200"
            )
        opts = out.setdefault(model.strip(), {})
        for p in pairs:
            k, _, v = p.partition("=")
            if not k.strip() or not v.strip():
                raise ConfigError(f"--sampling {spec!r}: empty key or value in {p!r}")
            opts[k.strip()] = _scalar(v.strip())
    return out


def _scalar(text: str) -> int | float | bool | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (time, AUC), both to be minimised, by time."""
    idx = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in idx:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def front_table(entries: Sequence[FrontEntry], geometry: str) -> str:
    """Markdown table with the CaloChallenge columns (and the Pareto members in bold)."""
    pts = [(e.ms_per_shower.get(10_000, (math.nan, 0))[0], e.auc_low[0]) for e in entries]
    on_front = set(pareto_front(pts))
    lines = [
        f"| model (geometry {geometry}) | params | training | AUC low | AUC high | FPD | KPD | "
        "sep. E_tot | sep. E_layer | sep. voxel | ms b1 | ms b100 | ms b10k |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(entries):
        t = e.ms_per_shower
        name = f"**{e.label}**" if i in on_front else e.label
        c1, c100, c10k = (f"{t[b][0]:.3g}" if b in t else "–" for b in (1, 100, 10_000))
        lines.append(
            f"| {name} | {e.n_parameters:,} | {e.train['minutes']:.0f} min ({e.train['status']}) | "
            f"{e.auc_low[0]:.3f} ± {e.auc_low[1]:.3f} | {e.auc_high[0]:.3f} ± {e.auc_high[1]:.3f} | "
            f"{e.fpd[0]:.3g} ± {e.fpd[1]:.2g} | {e.kpd[0]:.3g} ± {e.kpd[1]:.2g} | "
            f"{e.separation.get('E_tot', math.nan):.4f} | {e.separation.get('E_layer', math.nan):.4f} | "
            f"{e.separation.get('voxel', math.nan):.4f} | {c1} | {c100} | {c10k} |"
        )
    return "\n".join(lines) + "\n"


def challenge_comparison(entries: Sequence[FrontEntry], geometry: str) -> dict[str, Any]:
    """Place each physgen model among the CaloChallenge 2022 submissions for ``geometry``.

    A model *dominates* a submission when it is both faster (CPU, batch 10,000) and no worse in
    low-level AUC. The comparison is for orientation only: the submissions were trained and
    judged on Geant4 showers on other hardware, physgen's models on cascade showers here.

    Returns:
        ``{"submissions": n, "fastest_ms": t, "best_auc": a, "models": {model: {"dominates":
        [...], "dominated_by": [...], "dominates_all": bool}}}``; ``submissions`` is 0 where no
        published results exist for the geometry.
    """
    from physgen.calo.evaluate.report import final_results

    subs = [
        (str(r["submission name"]), float(r["time CPU 10000"]), float(r["binary cls low"]))
        for r in final_results(geometry)
        if r["submission name"] != "GEANT4"
    ]
    subs = [s for s in subs if math.isfinite(s[1]) and math.isfinite(s[2])]
    models: dict[str, Any] = {}
    for e in entries:
        t = e.ms_per_shower.get(10_000, (math.nan, 0.0))[0]
        a = e.auc_low[0]
        dom = [n for n, st, sa in subs if t < st and a <= sa]
        by = [n for n, st, sa in subs if st < t and sa <= a]
        models[e.label] = {
            "ms_b10k": t,
            "auc_low": a,
            "dominates": dom,
            "dominated_by": by,
            "dominates_all": bool(subs) and len(dom) == len(subs),
        }
    return {
        "submissions": len(subs),
        "fastest_ms": min((s[1] for s in subs), default=math.nan),
        "best_auc": min((s[2] for s in subs), default=math.nan),
        "models": models,
    }


def comparison_text(comparison: dict[str, Any]) -> str:
    """Markdown lines summarising :func:`challenge_comparison`."""
    n = comparison["submissions"]
    if n == 0:
        return "No published CaloChallenge results for this geometry.\n"
    lines = [
        f"Against the {n} CaloChallenge 2022 submissions (CPU batch-10,000 time, low-level AUC; "
        "Geant4 data and other hardware, so for orientation only): dominating all of them needs "
        f"< {comparison['fastest_ms']:.3g} ms/shower and AUC <= {comparison['best_auc']:.3f}.",
        "",
    ]
    for m, c in comparison["models"].items():
        if not (math.isfinite(c["ms_b10k"]) and math.isfinite(c["auc_low"])):
            lines.append(f"- {m}: not placed (no batch-10,000 time or no low-level AUC).")
            continue
        verdict = "dominates all" if c["dominates_all"] else f"dominates {len(c['dominates'])}/{n}"
        by = ", ".join(c["dominated_by"]) or "none"
        lines.append(
            f"- {m} ({c['ms_b10k']:.3g} ms, AUC {c['auc_low']:.3f}): {verdict}; dominated by: {by}."
        )
    return "\n".join(lines) + "\n"


def front_plot(entries: Sequence[FrontEntry], geometry: str, out: str | Path) -> Path:
    """AUC (low level) against ms per shower at batch 10,000 on CPU, Pareto front marked,
    CaloChallenge 2022 submissions in grey (their CPU batch-10,000 time, Geant4 data)."""
    require("matplotlib.pyplot", "plot", "plots (front.png)")
    import matplotlib.pyplot as plt  # the caller's backend (Agg without a display)

    from physgen.calo.evaluate.report import final_results

    fig, ax = plt.subplots(figsize=(7, 5))  # type: ignore[no-untyped-call]
    cc = [r for r in final_results(geometry) if r["submission name"] != "GEANT4"]
    cx = [r["time CPU 10000"] for r in cc]
    cy = [r["binary cls low"] for r in cc]
    ok = [i for i in range(len(cc)) if math.isfinite(cx[i]) and math.isfinite(cy[i])]
    if ok:
        ax.scatter(
            [cx[i] for i in ok],
            [cy[i] for i in ok],
            c="0.6",
            marker="s",
            s=25,
            label="CaloChallenge 2022 (Geant4 data, their hardware)",
        )
        for i in ok:
            ax.annotate(
                cc[i]["submission name"],
                (cx[i], cy[i]),
                fontsize=6,
                color="0.45",
                xytext=(3, 2),
                textcoords="offset points",
            )
    pts = [(e.ms_per_shower.get(10_000, (math.nan, 0))[0], e.auc_low[0]) for e in entries]
    for e, (x, y) in zip(entries, pts):
        ax.errorbar(x, y, yerr=e.auc_low[1], fmt="o", ms=7, capsize=3, label=f"physgen {e.label}")
    front = [pts[i] for i in pareto_front(pts)]
    if len(front) > 1:
        ax.plot(*zip(*front), "k--", lw=1, label="physgen Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("generation time [ms / shower], CPU, batch 10,000")
    ax.set_ylabel("AUC, low-level classifier (0.5 = indistinguishable)")
    ax.set_title(f"Quality vs speed, geometry {geometry} (physgen: cascade reference)")
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out_p = Path(out)
    fig.savefig(out_p, dpi=130)
    plt.close(fig)
    return out_p


def _judge_key(
    run: Path,
    reference: str | Path,
    repeats: int,
    device: str,
    batch_sizes: Sequence[int],
    sampling: dict[str, Any],
    seed: int = 1,
) -> dict[str, Any]:
    """What a judged entry depends on: the weights file, the reference file and the options."""
    w, r = (run / "weights.pt").stat(), Path(reference).stat()
    return {
        "weights": [str(run.resolve()), w.st_size, w.st_mtime_ns],
        "reference": [str(Path(reference).resolve()), r.st_size, r.st_mtime_ns],
        "repeats": repeats,
        "device": device,
        "batch_sizes": list(batch_sizes),
        "sampling": sampling,
        **({"seed": seed} if seed != 1 else {}),  # default 1: keys of earlier entries hold
    }


def entry_from_dict(d: dict[str, Any]) -> FrontEntry:
    """A :class:`FrontEntry` back from :meth:`FrontEntry.to_dict` (``front.json`` entries)."""
    d = dict(d)
    d.setdefault("sampling", {})
    d["ms_per_shower"] = {int(k): tuple(v) for k, v in d["ms_per_shower"].items()}
    for k in ("auc_low", "auc_high", "fpd", "kpd"):
        d[k] = tuple(d[k])
    return FrontEntry(**d)


def run_front(
    geometry: str,
    models: Sequence[str],
    train_file: str | Path,
    reference_file: str | Path,
    out_dir: str | Path,
    *,
    runs_dir: str | Path | None = None,
    max_time_s: float | None = None,
    repeats: int = 3,
    device: str = "cpu",
    preset: str | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    sampling: dict[str, dict[str, Any]] | None = None,
    seed: int = 1,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train (or load), judge, tabulate and plot every model; writes ``front.md``,
    ``front.json`` and ``front.png`` in ``out_dir``. A model already judged with the same
    weights, reference and options (``OUT/judged/entry-MODEL.json``) is not judged again.

    Args:
        sampling: Per model, sampling options over its run's config, e.g.
            ``{"diffusion": {"steps": 200, "sampler": "ddpm"}}`` (see :func:`parse_sampling`).
        seed: Seed of each model's generated sample (:func:`judge_run`).
        progress: Training progress bars (None: only on a terminal).

    Raises:
        ConfigError: No models, unknown model names, or sampling options for a model that is
            not in ``models`` or that are not sampling options of that model.
    """
    from physgen.models import check_sampling_overrides, get_model_class

    if not models:
        raise ConfigError("--models: give at least one model")
    require("matplotlib.pyplot", "plot", "plots (front.png)")  # before hours of training
    for m in models:
        get_model_class(m)
    sampling = dict(sampling or {})
    extra = sorted(set(sampling) - set(models))
    if extra:
        raise ConfigError(f"--sampling: {', '.join(extra)} not among --models {','.join(models)}")
    for m, opts in sampling.items():
        check_sampling_overrides(m, opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) if runs_dir is not None else out / "runs"
    entries = []
    for m in models:
        t0 = time.monotonic()
        run = train_or_load(
            m, geometry, train_file, runs, max_time_s=max_time_s, preset=preset, progress=progress
        )
        opts = dict(sampling.get(m, {}))
        key = _judge_key(run, reference_file, repeats, device, batch_sizes, opts, seed)
        cache = out / "judged" / f"entry-{m}.json"
        if cache.is_file() and json.loads(cache.read_text()).get("key") == key:
            log.info("reusing the judged entry %s", cache)
            entries.append(entry_from_dict(json.loads(cache.read_text())["entry"]))
        else:
            entry = judge_run(
                run,
                reference_file,
                out / "judged",
                repeats=repeats,
                device=device,
                batch_sizes=batch_sizes,
                sampling=opts,
                seed=seed,
            )
            atomic_write_text(cache, json.dumps({"key": key, "entry": entry.to_dict()}, indent=2))
            entries.append(entry)
        log.info("%s judged in %.0f s", m, time.monotonic() - t0)
    return write_front(
        entries,
        geometry,
        out / "front",
        {
            "train_file": Path(train_file).name,
            "reference_file": Path(reference_file).name,
            "repeats": repeats,
        },
    )


def write_front(
    entries: Sequence[FrontEntry],
    geometry: str,
    prefix: str | Path,
    info: dict[str, Any] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Write ``PREFIX.md`` (table, CaloChallenge placement, ``note``), ``PREFIX.json`` and
    ``PREFIX.png`` (the plot) atomically.

    Args:
        entries: The judged models.
        geometry: Their geometry.
        prefix: Output path without suffix.
        info: Extra keys of the JSON record (files, repeats, provenance...).
        note: Markdown appended to the table.

    Returns:
        The JSON record: ``geometry``, ``info``'s keys, ``entries``, ``calochallenge_comparison``.
    """
    out = Path(prefix)
    comparison = challenge_comparison(entries, geometry)
    text = front_table(entries, geometry) + "\n" + comparison_text(comparison)
    atomic_write_text(out.with_suffix(".md"), text + (f"\n{note}" if note else ""))
    record = {
        "geometry": geometry,
        **(info or {}),
        "entries": [e.to_dict() for e in entries],
        "calochallenge_comparison": comparison,
    }
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    front_plot(entries, geometry, out.with_suffix(".png"))
    return record
