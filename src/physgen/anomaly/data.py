"""Events for resonant anomaly detection: the resonant feature, the other features, regions.

A resonance is a local over-density in one feature, the dijet invariant mass ``m_jj``
(TeV): the *signal region* (SR) is a window in ``m_jj``, the *sidebands* (SB) the rest of
its range (or two adjacent windows). Weakly supervised methods compare the SR with a
background template derived from the SB (Collins, Howe & Nachman, PRL 121 (2018) 241803;
Hallin et al., PRD 106 (2022) 055006; the LHC Olympics 2020, Kasieczka et al., Rep. Prog.
Phys. 84 (2021) 124201).

Files (:func:`read_events`):

* ``.npy``, the LHC Olympics R&D layout published with CATHODE: column 0 = ``m_jj`` [TeV],
  then the features (``m_j1``, ``Δm_j`` [TeV], ``τ21`` of both jets), optionally the truth
  label (1 signal, 0 background) in the last column (``labels="last"``);
* HDF5 / ``.npz`` / Parquet / ROOT with named columns (``m_jj``, the feature names and
  ``label``), read through :mod:`physgen.columns`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "LHCO_FEATURES",
    "AnomalyEvents",
    "Regions",
    "read_events",
    "sample_mjj",
    "toy_events",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Feature names of the LHC Olympics R&D arrays after ``m_jj`` (CATHODE's feature set).
LHCO_FEATURES = ("m_j1", "delta_mj", "tau21_j1", "tau21_j2")
#: Default column names in named-column files.
MJJ_NAME, LABEL_NAME = "m_jj", "label"


@dataclass(frozen=True, eq=False)
class AnomalyEvents:
    """Events with the resonant feature, the other features and optional truth labels.

    Attributes:
        mjj: ``(N,)`` resonant feature (``m_jj`` in TeV for dijets).
        features: ``(N, F)`` the features the methods look at.
        labels: ``(N,)`` 1 signal / 0 background, or None (real data).
        names: F feature names.
        source: Where the events came from (for messages).
    """

    mjj: F64
    features: F64
    labels: I64 | None = None
    names: tuple[str, ...] = ()
    source: str = "events"

    def __post_init__(self) -> None:
        mjj = np.asarray(self.mjj, dtype=np.float64)
        x = np.asarray(self.features, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        if mjj.ndim != 1 or x.ndim != 2 or x.shape[0] != mjj.shape[0]:
            raise DataFormatError(
                f"{self.source}: m_jj {mjj.shape} and features {x.shape} must be (N,) and (N, F)"
            )
        if x.shape[1] < 1:
            raise DataFormatError(f"{self.source}: no feature columns besides m_jj")
        for what, a in (("m_jj", mjj), ("features", x)):
            if not np.isfinite(a).all():
                row = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))[0])
                raise DataFormatError(f"{self.source}: {what} hold NaN or inf (first: row {row})")
        labels = None
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.shape != mjj.shape or not np.isin(lab, (0, 1)).all():
                raise DataFormatError(
                    f"{self.source}: labels must be 0 (background) or 1 (signal), one per event"
                )
            labels = lab.astype(np.int64)
        names = tuple(self.names) or tuple(f"x{i}" for i in range(x.shape[1]))
        if len(names) != x.shape[1]:
            raise DataFormatError(f"{self.source}: {len(names)} names for {x.shape[1]} features")
        object.__setattr__(self, "mjj", mjj)
        object.__setattr__(self, "features", x)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return int(self.mjj.shape[0])

    @property
    def n_features(self) -> int:
        """F."""
        return int(self.features.shape[1])

    def select(self, keep: npt.NDArray[Any]) -> AnomalyEvents:
        """The events at ``keep`` (a boolean mask or indices)."""
        lab = None if self.labels is None else self.labels[keep]
        return AnomalyEvents(self.mjj[keep], self.features[keep], lab, self.names, self.source)

    def require_labels(self, option: str) -> I64:
        """The labels, or a :class:`~physgen.errors.ConfigError` naming ``option``."""
        if self.labels is None:
            raise ConfigError(f"{option}: {self.source} has no truth labels")
        return self.labels

    def concat(self, other: AnomalyEvents) -> AnomalyEvents:
        """These events followed by ``other`` (same features; labels kept if both have them)."""
        if other.n_features != self.n_features:
            raise DataFormatError(
                f"{other.source} has {other.n_features} features, {self.source} {self.n_features}"
            )
        both = self.labels is not None and other.labels is not None
        lab = np.concatenate([self.labels, other.labels]) if both else None  # type: ignore[list-item]
        return AnomalyEvents(
            np.concatenate([self.mjj, other.mjj]),
            np.concatenate([self.features, other.features]),
            lab,
            self.names,
            self.source,
        )


@dataclass(frozen=True)
class Regions:
    """Signal region and sidebands in the resonant feature.

    Attributes:
        signal_region: ``(lo, hi)`` of the SR (TeV); the LHCO R&D SR is 3.3-3.7 TeV.
        sidebands: ``(lo, hi)`` outer edges of the sidebands (the SB is ``[lo, SR lo)`` and
            ``[SR hi, hi)``); None: every event outside the SR.
    """

    signal_region: tuple[float, float] = (3.3, 3.7)
    sidebands: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.signal_region)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"signal region: expected lo < hi, got {self.signal_region}")
        if self.sidebands is not None:
            slo, shi = (float(v) for v in self.sidebands)
            if not (slo < lo and shi > hi):
                raise ConfigError(
                    f"sidebands {self.sidebands}: must enclose the signal region {self.signal_region}"
                    " on both sides (the sidebands may not overlap it)"
                )

    def in_sr(self, mjj: F64) -> npt.NDArray[np.bool_]:
        """Events inside the signal region."""
        lo, hi = self.signal_region
        return (mjj >= lo) & (mjj < hi)  # type: ignore[no-any-return]

    def in_sb(self, mjj: F64) -> npt.NDArray[np.bool_]:
        """Events in the sidebands."""
        out = ~self.in_sr(mjj)
        if self.sidebands is not None:
            out &= (mjj >= self.sidebands[0]) & (mjj < self.sidebands[1])
        return out  # type: ignore[no-any-return]

    def check(self, events: AnomalyEvents, *, need_sidebands: bool, min_sb: int = 0) -> None:
        """Check that the regions fit the events' ``m_jj`` range.

        Raises:
            ConfigError: The SR is not inside the data's ``m_jj`` range, holds no events, or
                (``need_sidebands``) one sideband is empty or both hold fewer than ``min_sb``
                events together.
        """
        m = events.mjj
        lo, hi = self.signal_region
        if len(m) == 0:
            raise DataFormatError(f"{events.source}: no events")
        if not self.in_sr(m).any():
            raise ConfigError(
                f"signal region {self.signal_region}: no events of {events.source} (its m_jj "
                f"range is {m.min():.4g} to {m.max():.4g} TeV)"
            )
        if need_sidebands:
            if lo <= m.min() or hi >= m.max():
                raise ConfigError(
                    f"signal region {self.signal_region}: must lie inside the m_jj range of "
                    f"{events.source} ({m.min():.4g} to {m.max():.4g} TeV), with sidebands on "
                    "both sides"
                )
            sb = self.in_sb(m)
            below, above = int((sb & (m < lo)).sum()), int((sb & (m >= hi)).sum())
            if below == 0 or above == 0 or below + above < max(min_sb, 1):
                raise ConfigError(
                    f"sidebands: {below} events of {events.source} below and {above} above the "
                    f"signal region {self.signal_region}; both must hold events, at least "
                    f"{max(min_sb, 1)} together"
                )


def sample_mjj(
    sr_mjj: F64, n: int, *, bandwidth: float, bounds: tuple[float, float], rng: np.random.Generator
) -> F64:
    """Draw ``n`` values from a Gaussian kernel density estimate of ``sr_mjj``, reflected at
    the SR edges (CATHODE's m_jj sampling, bandwidth 0.01 TeV in the paper)."""
    if len(sr_mjj) == 0:
        raise DataFormatError("signal region: no events to estimate the m_jj density from")
    lo, hi = bounds
    m = rng.choice(sr_mjj, size=n) + bandwidth * rng.standard_normal(n)
    for _ in range(8):  # reflect at the edges so the density stays inside [lo, hi)
        m = np.where(m < lo, 2 * lo - m, m)
        m = np.where(m >= hi, 2 * hi - m - 1e-12, m)
    return np.clip(m, lo, np.nextafter(hi, lo))  # type: ignore[no-any-return]


def _h5_names(path: Path) -> list[str]:
    import h5py

    with h5py.File(path, "r") as f:
        return [k for k, v in f.items() if isinstance(v, h5py.Dataset)]


def _is_physgen_dijets(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            d = f.get("features")
            return isinstance(d, h5py.Dataset) and d.ndim == 2 and "columns" in d.attrs
    except OSError:
        return False


def _read_dijets(
    path: Path, labels: str | None, features: str | Sequence[str] | None
) -> AnomalyEvents:
    """A ``physgen pythia --process qcd-dijet|wprime`` file: ``features (N, 5)`` with column
    names (``mjj`` first) and ``label``."""
    import h5py

    with h5py.File(path, "r") as f:
        cols = [
            c.decode() if isinstance(c, bytes) else str(c) for c in f["features"].attrs["columns"]
        ]
        data = np.asarray(f["features"], dtype=np.float64)
        lab = np.asarray(f["label"]) if "label" in f else None
    if not cols or cols[0] not in (MJJ_NAME, "mjj"):
        raise DataFormatError(f"{path}: the first feature column must be m_jj, got {cols[:1]}")
    names = cols[1:]
    if features is not None:
        wanted = list(features.split(",") if isinstance(features, str) else features)
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ConfigError(
                f"features: {', '.join(unknown)} not in {path} (has {', '.join(names)})"
            )
        idx = [names.index(w) + 1 for w in wanted]
    else:
        wanted, idx = names, list(range(1, len(cols)))
    if labels not in (None, "auto", LABEL_NAME):
        raise ConfigError(f"labels: {path} has its labels in 'label'; use labels='auto'")
    if labels == LABEL_NAME and lab is None:
        raise ConfigError(f"labels: {path} has no label dataset")
    return AnomalyEvents(
        data[:, 0],
        data[:, idx],
        lab if labels is not None else None,
        tuple(wanted),
        str(path),  # type: ignore[arg-type]
    )


def read_events(
    path: str | Path,
    *,
    labels: str | None = None,
    mjj: str = MJJ_NAME,
    features: str | Sequence[str] | None = None,
) -> AnomalyEvents:
    """Read events for anomaly detection.

    Args:
        path: ``.npy`` in the LHCO layout (column 0 ``m_jj``, then features, then the label if
            ``labels="last"``), or a file with named columns (HDF5, ``.npz``, Parquet, ROOT).
        labels: ``"last"`` (``.npy``: the last column is the label), a column name, ``"auto"``
            (a ``label`` column if the file has one; for ``.npy`` none) or None (no labels).
        mjj: Name of the resonant-feature column (named-column files).
        features: Feature columns (``physgen.columns`` specifications); None: ``.npy`` all
            columns between ``m_jj`` and the label; HDF5/``.npz`` the LHCO set
            :data:`LHCO_FEATURES` (other files: required).

    Raises:
        DataFormatError: Missing file, NaN, labels that are not 0/1, too few columns.
        ConfigError: Unknown column, labels requested but absent.
    """
    from physgen.columns import read_named_columns

    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    source = str(p)
    if p.suffix == ".npy":
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{p}: cannot read as npy ({exc})") from exc
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise DataFormatError(
                f"{p}: expected a 2-D numeric array (N, columns), got {arr.shape}"
            )
        has_label = labels == "last"
        if labels not in (None, "last", "auto"):
            raise ConfigError(f"labels: for .npy files use 'last' or none, got {labels!r}")
        n_min = 3 if has_label else 2
        if arr.shape[1] < n_min:
            raise DataFormatError(
                f"{p}: {arr.shape[1]} columns; expected m_jj, at least one feature"
                + (" and the label" if has_label else "")
            )
        data = np.asarray(arr, dtype=np.float64)
        stop = data.shape[1] - 1 if has_label else data.shape[1]
        if features is None:
            cols = list(range(1, stop))
            names = (
                LHCO_FEATURES if len(cols) == len(LHCO_FEATURES) else tuple(f"x{i}" for i in cols)
            )
        else:
            cols = [
                int(c) for c in (features.split(",") if isinstance(features, str) else features)
            ]
            if any(not 1 <= c < stop for c in cols):
                raise ConfigError(f"features: column indices must lie in 1..{stop - 1}, got {cols}")
            names = tuple(str(c) for c in cols)
        lab = data[:, -1] if has_label else None
        return AnomalyEvents(data[:, 0], data[:, cols], lab, names, source)  # type: ignore[arg-type]
    if p.suffix in (".h5", ".hdf5") and _is_physgen_dijets(p):
        return _read_dijets(p, labels, features)
    if features is None:
        if p.suffix not in (".h5", ".hdf5", ".npz"):
            raise ConfigError(f"features: name the feature columns of {p}")
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                available = list(z.files)
        else:
            available = _h5_names(p)
        if not set(LHCO_FEATURES) <= set(available):
            raise ConfigError(
                f"features: name the feature columns of {p} (it has {', '.join(available)}); "
                f"only the LHCO set {', '.join(LHCO_FEATURES)} is taken by default"
            )
        feats: list[str] = list(LHCO_FEATURES)  # never a label or weight column by accident
    else:
        feats = list(features.split(",") if isinstance(features, str) else features)
    if labels == "last":
        raise ConfigError("labels: 'last' is for .npy files; give the label column's name")
    x, col_names = read_named_columns(p, [mjj, *feats])
    lab_arr = None
    if labels is not None:
        name = LABEL_NAME if labels == "auto" else labels
        try:
            lab_arr = read_named_columns(p, [name])[0][:, 0]
        except ConfigError:
            if labels != "auto":
                raise
    return AnomalyEvents(x[:, 0], x[:, 1:], lab_arr, tuple(col_names[1:]), source)  # type: ignore[arg-type]


def toy_events(
    n_background: int,
    n_signal: int = 0,
    *,
    seed: int = 0,
    n_features: int = 4,
    mjj_range: tuple[float, float] = (2.5, 5.0),
    correlation: float = 0.0,
) -> AnomalyEvents:
    """A toy resonant search with labels, for tests and demonstrations.

    Background: ``m_jj`` falling as ``m^-5`` on ``mjj_range`` (TeV); features standard normal,
    their means shifted by ``correlation × (m_jj − 3.5 TeV)`` (a feature–mass correlation,
    as in CATHODE's "shifted" test). Signal: ``m_jj ~ N(3.5, 0.1)`` TeV, features ``N(2, 0.5²)``
    in the first two columns and background-like in the others.
    """
    if n_background < 0 or n_signal < 0 or n_features < 1:
        raise ConfigError("toy: event counts must be >= 0 and n_features >= 1")
    rng = np.random.default_rng(seed)
    lo, hi = mjj_range
    u = rng.random(n_background)
    k = -4.0  # inverse CDF of m^-5 on [lo, hi]
    m_b = (lo**k + u * (hi**k - lo**k)) ** (1 / k)
    x_b = rng.standard_normal((n_background, n_features)) + correlation * (m_b[:, None] - 3.5)
    m_s = rng.normal(3.5, 0.1, n_signal)
    x_s = rng.standard_normal((n_signal, n_features))
    x_s[:, : min(2, n_features)] = rng.normal(2.0, 0.5, (n_signal, min(2, n_features)))
    order = rng.permutation(n_background + n_signal)
    labels = np.concatenate([np.zeros(n_background, np.int64), np.ones(n_signal, np.int64)])
    return AnomalyEvents(
        np.concatenate([m_b, m_s])[order],
        np.concatenate([x_b, x_s])[order],
        labels[order],
        tuple(f"x{i}" for i in range(n_features)),
        "toy",
    )
