"""Trusting generated samples: how much a generated sample is worth, and (to come) post-hoc
refinement and model uncertainties (issue 20).

* :mod:`physgen.trust.amplification`: the statistical power of generated samples
  (GANplification, arXiv:2008.06545).
"""

from __future__ import annotations

from physgen.trust.amplification import (
    AmplificationResult,
    Binning,
    amplification,
    discrepancy,
    equivalent_events,
    quantile_binning,
)

__all__ = [
    "AmplificationResult",
    "Binning",
    "amplification",
    "discrepancy",
    "equivalent_events",
    "quantile_binning",
]
