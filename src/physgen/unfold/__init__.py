"""Unfolding: correct detector-level distributions back to particle level.

* :mod:`physgen.unfold.data` - the inputs: Monte Carlo pairs (:class:`UnfoldingMC`, gen and
  reco with pass flags and weights) and data (:class:`UnfoldingData`), read from HDF5 or
  ROOT and validated;
* :mod:`physgen.unfold.omnifold` - OmniFold (Andreassen et al., PRL 124 (2020) 182001,
  arXiv:1911.09107): unbinned, all observables at once, by classifier reweighting;
* :mod:`physgen.unfold.ibu` - iterative Bayesian unfolding (D'Agostini, NIM A362 (1995)
  487), one binned observable at a time, the baseline.

Importing this package imports no torch; the classifiers load it when they train.
"""

from physgen.unfold.data import (
    UnfoldingData,
    UnfoldingMC,
    check_compatible,
    data_from_truth,
    make_data,
    make_mc,
    read_data,
    read_mc,
    write_data,
    write_mc,
)
from physgen.unfold.ibu import IBUResult, event_weights, ibu, write_ibu
from physgen.unfold.omnifold import OmniFoldResult, omnifold, read_weights

__all__ = [
    "IBUResult",
    "OmniFoldResult",
    "UnfoldingData",
    "UnfoldingMC",
    "check_compatible",
    "data_from_truth",
    "event_weights",
    "ibu",
    "make_data",
    "make_mc",
    "omnifold",
    "read_data",
    "read_mc",
    "read_weights",
    "write_data",
    "write_ibu",
    "write_mc",
]
