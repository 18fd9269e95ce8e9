"""High-level shower features, exactly as the official CaloChallenge evaluator defines them.

All features are computed per shower after zeroing voxels below the geometry's
readout threshold (1 MeV for dataset 1, 0.5 keV / 0.033 for datasets 2 and 3),
with eps = 1e-16 added to energy sums in denominators:

* ``e_tot``: sum of all voxel energies (MeV);
* ``e_layer[l]``: energy per relevant layer (MeV);
* ``ec_x``, ``ec_y`` (the official ``EC_eta``/``EC_phi``): energy-weighted mean of
  the voxel-centre x (y) coordinates in mm, for layers binned in alpha;
* ``width_x``, ``width_y``: sqrt(max(<x^2> - <x>^2, 0)), same layers;
* ``ec_r``, ``width_r``: the same for the radial bin centres, every relevant layer;
* ``sparsity[l]``: fraction of the layer's voxels that are zero (1 - fraction > 0).

Features are computed batch by batch, so files of any size stream through in
bounded memory (:func:`compute_features`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.io import open_showers
from physgen.errors import DataFormatError

__all__ = [
    "EPS",
    "Sample",
    "ShowerFeatures",
    "apply_threshold",
    "compute_features",
    "features_of_batch",
    "high_level_feature_vector",
    "iter_sample",
    "official_dtype",
]

#: Added to energy sums in denominators, as in the official code.
EPS = 1e-16

F64 = npt.NDArray[np.float64]
#: A sample: a CaloChallenge file path or an ``(incident_energies, showers)`` pair.
Sample = str | Path | tuple[npt.ArrayLike, npt.ArrayLike]


def apply_threshold(
    showers: npt.ArrayLike, geometry: Geometry, dtype: npt.DTypeLike = np.float64
) -> npt.NDArray[Any]:
    """Zero voxels below the geometry's readout threshold.

    Args:
        showers: ``(N, n_voxels)`` in MeV.
        geometry: Supplies ``threshold_mev``.
        dtype: dtype of the copy (float64; the file's own float dtype for the official
            feature arithmetic, see :func:`official_dtype`).

    Returns:
        A C-contiguous copy with voxels ``< threshold_mev`` set to 0.
    """
    x = np.array(showers, dtype=dtype, copy=True, order="C")
    if geometry.threshold_mev > 0:
        x[x < float(geometry.threshold_mev)] = 0.0  # a Python float, as the official code
    return x


def official_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """The dtype in which the official evaluator sums voxel energies of a file.

    It computes in the file's dtype: float32 files give float32 sums (numpy's pairwise
    summation), float64 files float64; integer files are promoted to float64.
    """
    d = np.dtype(dtype)
    return d if d.kind == "f" and d.itemsize >= 4 else np.dtype(np.float64)


@dataclass
class ShowerFeatures:
    """High-level features of N showers (arrays ``(N,)`` or ``(N, n_layers)``).

    Attributes:
        geometry: The binning.
        incident_energy: ``(N,)`` MeV.
        e_tot: ``(N,)`` MeV.
        e_layer: ``(N, L)`` MeV, one column per relevant layer.
        ec_x, ec_y, width_x, width_y: ``(N, L_alpha)`` mm, layers binned in alpha.
        ec_r, width_r: ``(N, L)`` mm.
        sparsity: ``(N, L)`` fraction of zero voxels.
        max_voxel: Largest voxel energy seen (MeV), for the voxel-spectrum binning.
        voxel_sum: Sum of all thresholded showers, ``(n_voxels,)`` (for averages).
        e_tot_over_e_inc: ``(N,)`` E_tot / E_inc divided in the sample's own dtypes, as the
            official code does (None: divide the float64 columns).
        energy_dtype: dtype the energies were summed in (``"float32"`` for float32 files).
    """

    geometry: Geometry
    incident_energy: F64
    e_tot: F64
    e_layer: F64
    ec_x: F64
    ec_y: F64
    width_x: F64
    width_y: F64
    ec_r: F64
    width_r: F64
    sparsity: F64
    max_voxel: float = 0.0
    voxel_sum: F64 = field(default_factory=lambda: np.zeros(0))
    e_tot_over_e_inc: F64 | None = None
    energy_dtype: str = "float64"

    def etot_over_einc(self) -> F64:
        """``E_tot / E_inc`` per shower, as the official code divides (in the files' dtypes)."""
        if self.e_tot_over_e_inc is not None:
            return self.e_tot_over_e_inc
        return self.e_tot / self.incident_energy

    @property
    def n(self) -> int:
        """Number of showers."""
        return int(self.incident_energy.shape[0])

    @property
    def layer_ids(self) -> list[int]:
        """Ids of the relevant layers (columns of e_layer, ec_r, ...)."""
        return [layer.id for layer in self.geometry.relevant_layers]

    @property
    def alpha_layer_ids(self) -> list[int]:
        """Ids of the layers binned in alpha (columns of ec_x, ...)."""
        return [layer.id for layer in self.geometry.relevant_layers if layer.is_alpha_binned]

    def select(self, mask: npt.NDArray[np.bool_]) -> ShowerFeatures:
        """The features of a subset of showers (``voxel_sum`` is not restricted)."""
        kw: dict[str, Any] = {}
        for name in _ARRAY_FIELDS:
            kw[name] = getattr(self, name)[mask]
        ratio = None if self.e_tot_over_e_inc is None else self.e_tot_over_e_inc[mask]
        return ShowerFeatures(
            self.geometry,
            **kw,
            max_voxel=self.max_voxel,
            voxel_sum=self.voxel_sum,
            e_tot_over_e_inc=ratio,
            energy_dtype=self.energy_dtype,
        )

    @classmethod
    def concatenate(cls, parts: list[ShowerFeatures]) -> ShowerFeatures:
        """Join per-batch features."""
        if not parts:
            raise ValueError("no feature batches to concatenate")
        kw = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAY_FIELDS}
        ratio = None
        if all(p.e_tot_over_e_inc is not None for p in parts):
            ratio = np.concatenate([p.etot_over_einc() for p in parts])
        return cls(
            parts[0].geometry,
            **kw,
            max_voxel=max(p.max_voxel for p in parts),
            voxel_sum=np.sum([p.voxel_sum for p in parts], axis=0),
            e_tot_over_e_inc=ratio,
            energy_dtype=parts[0].energy_dtype,
        )


