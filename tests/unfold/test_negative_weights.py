"""The two-sample classifier with negative event weights (``allow_negative=True``), as
OmniFold's background subtraction uses it (neural positive reweighting, arXiv:2007.11586).

Sample 1 is N(mu, 1) plus N(0, 1) events minus as many other N(0, 1) events (weight -1):
net N(mu, 1). Against N(0, 1) the density ratio must be exp(mu x - mu^2 / 2), as for the
clean sample (tests/metrics/test_twosample.py), not that of the mixture.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics import ClassifierConfig, fit_likelihood_ratio

MU = 0.6
SMALL = dataclasses.replace(ClassifierConfig.fast(), hidden=32, max_epochs=30, patience=5)


def test_negative_weights_subtract_a_component():
    rng = np.random.default_rng(0)
    n = 6000
    x0 = rng.normal(size=(n, 1))
    x1 = np.concatenate(
        [rng.normal(MU, 1, (n, 1)), rng.normal(size=(n, 1)), rng.normal(size=(n, 1))]
    )
    w1 = np.concatenate([np.ones(2 * n), -np.ones(n)])
    lr = fit_likelihood_ratio(x0, x1, w1=w1, config=SMALL, seed=0, threads=1, allow_negative=True)
    x = np.linspace(-1.5, 1.5, 7)[:, None]
    exact = np.exp(MU * x[:, 0] - MU**2 / 2)
    np.testing.assert_allclose(lr(x), exact, rtol=0.2)
    mixture = 0.5 + 0.5 * exact  # what the positive events alone would give
    assert (
        np.abs(np.log(lr(x)) - np.log(exact)).mean()
        < np.abs(np.log(mixture) - np.log(exact)).mean()
    )


def test_negative_weights_need_the_flag_and_a_positive_total():
    x = np.zeros((20, 1))
    w = np.ones(20)
    w[:5] = -1.0
    with pytest.raises(DataFormatError, match="w1: weights must be finite, >= 0"):
        fit_likelihood_ratio(x, x + 1, w1=w, config=SMALL)
    with pytest.raises(DataFormatError, match="w1: weights must be finite with a total > 0"):
        fit_likelihood_ratio(x, x + 1, w1=-w, config=SMALL, allow_negative=True)
    with pytest.raises(DataFormatError, match="w0: weights must be finite with a total > 0"):
        fit_likelihood_ratio(x, x + 1, w0=np.full(20, np.nan), config=SMALL, allow_negative=True)
    # the isotonic calibration needs non-negative weights: refused, whatever the weights
    with pytest.raises(ConfigError, match="calibrated: cannot be combined with allow_negative"):
        fit_likelihood_ratio(x, x + 1, config=SMALL, allow_negative=True, calibrated=True)
