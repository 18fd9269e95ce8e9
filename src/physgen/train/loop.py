"""The one training loop of physgen: AdamW, schedule, clipping, EMA, early stopping,
checkpoints, exact resume, data parallelism and clean stops on SIGTERM/SIGINT.

:func:`run_loop` trains any :class:`~physgen.core.generator.ConditionalGenerator` on any
:class:`TrainingData` (calorimeter shower files: :class:`~physgen.train.data.ShowerData`;
in-memory arrays: :class:`~physgen.train.data.ArrayData`) and writes the run directory's
``weights.pt`` (best EMA weights), ``checkpoint.pt``, ``metrics.jsonl`` and ``summary.json``.
Calorimeter training (:func:`physgen.calo.train.train`) and generic density fits
(:func:`physgen.density.fit`) both go through it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from physgen.core.batch import Encoded
from physgen.core.generator import ConditionalGenerator
from physgen.errors import ConfigError
from physgen.outputs import DiskFullError, atomic_write_text, is_disk_full
from physgen.train.config import OptimConfig
from physgen.train.distributed import DistInfo, init_distributed, shutdown_distributed
from physgen.train.rundir import load_weights_file, save_torch, write_json

__all__ = ["RunSettings", "TrainResult", "TrainingData", "run_guarded", "run_loop"]

log = logging.getLogger(__name__)
_NOISE, _VAL, _INIT = 0x4E4F, 0x5641, 0x494E

Arrays = tuple[npt.NDArray[Any], npt.NDArray[Any]]


class TrainingData(Protocol):
    """Train/validation access for :func:`run_loop`; arrays are ``(conditions, x)``."""

    @property
    def n_train(self) -> int: ...

    @property
    def n_validation(self) -> int: ...

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch."""

    def batches(
        self, epoch: int, batch_size: int, *, skip: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[Arrays]:
        """The training batches of one epoch from batch ``skip`` on (rows ``rank::world``)."""

    def validation(self) -> Arrays:
        """The validation rows."""

    def fit_sample(self) -> Arrays:
        """Training rows for fitting the codec."""


@dataclass
class RunSettings:
    """What the loop needs from a run's config.

    Attributes:
        model: Registered model name (recorded in the weights and checkpoint files).
        seed: Run seed (batch order, noise, validation noise).
        optim: Optimisation options.
    """

    model: str
    seed: int
    optim: OptimConfig


@dataclass
class TrainResult:
    """How a training call ended.

    Attributes:
        run_dir: The run directory.
        status: ``completed``, ``early-stopped``, ``max-time``, ``stopped`` (step limit) or
            ``interrupted`` (SIGTERM or SIGINT; resumable like ``max-time``).
        step: Optimisation steps done in total (over all sessions of the run).
        epoch: Epoch index reached.
        best_val_loss: Best validation loss (EMA weights).
        elapsed_s: Wall time of this call.
        n_parameters: Trainable parameters.
    """

    run_dir: Path
    status: str
    step: int
    epoch: int
    best_val_loss: float
    elapsed_s: float
    n_parameters: int


class _LossModule(nn.Module):
    """Wraps ``model.training_step`` as ``forward`` so DistributedDataParallel sees the call."""

    def __init__(self, model: ConditionalGenerator) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Encoded, generator: torch.Generator) -> dict[str, Tensor]:
        return self.model.training_step(batch, generator)


def _load_optimizers(
    opts: Mapping[str, torch.optim.Optimizer],
    scheds: dict[str, Any],
    ck: dict[str, Any],
    path: Path,
) -> None:
    """Restore optimiser and scheduler states (also from checkpoints of one optimiser)."""
    o_state, s_state = ck["optimizer"], ck["scheduler"]
    if "state" in o_state and "param_groups" in o_state:  # written before one-per-loss
        if len(opts) != 1:
            raise ConfigError(
                f"{path}: written by an older physgen with one optimiser for this model; "
                "this version keeps one per network, so the run cannot be resumed (its "
                "weights.pt still loads)"
            )
        o_state, s_state = {next(iter(opts)): o_state}, {next(iter(opts)): s_state}
    if set(o_state) != set(opts):
        raise ConfigError(f"{path}: optimisers {sorted(o_state)} do not match {sorted(opts)}")
    for name, opt in opts.items():
        opt.load_state_dict(o_state[name])
        scheds[name].load_state_dict(s_state[name])