_ARRAY_FIELDS = (
    "incident_energy",
    "e_tot",
    "e_layer",
    "ec_x",
    "ec_y",
    "width_x",
    "width_y",
    "ec_r",
    "width_r",
    "sparsity",
)


class _LayerCoords:
    """Per-layer voxel-centre coordinates, cached per geometry.

    ``moments[i]`` is the ``(n_voxels_layer, k)`` float64 matrix whose columns are
    ``r, r^2`` and, for layers binned in alpha, ``x, x^2, y, y^2``: one matrix product
    per layer gives every energy-weighted first and second moment.
    """

    def __init__(self, geometry: Geometry) -> None:
        self.slices = list(geometry.layer_slices().values())
        self.alpha = [layer.is_alpha_binned for layer in geometry.relevant_layers]
        centres = geometry.voxel_centres()
        self.moments = []
        for s, alpha in zip(self.slices, self.alpha):
            axes = ("r", "x", "y") if alpha else ("r",)
            cols = [c for a in axes for c in (centres[a][s], centres[a][s] ** 2)]
            self.moments.append(np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float64))
        # datasets 2 and 3: every layer has the same binning, hence one moment matrix
        same = len(set(self.alpha)) == 1 and all(
            m.shape == self.moments[0].shape and np.array_equal(m, self.moments[0])
            for m in self.moments
        )
        contiguous = all(
            s.start == i * (self.slices[0].stop - self.slices[0].start)
            and s.stop - s.start == self.slices[0].stop - self.slices[0].start
            for i, s in enumerate(self.slices)
        )
        contiguous = contiguous and self.slices[-1].stop == geometry.n_voxels
        self.uniform = self.moments[0] if same and contiguous else None
        # per voxel r, r^2, x, x^2, y, y^2 for the compiled one-pass scan
        self.starts = np.array([s.start for s in self.slices], dtype=np.int64)
        self.stops = np.array([s.stop for s in self.slices], dtype=np.int64)
        self.voxel_moments = np.zeros((6, geometry.n_voxels))
        for s, m in zip(self.slices, self.moments):
            self.voxel_moments[: m.shape[1], s] = m.T
        self.polar = _polar_layout(geometry)


