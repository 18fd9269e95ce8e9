"""Benchmark: does reflow distillation keep a CFM's quality at 1-4 Euler steps? (issue 22)

One teacher, three ways of sampling it, judged side by side with the front's classifier
(``bench/fast_front.py``: 10,000 showers for the reference's energies, fast classifier,
``--repeats`` trainings, CaloChallenge timing harness):

* the teacher with its own solver (RK4 x 16 for the ``cfm-1-photons`` preset);
* the teacher with ``--steps`` Euler steps and nothing else (what a user gets by cutting steps);
* the student of ``physgen distill`` (rectified-flow reflow, arXiv:2209.03003) with the same
  ``--steps`` Euler steps.

The data are physgen GFlash photons at the 15 dataset-1 energies (seconds to simulate, where
the cascade needs about 25 minutes per 10,000 on 2 cores), so the AUCs measure the sampling
routes against each other, not against the cascade-based front. Steps, each cached under
``~/.cache/physgen/distill-cfm``:

    python bench/distill_cfm.py --teacher-time 12m --distill-time 6m --pairs 15000 --steps 2 --repeats 2

Writes ``bench/results/distill_cfm_1-photons.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "physgen" / "distill-cfm"
SEEDS = {"train": 21, "ref": 22}


def _run(*cmd: str) -> float:
    """Run ``cmd`` (``physgen`` runs as this interpreter's module); its wall time in s."""
    full = [sys.executable, "-m", "physgen", *cmd[1:]] if cmd[0] == "physgen" else list(cmd)
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(full, check=True)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="training and reference showers")
    ap.add_argument("--teacher-time", default="20m")
    ap.add_argument("--distill-time", default="12m")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    data = {k: CACHE / f"ds1-gflash-{args.n}-{s}.h5" for k, s in SEEDS.items()}
    for kind, path in data.items():
        if not path.is_file():
            _run("physgen", "simulate", "--geometry", "1-photons", "--engine", "gflash",
                 "--particle", "photon", "--n", str(args.n), "--energy", "ds1", "--seed",
                 str(SEEDS[kind]), "--workers", "2", "--out", str(path), "-q")  # fmt: skip
    teacher = CACHE / f"cfm-teacher-{args.teacher_time}"
    if not (teacher / "weights.pt").is_file():
        _run("physgen", "train", "--model", "cfm", "--geometry", "1-photons", "--seed", "1",
             "--data", str(data["train"]), "--out", str(teacher), "--max-time",
             args.teacher_time, "--no-progress")  # fmt: skip
    student = CACHE / f"cfm-student-{args.teacher_time}-{args.steps}-{args.distill_time}"
    if not (student / "weights.pt").is_file():
        _run("physgen", "distill", str(teacher), "--out", str(student), "--energies-from",
             str(data["train"]), "--steps", str(args.steps), "--pairs", str(args.pairs),
             "--max-time", args.distill_time, "-q")  # fmt: skip
    k = args.steps
    note = (
        f"Data: physgen GFlash photons at the 15 dataset-1 energies, {args.n:,} for training "
        f"(seed {SEEDS['train']}), {args.n:,} as reference (seed {SEEDS['ref']}). Teacher: the "
        f"cfm-1-photons preset trained for {args.teacher_time}; student: `physgen distill` "
        f"with {k} Euler steps, {args.pairs:,} teacher pairs, {args.distill_time}. The "
        "CaloChallenge points judge Geant4 data: orientation only."
    )
    _run(sys.executable, str(HERE / "fast_front.py"), "--threads", str(args.threads),
         "--repeats", str(args.repeats), "--reference", str(data["ref"]), "--note", note,
         "--entry", f"cfm teacher (RK4 x 16)={teacher}",
         "--entry", f"cfm teacher, Euler x {k}={teacher}@solver=euler,steps={k}",
         "--entry", f"cfm student, Euler x {k}={student}",
         "--out", str(HERE / "results" / "distill_cfm_1-photons"))  # fmt: skip


if __name__ == "__main__":
    main()