def _lr_factor(o: OptimConfig, total: int):  # type: ignore[no-untyped-def]
    warm = min(o.warmup_steps, max(total - 1, 0))
    lo = o.final_lr_fraction

    def factor(step: int) -> float:
        if o.schedule == "constant":
            return 1.0
        if o.schedule == "onecycle":  # 30 % linear rise from lr/25, cosine fall to lr*lo
            rise = max(1, int(0.3 * total))
            if step < rise:
                return 0.04 + 0.96 * step / rise
            p = min(1.0, (step - rise) / max(1, total - rise))
            return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p))
        if step < warm:
            return (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p))

    return factor


class _EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step)) if self.decay > 0 else 0.0
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1 - d)
        for sb, b in zip(self.shadow.buffers(), model.buffers()):
            sb.copy_(b)


def _to_batch(
    model: ConditionalGenerator,
    e: npt.NDArray[Any],
    x: npt.NDArray[Any],
    device: torch.device,
    generator: torch.Generator | None,
) -> Encoded:
    et = torch.from_numpy(np.ascontiguousarray(e)).to(device)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    batch: Encoded = model.codec.encode(xt, et, generator)
    return batch


@torch.no_grad()
def _validation_loss(
    model: ConditionalGenerator, val: Arrays, seed: int, device: torch.device
) -> float:
    g = torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, _VAL]).generate_state(1)[0])
    )
    e, x = val
    total, n = 0.0, 0
    for i in range(0, e.shape[0], 2048):
        batch = _to_batch(model, e[i : i + 2048], x[i : i + 2048], device, g)
        total += float(model.validation_loss(batch, g)) * len(batch)
        n += len(batch)
    return total / max(n, 1)


@torch.no_grad()
def _diagnostics(
    model: ConditionalGenerator, val: Arrays, seed: int, device: torch.device
) -> dict[str, float]:
    g = torch.Generator().manual_seed(_seed_from(seed, _VAL, 1))
    e, x = val
    batch = _to_batch(model, e[:2048], x[:2048], device, g)
    return {f"diag_{k}": float(v) for k, v in model.diagnostics(batch, g).items()}


def _seed_from(*keys: int) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


