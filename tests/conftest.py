"""Shared fixtures: paths to the official CaloChallenge files, small shower files, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from clitools import Run

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared reference folder beside the checkout (or $PHYSGEN_SHARED)."""
    env = os.environ.get("PHYSGEN_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def binning_dir() -> Path:
    d = shared_dir() / "calochallenge" / "binning"
    if not d.is_dir():
        pytest.skip(f"official binning XMLs not found at {d} (set PHYSGEN_SHARED)")
    return d


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        action="store",
        default="cpu",
        help="torch device for model tests (cpu, cuda, cuda:N); e.g. on a lent GPU: --device cuda",
    )


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The torch device given with ``--device`` (skips if it is not available)."""
    import torch

    dev = str(request.config.getoption("--device"))
    if dev.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {dev}: CUDA is not available on this machine")
    return dev


@pytest.fixture()
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*args) -> (exit status, stdout, stderr)`` of ``physgen ARGS`` in this process."""
    from physgen.cli.main import main

    def _run(*args: object) -> tuple[int, str, str]:
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run
