"""Shared fixtures: paths to the official CaloChallenge files, small shower files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
