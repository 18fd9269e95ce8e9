"""LHC-Olympics-like dijet events as arrays and files: the five CATHODE features and a label.

One row per accepted event of :mod:`physgen.events.dijet`, in the column order of the LHC
Olympics 2020 R&D feature files as CATHODE prepares them (:data:`DIJET_FEATURES`; energies in
**TeV**): ``m_jj`` (dijet mass of the two leading-pT jets), ``m_j1`` (the *lighter* of the two
jet masses), ``delta_mj`` (heavier minus lighter jet mass, >= 0), ``tau21_j1`` and
``tau21_j2`` (N-subjettiness ratio of the lighter and of the heavier jet). The label is 0 for
QCD background, 1 for signal.

Files (:func:`write_dijets`, atomically):

* ``.h5``/``.hdf5``: datasets ``features`` ``(N, 5)`` float64 (attribute ``columns``, also
  a root attribute), ``label`` ``(N,)`` int64, ``jet_pt`` ``(N, 2)`` float64 (pT of the
  leading and the second jet, TeV) and ``event`` ``(N,)`` int64 (index of the generated event
  in the run), root attributes recording the settings, seed, selection and versions.
* ``.npy``: the LHCO array ``(N, 6)`` float64, the five features then the label
  (:data:`LHCO_COLUMNS`; the layout of the CATHODE ``innerdata_*.npy`` files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError
from physgen.events.sample import storable_attrs
from physgen.outputs import atomic_path

__all__ = [
    "DIJET_FEATURES",
    "DIJET_SUFFIXES",
    "LHCO_COLUMNS",
    "DijetSample",
    "read_dijets",
    "write_dijets",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Feature columns (TeV for the masses), the order of the LHCO/CATHODE feature arrays.
DIJET_FEATURES: tuple[str, ...] = ("m_jj", "m_j1", "delta_mj", "tau21_j1", "tau21_j2")
#: Columns of an LHCO ``.npy`` array: the features, then the label (0 QCD, 1 signal).
LHCO_COLUMNS: tuple[str, ...] = (*DIJET_FEATURES, "label")
#: File name endings :func:`write_dijets` knows.
DIJET_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".npy")

_DATASETS = ("features", "label", "jet_pt", "event")


@dataclass(frozen=True, eq=False)
class DijetSample:
    """Accepted dijet events (see the module docstring).

    Attributes:
        features: ``(N, 5)`` float64 in the order of :data:`DIJET_FEATURES` (TeV, -, -).
        label: ``(N,)`` int64, 0 QCD background, 1 signal.
        jet_pt: ``(N, 2)`` pT of the leading and the second jet (TeV).
        event: ``(N,)`` index of the generated event in the run.
        attrs: Provenance (settings, seed, versions...) as stored in the file.
        path: The file the sample was read from or written to, if any.
        from_cache: The sample was read from the cache instead of generated.
        elapsed_s: Seconds spent generating (0 for a sample read from a file).
    """

    features: FloatArray
    label: IntArray
    jet_pt: FloatArray
    event: IntArray
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    from_cache: bool = False
    elapsed_s: float = 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature names, the column order of ``features``."""
        return DIJET_FEATURES

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def lhco(self) -> FloatArray:
        """The LHCO array ``(N, 6)`` float64: the features, then the label."""
        return np.concatenate([self.features, self.label[:, None].astype(np.float64)], axis=1)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The datasets of the HDF5 file, by name."""
        return {name: getattr(self, name) for name in _DATASETS}


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in DIJET_SUFFIXES:
        raise DataFormatError(
            f"{path}: unknown file type {path.suffix or '(none)'!r}; expected "
            f"{', '.join(DIJET_SUFFIXES)}"
        )
    return suffix


def write_dijets(path: str | Path, sample: DijetSample) -> Path:
    """Write ``sample`` atomically: HDF5 (named datasets) or ``.npy`` (the LHCO array).

    The bytes depend only on the arrays and attributes (no timestamps).

    Returns:
        The path written.

    Raises:
        DataFormatError: A name ending in neither ``.h5``, ``.hdf5`` nor ``.npy``.
    """
    p = Path(path)
    if _suffix(p) == ".npy":
        with atomic_path(p) as tmp, open(tmp, "wb") as fh:
            np.save(fh, sample.lhco())
        return p
    import h5py

    with atomic_path(p) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        for name, a in sample.arrays().items():
            d = f.create_dataset(name, data=a, track_times=False)
            if name == "features":
                d.attrs["columns"] = list(DIJET_FEATURES)
        f.attrs["columns"] = list(DIJET_FEATURES)
        for key, value in storable_attrs(sample.attrs).items():
            f.attrs[key] = value
    return p


def read_dijets(path: str | Path) -> DijetSample:
    """Read an HDF5 file written by :func:`write_dijets` (an ``.npy`` LHCO array is a
    plain array: ``numpy.load`` it).

    Raises:
        DataFormatError: Not HDF5, a dataset missing or of the wrong shape, NaN values,
            other columns.
    """
    import h5py

    p = Path(path)
    if p.suffix.lower() == ".npy":
        raise DataFormatError(f"{p}: an LHCO .npy array; read it with numpy.load")
    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in _DATASETS if k not in f]
            if missing:
                raise DataFormatError(f"{p}: missing dataset(s) {', '.join(missing)}")
            data = {k: f[k][()] for k in _DATASETS}
            columns = f["features"].attrs.get("columns", [])
            attrs = storable_attrs(dict(f.attrs.items()))
    except OSError as exc:
        raise DataFormatError(f"{p}: cannot read as HDF5 ({exc})") from None
    n = data["label"].shape[0]
    for key, shape in (("features", (n, len(DIJET_FEATURES))), ("jet_pt", (n, 2)), ("event", (n,))):
        if data[key].shape != shape:
            raise DataFormatError(f"{p}: {key} has shape {data[key].shape}, expected {shape}")
    for key in ("features", "jet_pt"):
        if not np.isfinite(data[key]).all():
            raise DataFormatError(f"{p}: {key} holds NaN or inf")
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(columns)]
    if tuple(names) != DIJET_FEATURES:
        raise DataFormatError(f"{p}: features columns {names}, expected {list(DIJET_FEATURES)}")
    return DijetSample(
        features=np.asarray(data["features"], dtype=np.float64),
        label=np.asarray(data["label"], dtype=np.int64),
        jet_pt=np.asarray(data["jet_pt"], dtype=np.float64),
        event=np.asarray(data["event"], dtype=np.int64),
        attrs=attrs,
        path=p,
    )
