"""Benchmark: fast samplers on the 1-photons quality-versus-speed front (issue 22).

Routes to a surrogate that is both fast and good, judged side by side on one machine with
the front's reference and classifier (``physgen bench front``'s ``judge_run``: 10,000
generated showers for the energies of the reference file, fast classifier, ``--repeats``
trainings, CaloChallenge timing harness):

* ``--entry LABEL=RUN[@KEY=VALUE,...]``: a trained run (any family), judged and timed,
  sampled with the options after ``@`` (those of ``physgen generate``, e.g.
  ``@solver=euler,steps=2``); the label names it in the table (e.g.
  ``flow (fused sampler)=RUNS/flow-1-photons``, or a distilled student of ``physgen distill``).
* ``--sampler-check RUN``: a coupling spline flow sampled by zuko and by physgen's fused
  inverse (:mod:`physgen.models.flow_fast`), same weights and noise: the largest difference
  of the showers and the time of each at every batch size.
* ``--merge FILE:MODEL[,MODEL]``: earlier judged entries (``front.json`` files) shown with
  the new ones in the table and the plot.

Usage (the README's numbers)::

    python bench/fast_front.py --threads 2 --repeats 3 \\
        --reference ~/.cache/physgen/trust-bench/calo/ds1-cascade-10000-12.h5 \\
        --entry "flow (fused sampler)=~/.cache/physgen/fast-front/runs/flow-1-photons" \\
        --sampler-check ~/.cache/physgen/fast-front/runs/flow-1-photons \\
        --merge bench/results/front_1-photons_all.json:diffusion,gan,vae

Writes ``bench/results/fast_front_1-photons.{md,json,png}``; judged entries are cached in
``~/.cache/physgen/fast-front/judged`` keyed by run, weights and settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path.home() / ".cache" / "physgen" / "fast-front"
GEO = "1-photons"


def _key(run: Path, reference: Path, repeats: int, seed: int, sampling: dict[str, Any]) -> str:
    h = hashlib.sha256((run / "weights.pt").read_bytes())
    h.update(f"{reference.resolve()}|{repeats}|{seed}".encode())
    if sampling:
        h.update(json.dumps(sampling, sort_keys=True).encode())
    return h.hexdigest()[:16]


def judge(
    label: str, run: Path, reference: Path, repeats: int, seed: int, sampling: dict[str, Any]
) -> Any:
    """A FrontEntry for ``run`` under ``label`` (cached), sampled with ``sampling``."""
    from physgen.calo.front import entry_from_dict, judge_run

    key = _key(run, reference, repeats, seed, sampling)
    cache = CACHE / "judged" / f"{key}.json"
    if cache.is_file():
        print(f"{label}: reusing {cache}")
        entry = entry_from_dict(json.loads(cache.read_text()))
    else:
        t0 = time.monotonic()
        entry = judge_run(
            run, reference, CACHE / "judged" / key, repeats=repeats, seed=seed, sampling=sampling
        )
        cache.write_text(json.dumps(entry.to_dict(), indent=2))
        print(f"{label}: judged in {time.monotonic() - t0:.0f} s")
    return dataclasses.replace(
        entry,
        model=label,
        run_dir=_tilde(entry.run_dir),
        generated_file=_tilde(entry.generated_file),
    )


def _tilde(path: str) -> str:
    """``path`` with the home folder written ``~``: the record names no user's machine."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path


