"""Resonant anomaly detection: weakly supervised, density-based and unsupervised scores, their
performance (ROC, SIC) and the bump hunt.

* :mod:`physgen.anomaly.data` - events (``m_jj`` and features), signal region and sidebands,
  files in the LHC Olympics layout;
* :mod:`physgen.anomaly.classify` - CWoLa hunting, the idealized detector, the supervised
  reference, k-fold cross-fitting;
* :mod:`physgen.anomaly.densities` - CATHODE, ANODE, the flow low-density score;
* :mod:`physgen.anomaly.unsupervised` - the autoencoder score;
* :mod:`physgen.anomaly.metrics` - ROC, SIC, rejection, median bands over runs;
* :mod:`physgen.anomaly.bumphunt` - the dijet-function sideband fit and the local significance;
* :mod:`physgen.anomaly.plots`, :mod:`physgen.anomaly.report` - figures and the HTML report.

Importing this package imports no torch; the methods load it when they train.
"""

from physgen.anomaly.bumphunt import (
    BumpHuntResult,
    SidebandFit,
    bump_hunt,
    dijet_function,
    fit_sidebands,
    poisson_significance,
)
from physgen.anomaly.classify import AnomalyResult, cwola, idealized, kfold_scores, supervised
from physgen.anomaly.data import AnomalyEvents, Regions, read_events, toy_events
from physgen.anomaly.densities import anode, cathode, flow_density
from physgen.anomaly.metrics import (
    PerformanceBand,
    auc,
    max_sic,
    performance_band,
    rejection_at,
    roc_curve,
    sic_curve,
)
from physgen.anomaly.unsupervised import autoencoder

__all__ = [
    "AnomalyEvents",
    "AnomalyResult",
    "BumpHuntResult",
    "PerformanceBand",
    "Regions",
    "SidebandFit",
    "anode",
    "auc",
    "autoencoder",
    "bump_hunt",
    "cathode",
    "cwola",
    "dijet_function",
    "fit_sidebands",
    "flow_density",
    "idealized",
    "kfold_scores",
    "max_sic",
    "performance_band",
    "poisson_significance",
    "read_events",
    "rejection_at",
    "roc_curve",
    "sic_curve",
    "supervised",
    "toy_events",
]
