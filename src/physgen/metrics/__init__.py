"""Metrics on arrays: weighted two-sample classifiers (AUC, JSD, per-event likelihood ratios).

Nothing here knows about calorimeters; :mod:`physgen.calo.evaluate` builds the CaloChallenge
inputs on top of it.
"""

from physgen.metrics.classifier import ClassifierConfig, binary_metrics, get_preset
from physgen.metrics.twosample import (
    LikelihoodRatio,
    TwoSampleResult,
    cross_fit_ratios,
    fit_likelihood_ratio,
    two_sample_test,
)

__all__ = [
    "ClassifierConfig",
    "LikelihoodRatio",
    "TwoSampleResult",
    "binary_metrics",
    "cross_fit_ratios",
    "fit_likelihood_ratio",
    "get_preset",
    "two_sample_test",
]
