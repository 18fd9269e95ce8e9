"""torch.distributed set-up for data-parallel training launched by ``torchrun``."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "shutdown_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank (0 in a single-process run).
        world: Number of processes.
        local_rank: Rank on this node (selects the GPU).
        device: The device this process trains on.
    """

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files and shows progress."""
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE > 1``).

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or None (CUDA when available). With several
            processes on CUDA each takes GPU ``LOCAL_RANK``.

    Uses the ``nccl`` backend on CUDA and ``gloo`` on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def shutdown_distributed() -> None:
    """Leave the process group (no-op in a single-process run).

    All ranks meet at a barrier first, so no rank tears down its communication threads while
    another still writes its last files or waits on a collective (gloo then aborted with
    "terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(RuntimeError):  # a rank already gone: nothing to wait for
            dist.barrier()
        dist.destroy_process_group()
