"""Few-step students of flow-matching surrogates (straight-path distillation).

A trained ``cfm`` teacher maps base noise ``z`` to a shower ``x1 = Phi(z | c)`` by solving
its ODE (RK4 x 16: 64 network passes per stage). The student is the same network, started
from the teacher's weights and trained on pairs ``(z, x1)`` drawn from the teacher so that
``k`` Euler steps land on ``x1``: at the grid times ``t_i = i / k`` it regresses the
velocity of the straight line from ``z`` to ``x1``,

    L = E_i E_(z, x1) | v((1 - t_i) z + t_i x1, t_i | c) - (x1 - z) |^2 ,

so a student that fits its pairs reproduces the teacher's coupling in ``k`` passes. This is
the reflow / distillation step of rectified flow (Liu, Gong & Liu, arXiv:2209.03003,
Sec. 2.3), restricted to the times a ``k``-step Euler sampler visits; with ``k = 1`` it is
the direct distillation of Luhman & Luhman (arXiv:2101.02388). In the two-stage model the
shape stage is trained with the teacher's energy variables as context and samples with the
student's own.

The student is an ordinary ``cfm`` run directory (``solver: euler``, ``steps: k``), so
``physgen generate``, ``timing``, ``export`` and the contract test treat it like any other.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from physgen._version import __version__
from physgen.calo.config import TrainConfig
from physgen.calo.rundir import config_yaml, load_run, read_run_config
from physgen.errors import ConfigError
from physgen.outputs import atomic_write_text
from physgen.train.rundir import save_torch, write_json

__all__ = ["DistillSettings", "distill", "teacher_pairs"]


@dataclass
class DistillSettings:
    """Options of :func:`distill`.

    Attributes:
        steps: Euler steps of the student (1-16).
        pairs: Teacher samples ``(z, x1)`` to train on (10 % of them validate).
        batch_size: Pairs per optimiser step.
        lr: Adam learning rate (cosine decay to 10 % over ``max_steps``).
        max_steps: Optimiser steps.
        max_time_s: Wall-clock limit of the training part (None: none).
        validate_every: Steps between validations (the best student is kept).
        seed: Seed of the pairs' noise and of the training order.
        teacher_batch: Teacher samples per call while making pairs.
    """

    steps: int = 1
    pairs: int = 20_000
    batch_size: int = 256
    lr: float = 1e-4
    max_steps: int = 20_000
    max_time_s: float | None = None
    validate_every: int = 500
    seed: int = 0
    teacher_batch: int = 2_000

    def check(self) -> None:
        """Raises ConfigError naming the first option out of range."""
        if not 1 <= self.steps <= 16:
            raise ConfigError(f"distill: --steps must be 1-16, got {self.steps}")
        if self.pairs < 100:
            raise ConfigError(f"distill: --pairs must be >= 100, got {self.pairs}")
        if (
            self.batch_size < 1
            or self.max_steps < 1
            or self.validate_every < 1
            or self.teacher_batch < 1
        ):
            raise ConfigError(
                "distill: batch size, max steps, validation interval and teacher batch must "
                f"be >= 1, got {self.batch_size}, {self.max_steps}, {self.validate_every}, "
                f"{self.teacher_batch}"
            )
        if not self.lr > 0:
            raise ConfigError(f"distill: learning rate must be > 0, got {self.lr}")


def teacher_pairs(
    teacher: Any, energies: npt.NDArray[np.float64], seed: int, batch: int = 2_000
) -> dict[str, Tensor]:
    """Noise and the teacher's encoded outputs for incident energies ``energies`` (N,) MeV.

    Returns:
        ``{"c": (N, C), "z": (N, noise_dim), "first": (N, A) (or (N, 0)), "second": (N, B)}``
        float32 on the CPU: conditions, base noise, and the teacher's model variables.
    """
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[Tensor]] = {"c": [], "z": [], "first": [], "second": []}
    e_all = torch.from_numpy(np.asarray(energies, dtype=np.float64).reshape(-1, 1))
    with torch.no_grad():
        for i in range(0, len(e_all), batch):
            c = teacher.codec.condition(e_all[i : i + batch].to(teacher.device)).float()
            z = teacher.noise(c.shape[0], g)
            first, second = teacher.decode_encoded(z, c)
            first = second[:, :0] if first is None else first
            for k, v in (("c", c), ("z", z), ("first", first), ("second", second)):
                out[k].append(v.float().cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def _student_loss(model: Any, p: dict[str, Tensor], k: int, g: torch.Generator) -> Tensor:
    """Straight-path regression at the k Euler grid times (module docstring)."""
    n = p["c"].shape[0]
    t = torch.randint(0, k, (n, 1), generator=g).float() / k
    z, c = p["z"], p["c"]
    if model.two_stage:
        n_e = p["first"].shape[1]
        ze, zs = z[:, :n_e], z[:, n_e:]
        xe, xs = p["first"], p["second"]
        le = ((model.energy_field((1 - t) * ze + t * xe, t, c) - (xe - ze)) ** 2).mean()
        ctx = torch.cat([c, xe], 1)
        ls = ((model.shape_field((1 - t) * zs + t * xs, t, ctx) - (xs - zs)) ** 2).mean()
        total: Tensor = le + ls
        return total
    x1 = torch.cat([p["first"], p["second"]], 1)
    single: Tensor = ((model.shape_field((1 - t) * z + t * x1, t, c) - (x1 - z)) ** 2).mean()
    return single


def _endpoint_error(model: Any, p: dict[str, Tensor]) -> float:
    """Mean squared distance of the model's samples from the teacher's, same noise."""
    with torch.no_grad():
        first, second = model.decode_encoded(p["z"], p["c"])
        err = ((second - p["second"]) ** 2).sum(1)
        if first is not None:
            err = err + ((first - p["first"]) ** 2).sum(1)
        dims = p["first"].shape[1] + p["second"].shape[1]
        return float(err.mean()) / dims


def _subset(p: dict[str, Tensor], idx: Tensor) -> dict[str, Tensor]:
    return {k: v[idx] for k, v in p.items()}


def distill(
    teacher_dir: str | Path,
    out: str | Path,
    energies: npt.NDArray[np.float64],
    settings: DistillSettings,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a ``k``-step Euler student of a ``cfm`` run and write it as a run directory.

    Args:
        teacher_dir: The teacher's run directory (``physgen train --model cfm``).
        out: The student's run directory (must not exist or be empty).
        energies: Incident energies (N,) MeV of the pairs, ideally the teacher's training
            energies; ``settings.pairs`` of them are drawn with replacement.
        settings: Student steps, pairs, optimiser.
        progress: Called with a line of text at each validation.

    Returns:
        The summary written to ``out/summary.json``: endpoint errors of the student and of
        the teacher itself sampled with ``k`` Euler steps (both against the teacher's
        own solver), steps, times.

    Raises:
        ConfigError: A teacher that is not ``cfm``, bad settings, a non-empty ``out``.
    """
    settings.check()
    t_dir, o_dir = Path(teacher_dir), Path(out)
    cfg = read_run_config(t_dir)
    if cfg.model != "cfm":
        raise ConfigError(f"distill: the teacher must be a cfm run; {t_dir} is {cfg.model!r}")
    if o_dir.exists() and (not o_dir.is_dir() or any(o_dir.iterdir())):
        raise ConfigError(
            f"distill: {o_dir} exists and is not empty (or not a directory); choose a new --out"
        )
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    if e.size == 0 or not np.all(np.isfinite(e) & (e > 0)):
        raise ConfigError("distill: incident energies must be finite and > 0 MeV")
    created = not o_dir.exists()
    rng_state = torch.random.get_rng_state()  # the caller's global stream is left as it was
    try:
        torch.manual_seed(settings.seed)
        return _distill(t_dir, o_dir, cfg, e, settings, progress)
    except BaseException:
        if created:  # a failed or interrupted run leaves no half-written --out behind
            shutil.rmtree(o_dir, ignore_errors=True)
        raise
    finally:
        torch.random.set_rng_state(rng_state)


