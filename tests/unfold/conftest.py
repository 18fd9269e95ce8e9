"""Shared samples of the unfolding tests: the Gaussian example of the OmniFold notebooks.

hep-lbdl/OmniFold ``GaussianExample.ipynb``: MC gen ~ N(0, 1), "nature" ~ N(0.2, 0.8),
Gaussian smearing sigma = 0.5, 10 % inefficiency (events failing reco) and 10 % fakes
(events failing gen, present at reco level), failing values held as the dummy -10.

The fakes' reco values are drawn from one fixed distribution, N(0, 1.2), in MC and data
alike: fakes that followed the unfolded truth would differ between MC and data, which no
unfolding that takes the fakes' shape from the MC can correct (IBU and OmniFold alike).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from physgen.unfold import UnfoldingMC, make_mc

MC_MU, MC_SIGMA = 0.0, 1.0
TRUTH_MU, TRUTH_SIGMA = 0.2, 0.8
SMEAR = 0.5
FAKE_SIGMA = 1.2
DUMMY = -10.0


def gaussian_sample(
    n: int,
    mu: float,
    sigma: float,
    seed: int,
    *,
    inefficiency: float = 0.1,
    fakes: float = 0.1,
) -> UnfoldingMC:
    """``n`` events of the Gaussian example (1 observable ``x``)."""
    rng = np.random.default_rng(seed)
    gen = rng.normal(mu, sigma, n)
    reco = gen + rng.normal(0.0, SMEAR, n)
    pass_reco = rng.random(n) >= inefficiency
    pass_gen = rng.random(n) >= fakes
    pass_reco |= ~pass_gen  # a fake is an event seen at reco level only
    reco[~pass_gen] = rng.normal(0.0, FAKE_SIGMA, int((~pass_gen).sum()))
    gen[~pass_gen] = DUMMY
    reco[~pass_reco] = DUMMY
    return make_mc(gen, reco, pass_gen=pass_gen, pass_reco=pass_reco, columns=["x"])


@pytest.fixture()
def gaussian() -> Callable[..., UnfoldingMC]:
    """Factory ``gaussian(n, mu, sigma, seed, inefficiency=0.1, fakes=0.1)``."""
    return gaussian_sample