def _polar_layout(geometry: Geometry) -> Any:
    """The :class:`~physgen.calo.evaluate.kernels.PolarLayout` of a geometry whose relevant
    layers are all polar, else None (Cartesian layers take the general scan)."""
    from physgen.calo.evaluate.kernels import PolarLayout

    layers = geometry.relevant_layers
    if any(layer.kind == "cartesian" for layer in layers):
        return None
    rc, cos_a, sin_a, r_off, a_off = [], [], [], [0], [0]
    for layer in layers:
        re = np.asarray(layer.r_edges, dtype=np.float64)
        width = 2.0 * np.pi / layer.n_alpha
        ac = -np.pi + width * (np.arange(layer.n_alpha) + 0.5)  # as Layer.centres
        rc.append(0.5 * (re[1:] + re[:-1]))
        cos_a.append(np.cos(ac))
        sin_a.append(np.sin(ac))
        r_off.append(r_off[-1] + layer.n_radial)
        a_off.append(a_off[-1] + layer.n_alpha)
    slices = list(geometry.layer_slices().values())
    return PolarLayout(
        starts=np.array([s.start for s in slices], dtype=np.int64),
        n_alpha=np.array([layer.n_alpha for layer in layers], dtype=np.int64),
        n_r=np.array([layer.n_radial for layer in layers], dtype=np.int64),
        r_off=np.array(r_off[:-1], dtype=np.int64),
        a_off=np.array(a_off[:-1], dtype=np.int64),
        rc=np.concatenate(rc),
        cos_a=np.concatenate(cos_a),
        sin_a=np.concatenate(sin_a),
    )


_COORDS: dict[Geometry, _LayerCoords] = {}


def _coords(geometry: Geometry) -> _LayerCoords:
    if geometry not in _COORDS:
        _COORDS[geometry] = _LayerCoords(geometry)
    return _COORDS[geometry]


def _centre_and_width(first: F64, second: F64, den: npt.NDArray[Any]) -> tuple[F64, F64]:
    """Centre and width from energy-weighted moment sums (float64) and the layer energy
    plus eps in the sums' own dtype, divided as the official code divides."""
    mean = first / den
    return mean, np.sqrt(np.clip(second / den - mean * mean, 0.0, None))