def sampler_check(run: Path, sizes: list[int]) -> dict[str, Any]:
    """zuko vs fused inverse of one flow run: equality and ms/shower per batch size."""
    from physgen.calo.front import time_model
    from physgen.calo.rundir import load_run

    fast = load_run(run)
    slow = load_run(run, overrides={"fast_sampling": False})
    e = torch.from_numpy(np.geomspace(256.0, 4.2e6, 10_000))
    a = fast(e.reshape(-1, 1)).sample(generator=torch.Generator().manual_seed(0))
    b = slow(e.reshape(-1, 1)).sample(generator=torch.Generator().manual_seed(0))
    rel_etot = ((a.sum(1) - b.sum(1)).abs() / b.sum(1).clamp_min(1e-9)).numpy()
    out: dict[str, Any] = {
        "run": run.name,
        "showers_compared": int(a.shape[0]),
        "max_abs_diff_mev": float((a - b).abs().max()),
        "max_rel_diff_etot": float(rel_etot.max()),
        "median_rel_diff_etot": float(np.median(rel_etot)),
        "ms_per_shower": {},
    }
    for name, model in (("zuko", slow), ("fused", fast)):
        t = time_model(model, GEO, "cpu", sizes)
        out["ms_per_shower"][name] = {str(k): list(v) for k, v in t.items()}
    return out


def _sampler_md(chk: dict[str, Any]) -> str:
    sizes = list(chk["ms_per_shower"]["zuko"])
    head = "| sampler | " + " | ".join(f"ms/shower b{s}" for s in sizes) + " |\n"
    head += "|---|" + "---|" * len(sizes) + "\n"
    rows = ""
    for name in ("zuko", "fused"):
        ms = chk["ms_per_shower"][name]
        rows += f"| {name} | " + " | ".join(f"{ms[s][0]:.3g} ± {ms[s][1]:.2g}" for s in sizes)
        rows += " |\n"
    z, f = chk["ms_per_shower"]["zuko"][sizes[-1]][0], chk["ms_per_shower"]["fused"][sizes[-1]][0]
    return (
        f"\n## Flow sampler: zuko's inverse vs physgen's fused inverse ({chk['run']})\n\n"
        f"Same weights, same noise, {chk['showers_compared']:,} showers at 256 MeV - 4 TeV: "
        f"largest voxel difference {chk['max_abs_diff_mev']:.3g} MeV, E_tot differs by at most "
        f"{chk['max_rel_diff_etot']:.2g} (median {chk['median_rel_diff_etot']:.2g}) relative. "
        f"Speed-up at batch {sizes[-1]}: **{z / f:.1f}x**.\n\n" + head + rows
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--entry", action="append", default=[], help="LABEL=RUN[@KEY=VALUE,...]")
    ap.add_argument("--sampler-check", type=Path, default=None)
    ap.add_argument("--merge", action="append", default=[], help="front.json[:MODEL,MODEL]")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,100,10000")
    ap.add_argument("--note", default="", help="a sentence on the data, put above the entries")
    ap.add_argument("--out", type=Path, default=RESULTS / "fast_front_1-photons")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from physgen.calo.front import entry_from_dict, parse_sampling, write_front

    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "judged").mkdir(exist_ok=True)
    entries, origin = [], {}
    for src in args.merge:
        path, _, only = src.partition(":")
        keep = set(only.split(",")) if only else None
        for d in json.loads(Path(path).read_text())["entries"]:
            e = entry_from_dict(d)
            if keep is None or e.model in keep:
                entries.append(e)
                origin[e.label] = f"{Path(path).name} (earlier session)"
    for spec in args.entry:
        label, _, target = spec.partition("=")
        run, _, opts = target.partition("@")
        run_p = Path(run).expanduser()
        ref = args.reference.expanduser()
        sampling = parse_sampling([f"run:{opts}"])["run"] if opts else {}
        entries.append(judge(label, run_p, ref, args.repeats, args.seed, sampling))
        origin[label] = f"{run_p.name}, judged by this script"
    note = (
        (args.note + "\n\n" if args.note else "")
        + "Entries:\n"
        + "\n".join(f"- {k}: {v}" for k, v in origin.items())
        + "\n"
    )
    chk = None
    if args.sampler_check is not None:
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        chk = sampler_check(args.sampler_check.expanduser(), sizes)
        note += _sampler_md(chk)
    note += f"\nMachine: {platform.machine()}, {args.threads} threads.\n"
    info = {
        "reference_file": args.reference.name,
        "repeats": args.repeats,
        "threads": args.threads,
        "origin": origin,
        **({"sampler_check": chk} if chk else {}),
    }
    write_front(entries, GEO, args.out, info, note)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
