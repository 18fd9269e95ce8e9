"""Trusting generated samples: refine them, know what they are worth, know how uncertain they are.

* :mod:`physgen.trust.dctr`: post-hoc refinement by classifier weights (DCTR, arXiv:1907.08209)
  on feature arrays; :mod:`physgen.calo.refine` and ``physgen refine`` apply it to showers.
* :mod:`physgen.trust.amplification`: the statistical power of generated samples
  (GANplification, arXiv:2008.06545).
* :mod:`physgen.trust.ensemble`: model uncertainty from deep, bootstrap and Bayesian
  ensembles: bands on histograms and their coverage (the Bayesian flow itself is
  ``FlowConfig.bayesian_layers``, built on :mod:`physgen.nn.bayesian`).

Importing this package loads numpy only; torch is imported when a model is trained or used.
"""

from __future__ import annotations

from physgen.trust.amplification import (
    AmplificationResult,
    Binning,
    amplification,
    conditional_quantile_binning,
    discrepancy,
    equivalent_events,
    quantile_binning,
)
from physgen.trust.ensemble import (
    Band,
    EnsembleFit,
    bin_probabilities,
    fit_ensemble,
    histogram_band,
)

__all__ = [
    "AmplificationResult",
    "Band",
    "Binning",
    "EnsembleFit",
    "amplification",
    "bin_probabilities",
    "conditional_quantile_binning",
    "discrepancy",
    "equivalent_events",
    "fit_ensemble",
    "histogram_band",
    "quantile_binning",
]