class _StopSignals:
    """SIGTERM / SIGINT -> a flag the training loop checks after every step.

    Installed only in the main thread (Python delivers signals there); the previous handlers
    are restored on exit. A second signal while the flag is set restores them and re-raises
    the signal, so a hung run can still be killed.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signal.Signals(signum).name
        log.warning("%s: stopping after this step with a checkpoint", self.received)

    def _restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()


def _any_rank(flag: bool, dist_info: DistInfo) -> bool:
    """``flag`` OR-ed over all processes (every rank must stop at the same step)."""
    if dist_info.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=dist_info.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def run_loop(
    model: ConditionalGenerator,
    data: TrainingData,
    settings: RunSettings,
    out: Path,
    dist_info: DistInfo,
    *,
    resume: bool,
    max_time_s: float | None,
    progress: bool | None,
    stop_after_steps: int | None,
    log_every: int,
    t_start: float,
    write_run_files: Callable[[], None] = lambda: None,
    augment: Callable[[npt.NDArray[Any], torch.Generator], npt.NDArray[Any]] | None = None,
) -> TrainResult:
    """Train ``model`` (already on ``dist_info.device``, codec fitted) on ``data``.

    Args:
        model: The model.
        data: Training and validation rows.
        settings: Model name, seed and optimisation options.
        out: Run directory (created; its config files are written by ``write_run_files``).
        dist_info: Process group (world 1: a single process).
        resume: Continue from ``out/checkpoint.pt``: same batches, noise and schedule, so the
            final weights equal those of an uninterrupted run.
        max_time_s: Stop cleanly (checkpoint written) after this much wall time since
            ``t_start``. SIGTERM and SIGINT stop the same way after the current step, with
            status ``interrupted``; a second signal aborts at once.
        progress: Show a tqdm bar (None: only on a terminal).
        stop_after_steps: Stop (with a checkpoint) once this many total steps are done.
        log_every: Steps between metric lines.
        t_start: ``time.monotonic()`` at the start of the call.
        write_run_files: Called on the main process once the checkpoint (if any) is loaded,
            before training: writes the config, codec summary and provenance.
        augment: ``augment(x, generator) -> x`` applied to every training batch.

    Raises:
        ConfigError: A run that already ended (resume), or a diverging loss.
    """
    from tqdm.auto import tqdm

    cfg, o, dev = settings, settings.optim, dist_info.device
    model.dataset_size = data.n_train
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opts = {
        name: torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        for name, groups in model.optimizer_groups(o.lr).items()
    }
    steps_per_epoch = data.steps_per_epoch(o.batch_size)
    total_steps = steps_per_epoch * o.epochs
    scheds = {
        name: torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(o, total_steps))
        for name, opt in opts.items()
    }
    first_opt = next(iter(opts.values()))
    ema = _EMA(model, o.ema_decay)
    noise_gen = torch.Generator()  # reseeded from (seed, rank, step) at every step
    step, epoch, skip = 0, 0, 0
    earlier_s = 0.0  # wall time of earlier sessions of this run (resume)
    best, bad = math.inf, 0
    target = math.inf  # a validation resets the patience when it beats this by min_delta
    if resume:
        ck = load_weights_file(out / "checkpoint.pt", cfg.model)
        model.load_state_dict(ck["state_dict"])
        ema.shadow.load_state_dict(ck["ema"])
        _load_optimizers(opts, scheds, ck, out / "checkpoint.pt")
        torch.set_rng_state(ck["torch_rng"])
        step, epoch, skip = int(ck["step"]), int(ck["epoch"]), int(ck["step_in_epoch"])
        best, bad = float(ck["best_val_loss"]), int(ck["bad_validations"])
        target = float(ck.get("patience_reference", best))
        earlier_s = float(ck.get("elapsed_total_s", 0.0))
        if ck["status"] in ("completed", "early-stopped"):
            raise ConfigError(f"{out}: the run already ended ({ck['status']}); nothing to resume")

    main = dist_info.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
        metrics_path = out / "metrics.jsonl"
        if resume and metrics_path.is_file():  # drop lines logged after the checkpoint
            kept = [
                ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= step
            ]
            atomic_write_text(metrics_path, "".join(f"{ln}\n" for ln in kept))
        write_run_files()

    loss_module: nn.Module = _LossModule(model)
    if dist_info.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, find_unused_parameters=model.ddp_find_unused_parameters
        )
    val = data.validation()
    use_amp = o.amp and dev.type == "cuda"
    validate_every = o.validate_every or steps_per_epoch
    checkpoint_every = o.checkpoint_every or steps_per_epoch
    status = "completed"

    def checkpoint(st: str, in_epoch: int) -> None:
        if not main:
            return
        save_torch(
            {
                "model": cfg.model,
                "state_dict": model.state_dict(),
                "ema": ema.shadow.state_dict(),
                "optimizer": {name: opt.state_dict() for name, opt in opts.items()},
                "scheduler": {name: sch.state_dict() for name, sch in scheds.items()},
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "epoch": epoch,
                "step_in_epoch": in_epoch,
                "best_val_loss": best,
                "bad_validations": bad,
                "patience_reference": target,
                "status": st,
                "elapsed_total_s": earlier_s + time.monotonic() - t_start,
            },
            out / "checkpoint.pt",
        )

    def log_line(record: dict[str, Any]) -> None:
        if main:
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=(not main) or (None if progress is None else not progress),
        unit="step",
        dynamic_ncols=True,
        desc=f"train {cfg.model}",
    )
    t_log, n_log = time.monotonic(), 0
    stop = False
    in_epoch = skip
    with _StopSignals() as signals:
        try:
            while epoch < o.epochs and not stop:
                model.train()
                in_epoch = skip
                for e_np, x_np in data.batches(
                    epoch, o.batch_size, skip=skip, rank=dist_info.rank, world=dist_info.world
                ):
                    noise_gen.manual_seed(_seed_from(cfg.seed, _NOISE, dist_info.rank, step))
                    if augment is not None:
                        x_np = augment(x_np, noise_gen)
                    batch = _to_batch(model, e_np, x_np, dev, noise_gen)
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                        losses = loss_module(batch, noise_gen)
                    unknown = set(losses) - set(opts)
                    if unknown:
                        raise ConfigError(
                            f"{cfg.model}: training_step returned losses for unknown "
                            f"optimisers {sorted(unknown)}"
                        )
                    for opt in opts.values():  # every gradient, so none is stale at clipping
                        opt.zero_grad(set_to_none=True)
                    loss = sum(losses.values(), torch.zeros((), device=dev))
                    loss.backward()
                    if o.grad_clip > 0:
                        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip))
                    else:
                        grad_norm = None  # not computed without clipping
                    for name in losses:
                        opts[name].step()
                    if len(losses) == len(scheds):
                        for sch in scheds.values():
                            sch.step()
                    else:  # an idle network's schedule advances too (same lr as one optimiser)
                        with warnings.catch_warnings():
                            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
                            for sch in scheds.values():
                                sch.step()
                    ema.update(model, step)
                    step += 1
                    in_epoch += 1
                    n_log += o.batch_size
                    lossf = float(loss.detach())
                    if not math.isfinite(lossf):
                        raise ConfigError(
                            f"training diverged at step {step} (loss {lossf}); lower optim.lr or "
                            "raise optim.grad_clip"
                        )
                    if step % log_every == 0 or step == total_steps:
                        now = time.monotonic()
                        rate = n_log / max(now - t_log, 1e-9)
                        t_log, n_log = now, 0
                        lr = first_opt.param_groups[0]["lr"]
                        bar.set_postfix(
                            loss=f"{lossf:.4g}", lr=f"{lr:.2e}", samples_s=f"{rate:.0f}"
                        )
                        log_line(
                            {
                                "step": step,
                                "epoch": epoch,
                                "loss": lossf,
                                "lr": lr,
                                "grad_norm": grad_norm,
                                "samples_per_s": rate,
                                "elapsed_s": now - t_start,
                            }
                        )
                    bar.update(1)
                    end_of_epoch = in_epoch >= steps_per_epoch
                    if step % validate_every == 0 or end_of_epoch:
                        vloss = _validation_loss(ema.shadow, val, cfg.seed, dev)  # type: ignore[arg-type]
                        if vloss < target - o.min_delta:  # a real improvement
                            target, bad = vloss, 0
                        else:
                            bad += 1
                        if vloss < best:  # the best weights are kept in any case
                            best = vloss
                            if main:
                                save_torch(
                                    {
                                        "model": cfg.model,
                                        "state_dict": ema.shadow.state_dict(),
                                        "step": step,
                                        "val_loss": vloss,
                                    },
                                    out / "weights.pt",
                                )
                        log_line(
                            {
                                "step": step,
                                "epoch": epoch,
                                "val_loss": vloss,
                                "best": best,
                                "elapsed_s": time.monotonic() - t_start,
                                **_diagnostics(ema.shadow, val, cfg.seed, dev),  # type: ignore[arg-type]
                            }
                        )
                        if o.patience and bad >= o.patience:
                            status, stop = "early-stopped", True
                    if end_of_epoch:
                        epoch, in_epoch, skip = epoch + 1, 0, 0
                    if stop:
                        break
                    if step % checkpoint_every == 0:
                        checkpoint("running", in_epoch)
                    if max_time_s is not None and time.monotonic() - t_start > max_time_s:
                        status, stop = "max-time", True
                        break
                    if stop_after_steps is not None and step >= stop_after_steps:
                        status, stop = "stopped", True
                        break
                    if _any_rank(signals.received is not None, dist_info):
                        status, stop = "interrupted", True
                        break
                if not stop and in_epoch:  # the data ran out before steps_per_epoch batches
                    epoch, in_epoch = epoch + 1, 0
                skip = 0
        finally:
            bar.close()
    if main and not (out / "weights.pt").is_file():  # stopped before the first validation
        best = _validation_loss(ema.shadow, val, cfg.seed, dev)  # type: ignore[arg-type]
        save_torch(
            {
                "model": cfg.model,
                "state_dict": ema.shadow.state_dict(),
                "step": step,
                "val_loss": best,
            },
            out / "weights.pt",
        )
    checkpoint(status, in_epoch if status in ("max-time", "stopped", "interrupted") else 0)
    elapsed = time.monotonic() - t_start
    if main:
        write_json(
            out / "summary.json",
            {
                "status": status,
                "step": step,
                "epoch": epoch,
                "total_steps": total_steps,
                "best_val_loss": best,
                "elapsed_s": elapsed,
                "elapsed_total_s": earlier_s + elapsed,
                "n_parameters": n_params,
            },
        )
    log.info("training %s after %d steps (best validation loss %.4g)", status, step, best)
    return TrainResult(out, status, step, epoch, best, elapsed, n_params)


def run_guarded(
    out: Path, resume: bool, device: str | None, body: Callable[[DistInfo], TrainResult]
) -> TrainResult:
    """Run ``body(dist_info)`` inside a (possibly distributed) process group, cleaning up.

    A new run that fails before its first checkpoint leaves no folder behind (an empty folder
    given as ``out`` is left empty); one with a checkpoint is kept, since ``resume`` can
    continue it. A full disk becomes
    :class:`~physgen.outputs.DiskFullError`. The process group is shut down if this call
    created it.
    """
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dist_info: DistInfo = init_distributed(device)
    fresh = not resume and not out.exists()
    was_empty = not resume and out.is_dir() and not any(out.iterdir())
    try:
        return body(dist_info)
    except BaseException as exc:
        if dist_info.is_main and not (out / "checkpoint.pt").is_file():
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            elif was_empty:  # the user's empty folder stays, empty
                for child in list(out.iterdir()):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)) and is_disk_full(exc):
            if out.is_dir():
                raise DiskFullError(
                    out, outcome="the last checkpoint is kept; free space, then --resume"
                ) from exc
            raise DiskFullError(out) from exc
        raise
    finally:
        if owns_group and dist_info.world > 1:
            shutdown_distributed()