def _distill(
    t_dir: Path,
    o_dir: Path,
    cfg: TrainConfig,
    e: npt.NDArray[np.float64],
    settings: DistillSettings,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    """:func:`distill` after its checks: pairs, student training, run directory."""
    teacher = load_run(t_dir)
    rng = np.random.default_rng(settings.seed)
    t0 = time.monotonic()
    pairs = teacher_pairs(
        teacher, rng.choice(e, settings.pairs), settings.seed, settings.teacher_batch
    )
    t_pairs = time.monotonic() - t0
    n_val = max(settings.pairs // 10, 1)
    val, train = (
        _subset(pairs, torch.arange(n_val)),
        _subset(pairs, torch.arange(n_val, settings.pairs)),
    )
    k = settings.steps
    student_cfg = dataclasses.replace(
        cfg, model_config={**dict(cfg.model_config), "solver": "euler", "steps": k}
    )
    student = load_run(t_dir, overrides={"solver": "euler", "steps": k})
    student.train()
    baseline = _endpoint_error(student.eval(), val)  # the teacher at k Euler steps
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / settings.max_steps, 1)))
    )
    g = torch.Generator().manual_seed(settings.seed + 1)
    best, best_state, best_step = baseline, copy.deepcopy(student.state_dict()), 0
    o_dir.mkdir(parents=True, exist_ok=True)
    metrics = (o_dir / "metrics.jsonl").open("w")
    status, step, t1 = "completed", 0, time.monotonic()
    n_train = train["c"].shape[0]
    try:
        while step < settings.max_steps:
            idx = torch.randint(0, n_train, (settings.batch_size,), generator=g)
            loss = _student_loss(student, _subset(train, idx), k, g)
            loss_value = float(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            step += 1
            timed_out = (
                settings.max_time_s is not None and time.monotonic() - t1 > settings.max_time_s
            )
            if step % settings.validate_every == 0 or step == settings.max_steps or timed_out:
                err = _endpoint_error(student.eval(), val)
                student.train()
                if err < best:
                    best, best_state, best_step = err, copy.deepcopy(student.state_dict()), step
                rec = {"step": step, "loss": loss_value, "val_endpoint_mse": err, "best": best,
                       "elapsed_s": time.monotonic() - t1}  # fmt: skip
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                if progress is not None:
                    progress(f"step {step}: loss {loss_value:.4g}, endpoint MSE {err:.4g}")
            if timed_out:
                status = "max-time"
                break
    finally:
        metrics.close()
    atomic_write_text(o_dir / "config.yaml", config_yaml(student_cfg))
    shutil.copyfile(t_dir / "transforms.json", o_dir / "transforms.json")
    save_torch(
        {"model": "cfm", "state_dict": best_state, "step": best_step, "val_loss": best},
        o_dir / "weights.pt",
    )
    training_s = time.monotonic() - t1
    summary = {  # the keys of a training run's summary.json first: the student is a run
        "status": status,
        "step": step,
        "best_val_loss": best,
        "elapsed_s": round(t_pairs + training_s, 1),
        "student_steps": k,
        "optimiser_steps": step,
        "best_step": best_step,
        "endpoint_mse_student": best,
        "endpoint_mse_teacher_at_k_euler_steps": baseline,
        "pairs_s": round(t_pairs, 1),
        "training_s": round(training_s, 1),
    }
    write_json(o_dir / "summary.json", summary)
    write_json(
        o_dir / "provenance.json",
        {
            "physgen_version": __version__,
            "torch_version": torch.__version__,
            "teacher": t_dir.name,
            "teacher_solver": f"{teacher.config.solver} x {teacher.config.steps}",
            "settings": asdict(settings),
            "method": "straight-path distillation at the k Euler grid times "
            "(rectified-flow reflow, arXiv:2209.03003)",
        },
    )
    return summary