def features_of_batch(
    incident_energies: npt.ArrayLike,
    showers: npt.ArrayLike,
    geometry: Geometry,
    precision: str = "official",
    *,
    compiled: bool = True,
    source: str | Path | None = None,
    offset: int = 0,
) -> ShowerFeatures:
    """Features of one in-memory batch (thresholding included).

    Args:
        incident_energies: ``(N,)`` or ``(N, 1)`` MeV.
        showers: ``(N, n_voxels)`` MeV, raw (the threshold is applied here).
        geometry: The binning.
        precision: ``"official"`` sums energies in the showers' own float dtype, as the
            official evaluator does (float32 files: float32 E_tot, E_layer and E_tot/E_inc,
            hence the official bin assignments); ``"float64"`` sums everything in float64
            (more accurate, but not the official numbers on float32 files).
        compiled: One compiled pass over the batch (threshold, value check, moments);
            False takes the numpy reference path (the same numbers; the energy sums are
            numpy's in both).
        source, offset: File and first row of the batch, named when the batch holds NaN,
            inf or negative voxel energies.

    Raises:
        DataFormatError: NaN, inf or negative voxel energies (compiled path).
    """
    if precision not in ("official", "float64"):
        raise ValueError(f"precision must be 'official' or 'float64', got {precision!r}")
    raw = np.asarray(showers)
    native = official_dtype(raw.dtype) if precision == "official" else np.dtype(np.float64)
    if raw.ndim != 2 or raw.shape[1] != geometry.n_voxels:
        raise ValueError(f"showers must be (N, {geometry.n_voxels}), got {raw.shape}")
    c = _coords(geometry)
    if compiled:
        return _features_scanned(
            e_inc_of(incident_energies, precision), raw.astype(native, copy=False), geometry, c,
            source, offset,
        )  # fmt: skip
    x = apply_threshold(raw, geometry, native)
    # the numerators are float64 (the official coordinates are float64 and promote the
    # products): one float64 copy of the batch, then one matrix product per layer
    x64 = x if x.dtype == np.float64 else x.astype(np.float64)
    e_layer, ec_r, w_r, spars = [], [], [], []
    ec_x, ec_y, w_x, w_y = [], [], [], []
    for i, sl in enumerate(c.slices):
        xl = x[:, sl]
        el = xl.sum(axis=1)  # in the file's dtype: numpy's pairwise sum, as the official code
        e_layer.append(el.astype(np.float64))
        spars.append(1.0 - np.count_nonzero(xl > 0, axis=1) / xl.shape[1])
        mom = x64[:, sl] @ c.moments[i]
        den = el + el.dtype.type(EPS)
        m, w = _centre_and_width(mom[:, 0], mom[:, 1], den)
        ec_r.append(m)
        w_r.append(w)
        if c.alpha[i]:
            mx, wx = _centre_and_width(mom[:, 2], mom[:, 3], den)
            my, wy = _centre_and_width(mom[:, 4], mom[:, 5], den)
            ec_x.append(mx)
            ec_y.append(my)
            w_x.append(wx)
            w_y.append(wy)
    n = x.shape[0]

    def stack(cols: list[F64]) -> F64:
        return np.stack(cols, axis=1) if cols else np.zeros((n, 0))

    e_inc = e_inc_of(incident_energies, precision)
    e_tot = x.sum(axis=1)
    return ShowerFeatures(
        geometry=geometry,
        incident_energy=e_inc.astype(np.float64),
        e_tot=e_tot.astype(np.float64),
        e_tot_over_e_inc=np.asarray(e_tot / e_inc, dtype=np.float64),
        energy_dtype=native.name,
        e_layer=stack(e_layer),
        ec_x=stack(ec_x),
        ec_y=stack(ec_y),
        width_x=stack(w_x),
        width_y=stack(w_y),
        ec_r=stack(ec_r),
        width_r=stack(w_r),
        sparsity=stack(spars),
        max_voxel=float(x.max()) if x.size else 0.0,
        voxel_sum=x.sum(axis=0, dtype=np.float64),
    )


def _features_scanned(
    e_inc: npt.NDArray[Any],
    raw: npt.NDArray[Any],
    geometry: Geometry,
    c: _LayerCoords,
    source: str | Path | None,
    offset: int,
) -> ShowerFeatures:
    """The features from one compiled pass (:func:`physgen.calo.evaluate.kernels.scan_showers`)
    plus numpy's own sums of E_tot and E_layer in the file's dtype (the official values)."""
    from physgen.calo.evaluate.kernels import scan_showers

    x, nz, mom, vsum, vmax, bad = scan_showers(
        raw, float(geometry.threshold_mev), c.starts, c.stops, c.voxel_moments, c.polar
    )
    if bad >= 0:
        from physgen.calo.io import check_values

        row = raw[bad : bad + 1]
        where = Path(source) if source is not None else Path("showers")
        check_values(where, e_inc[bad : bad + 1].reshape(-1, 1), row, offset + bad, False)
        raise DataFormatError(
            f"{where}: 'showers' holds NaN, inf or negative values (row {offset + bad})"
        )
    n = x.shape[0]
    if c.uniform is not None:
        el = x.reshape(n, len(c.slices), -1).sum(axis=2)
    else:
        el = np.stack([x[:, sl].sum(axis=1) for sl in c.slices], axis=1)
    sizes = (c.stops - c.starts).astype(np.float64)
    den = el + el.dtype.type(EPS)
    ec_r, w_r = _centre_and_width(mom[..., 0], mom[..., 1], den)
    alpha = np.flatnonzero(c.alpha)
    ec_x, w_x = _centre_and_width(mom[:, alpha, 2], mom[:, alpha, 3], den[:, alpha])
    ec_y, w_y = _centre_and_width(mom[:, alpha, 4], mom[:, alpha, 5], den[:, alpha])
    e_tot = x.sum(axis=1)
    return ShowerFeatures(
        geometry=geometry,
        incident_energy=e_inc.astype(np.float64),
        e_tot=e_tot.astype(np.float64),
        e_layer=el.astype(np.float64),
        ec_x=ec_x,
        ec_y=ec_y,
        width_x=w_x,
        width_y=w_y,
        ec_r=ec_r,
        width_r=w_r,
        sparsity=1.0 - nz / sizes,
        max_voxel=vmax,
        voxel_sum=vsum,
        e_tot_over_e_inc=np.asarray(e_tot / e_inc, dtype=np.float64),
        energy_dtype=x.dtype.name,
    )


def e_inc_of(incident_energies: npt.ArrayLike, precision: str) -> npt.NDArray[Any]:
    """Incident energies ``(N,)`` in the dtype the official code divides by (the file's)."""
    e_inc = np.asarray(incident_energies).reshape(-1)
    if precision == "float64" or e_inc.dtype.kind != "f":
        e_inc = e_inc.astype(np.float64)
    return e_inc


def iter_sample(
    sample: Sample, geometry: Geometry, batch_size: int | None = None
) -> Iterator[tuple[F64, npt.NDArray[Any]]]:
    """Yield ``(incident_energies (b, 1), showers (b, n_voxels))`` from a file or arrays."""
    if isinstance(sample, (str, Path)):
        with open_showers(sample, geometry) as f:
            yield from f.iter_batches(batch_size)
        return
    e, x = sample
    e = np.asarray(e).reshape(-1, 1)  # the sample's own dtypes, as for a file
    x = np.asarray(x)
    step = batch_size or max(1, (64 << 20) // max(1, x.shape[1] * 8))
    for i in range(0, len(e), step):
        yield e[i : i + step], x[i : i + step]


def compute_features(
    sample: Sample, geometry: str | Geometry, batch_size: int | None = None
) -> ShowerFeatures:
    """Features of a whole sample, streaming over a file in batches.

    Args:
        sample: A CaloChallenge file path or an ``(incident_energies, showers)`` pair.
        geometry: The binning (name or object).
        batch_size: Showers per batch (default: about 64 MB of showers).

    Returns:
        The features of every shower, in file order.
    """
    geo = get_geometry(geometry)
    parts = [features_of_batch(e, x, geo) for e, x in iter_sample(sample, geo, batch_size)]
    return ShowerFeatures.concatenate(parts)


def high_level_feature_vector(
    incident_energies: npt.ArrayLike | ShowerFeatures,
    showers: npt.ArrayLike | None = None,
    geometry: str | Geometry | None = None,
) -> F64:
    """The official high-level classifier input (also used for FPD/KPD).

    Order: log10 E_inc; log10(E_layer + 1e-8) per layer; EC_x/100, EC_y/100,
    width_x/100, width_y/100 (each a block over the alpha-binned layers);
    log10(E_tot + 1e-8); sparsity per layer; EC_r/100 per layer; width_r/100 per layer.
    Dimension 30 (1-photons), 46 (1-pions), 362 (2, 3).

    Args:
        incident_energies: ``(N, 1)`` MeV, or already computed :class:`ShowerFeatures`.
        showers: ``(N, n_voxels)`` MeV (raw; thresholded here), unless features are given.
        geometry: The binning, unless features are given.

    Returns:
        ``(N, D)`` float64.
    """
    if isinstance(incident_energies, ShowerFeatures):
        f = incident_energies
    else:
        if showers is None or geometry is None:
            raise ValueError("give (incident_energies, showers, geometry) or ShowerFeatures")
        f = features_of_batch(incident_energies, showers, get_geometry(geometry))
    cols = [
        np.log10(f.incident_energy)[:, None],
        np.log10(f.e_layer + 1e-8),
        f.ec_x / 100.0,
        f.ec_y / 100.0,
        f.width_x / 100.0,
        f.width_y / 100.0,
        np.log10(f.e_tot + 1e-8)[:, None],
        f.sparsity,
        f.ec_r / 100.0,
        f.width_r / 100.0,
    ]
    return np.concatenate(cols, axis=1)
