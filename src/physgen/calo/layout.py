"""The voxel layout of a calorimeter: :class:`Layer` (radial and angular bin edges of one
layer) and :class:`Geometry` (the layers of a dataset, voxel counts and their order in a
shower vector). Built from binning XML files or by name in :mod:`physgen.calo.geometry`,
which re-exports both classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from physgen.errors import GeometryError

__all__ = ["FloatArray", "Geometry", "Layer"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Layer:
    """One readout layer.

    Attributes:
        id: Layer id as in the binning file (ATLAS sampling index for dataset 1).
        r_edges: Radial bin edges in mm for a polar layer (``(0.0,)`` or empty:
            the layer has no voxels); empty for a Cartesian layer.
        n_alpha: Number of equal angular bins over [-pi, pi) (polar layers).
        x_edges: Column edges in mm (Cartesian layers only).
        y_edges: Row edges in mm (Cartesian layers only).
    """

    id: int
    r_edges: tuple[float, ...] = ()
    n_alpha: int = 1
    x_edges: tuple[float, ...] = ()
    y_edges: tuple[float, ...] = ()

    @property
    def kind(self) -> Literal["polar", "cartesian"]:
        """``"polar"`` (r x alpha bins) or ``"cartesian"`` (x x y cells)."""
        return "cartesian" if self.x_edges else "polar"

    @property
    def n_radial(self) -> int:
        """Number of radial bins (0 for a layer without voxels or a Cartesian layer)."""
        return max(len(self.r_edges) - 1, 0)

    @property
    def n_x(self) -> int:
        """Number of columns of a Cartesian layer."""
        return max(len(self.x_edges) - 1, 0)

    @property
    def n_y(self) -> int:
        """Number of rows of a Cartesian layer."""
        return max(len(self.y_edges) - 1, 0)

    @property
    def n_voxels(self) -> int:
        """Number of voxels of this layer in the flat shower vector."""
        if self.kind == "cartesian":
            return self.n_x * self.n_y
        return self.n_radial * self.n_alpha

    @property
    def is_relevant(self) -> bool:
        """True if the layer holds at least one voxel."""
        return self.n_voxels > 0

    @property
    def is_alpha_binned(self) -> bool:
        """True if the layer resolves the azimuth (n_alpha > 1, or any Cartesian layer)."""
        return self.kind == "cartesian" or self.n_alpha > 1

    def shape(self) -> tuple[int, int]:
        """Grid shape of the layer: ``(n_alpha, n_radial)`` or ``(n_y, n_x)``."""
        if self.kind == "cartesian":
            return (self.n_y, self.n_x)
        return (self.n_alpha, self.n_radial)

    def centres(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Voxel centres in flat order.

        Returns:
            ``(r, alpha, x, y)``, each of shape ``(n_voxels,)``: r in mm, alpha in
            rad, x and y in mm. For polar layers r is the mid-point of the ring
            edges and alpha the centre of the angular bin; for Cartesian layers x
            and y are the cell centres and r, alpha follow from them.
        """
        if self.kind == "cartesian":
            xe = np.asarray(self.x_edges, dtype=np.float64)
            ye = np.asarray(self.y_edges, dtype=np.float64)
            xc = 0.5 * (xe[1:] + xe[:-1])
            yc = 0.5 * (ye[1:] + ye[:-1])
            yy, xx = np.meshgrid(yc, xc, indexing="ij")
            x = xx.ravel()
            y = yy.ravel()
            return np.hypot(x, y), np.arctan2(y, x), x, y
        re = np.asarray(self.r_edges, dtype=np.float64)
        rc = 0.5 * (re[1:] + re[:-1])
        width = 2.0 * math.pi / self.n_alpha
        ac = -math.pi + width * (np.arange(self.n_alpha) + 0.5)
        aa, rr = np.meshgrid(ac, rc, indexing="ij")
        r = rr.ravel()
        alpha = aa.ravel()
        return r, alpha, r * np.cos(alpha), r * np.sin(alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (lengths in mm)."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "n_voxels": self.n_voxels,
        }
        if self.kind == "cartesian":
            out.update(
                n_radial=None,
                n_alpha=None,
                r_edges_mm=None,
                n_x=self.n_x,
                n_y=self.n_y,
                x_edges_mm=list(self.x_edges),
                y_edges_mm=list(self.y_edges),
            )
        else:
            out.update(
                n_radial=self.n_radial,
                n_alpha=self.n_alpha,
                r_edges_mm=list(self.r_edges) if self.n_radial else [0.0],
            )
        return out


@dataclass(frozen=True)
class Geometry:
    """A calorimeter readout binning.

    Attributes:
        name: Short name (``"2"``, ``"1-photons"``, ``"calogan"`` or a file stem).
        particle: Particle name of the binning (``"photon"``, ``"pion"``, ``"electron"``...).
        layers: All layers in file order, including layers without voxels.
        pid: PDG id of the particle, if known.
        threshold_mev: Readout threshold per voxel in MeV used by the official
            evaluation (1 MeV for dataset 1, 0.5 keV / 0.033 for datasets 2/3).
        description: One line for humans.
    """

    name: str
    particle: str
    layers: tuple[Layer, ...]
    pid: int | None = None
    threshold_mev: float = 0.0
    description: str = ""
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets = [0]
        for layer in self.layers:
            offsets.append(offsets[-1] + layer.n_voxels)
        object.__setattr__(self, "_offsets", tuple(offsets))

    # ------------------------------------------------------------------ sizes
    @property
    def n_voxels(self) -> int:
        """Length of the flat shower vector."""
        return self._offsets[-1]

    @property
    def relevant_layers(self) -> tuple[Layer, ...]:
        """Layers that hold voxels, in flat-vector order."""
        return tuple(layer for layer in self.layers if layer.is_relevant)

    @property
    def n_layers(self) -> int:
        """Number of layers holding voxels."""
        return len(self.relevant_layers)

    @property
    def is_regular(self) -> bool:
        """True if every relevant layer has the same grid shape (reshapable to 4D)."""
        shapes = {layer.shape() for layer in self.relevant_layers}
        return len(shapes) == 1

    def layer(self, layer_id: int) -> Layer:
        """The layer with this id.

        Raises:
            GeometryError: If no layer has that id.
        """
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise GeometryError(
            f"geometry {self.name!r} has no layer id {layer_id}; "
            f"ids: {[lay.id for lay in self.layers]}"
        )

    def layer_slice(self, layer_id: int) -> slice:
        """Slice of the flat vector belonging to layer ``layer_id``."""
        for i, layer in enumerate(self.layers):
            if layer.id == layer_id:
                return slice(self._offsets[i], self._offsets[i + 1])
        raise GeometryError(f"geometry {self.name!r} has no layer id {layer_id}")

    def layer_slices(self) -> dict[int, slice]:
        """``{layer id: slice}`` for every relevant layer, in flat order."""
        return {
            layer.id: slice(self._offsets[i], self._offsets[i + 1])
            for i, layer in enumerate(self.layers)
            if layer.is_relevant
        }

    def split_layers(self, showers: npt.NDArray[Any]) -> dict[int, npt.NDArray[Any]]:
        """Split showers into per-layer grids.

        Args:
            showers: Array of shape ``(..., n_voxels)``.

        Returns:
            ``{layer id: array of shape (..., *layer.shape())}`` for relevant layers.
        """
        self._check_last_axis(showers)
        out = {}
        for layer in self.relevant_layers:
            sl = self.layer_slice(layer.id)
            out[layer.id] = showers[..., sl].reshape(*showers.shape[:-1], *layer.shape())
        return out

    def layer_energies(self, showers: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Energy per relevant layer.

        Args:
            showers: Array ``(N, n_voxels)`` in MeV.

        Returns:
            Array ``(N, n_layers)`` in MeV, float64.
        """
        self._check_last_axis(showers)
        return np.stack(
            [
                np.asarray(showers[..., sl], dtype=np.float64).sum(axis=-1)
                for sl in self.layer_slices().values()
            ],
            axis=-1,
        )

    def azimuthal_symmetries(self, reflect: bool = True) -> npt.NDArray[np.int64]:
        """Voxel permutations of the azimuthal symmetries that every layer's binning shares.

        A shower of a particle at normal incidence on a calorimeter without magnetic field is
        statistically invariant under rotations about its axis and reflections ``alpha ->
        -alpha``; on the binning only rotations by multiples of ``2 pi / g`` survive, ``g`` the
        greatest common divisor of the alpha-bin counts of the alpha-binned layers (10 for
        dataset 1 photons, 16 for dataset 2, 50 for dataset 3). A rotation by ``2 pi k / g``
        moves layer ``l``'s alpha bin ``a`` to ``(a + k n_alpha_l / g) mod n_alpha_l``; the
        reflection maps ``a`` to ``n_alpha_l - 1 - a`` (bins are centred symmetrically on
        [-pi, pi)). Layers with one alpha bin are unchanged.

        Args:
            reflect: Include the reflections (``2 g`` elements instead of ``g``).

        Returns:
            ``(G, n_voxels)`` int64: ``showers[..., perm[k]]`` is the shower under element ``k``;
            row 0 is the identity. ``G = 1`` when no layer resolves alpha.

        Raises:
            GeometryError: A Cartesian layer (no azimuthal binning to permute).
        """
        if any(layer.kind == "cartesian" for layer in self.relevant_layers):
            raise GeometryError(
                f"geometry {self.name!r} has Cartesian layers: azimuthal symmetries need polar "
                "(r x alpha) binning"
            )
        counts = [layer.n_alpha for layer in self.relevant_layers if layer.n_alpha > 1]
        g = math.gcd(*counts) if counts else 1
        perms = []
        for mirrored in (False, True) if (reflect and counts) else (False,):
            for k in range(g):
                perm = np.arange(self.n_voxels, dtype=np.int64)
                for layer in self.relevant_layers:
                    if layer.n_alpha == 1:
                        continue
                    sl = self.layer_slice(layer.id)
                    idx = perm[sl].reshape(layer.n_alpha, layer.n_radial)
                    src = np.arange(layer.n_alpha)
                    if mirrored:
                        src = layer.n_alpha - 1 - src
                    # output bin a takes input bin src[(a - shift) mod n]
                    shift = k * layer.n_alpha // g
                    idx = idx[src[(np.arange(layer.n_alpha) - shift) % layer.n_alpha]]
                    perm[sl] = idx.ravel()
                perms.append(perm)
        return np.stack(perms)

    def reshape(self, showers: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Reshape flat showers of a regular geometry to ``(..., n_layers, n_alpha, n_r)``.

        Raises:
            GeometryError: If the layers do not share one grid shape (dataset 1, CaloGAN);
                use :meth:`split_layers` there.
        """
        self._check_last_axis(showers)
        if not self.is_regular:
            raise GeometryError(
                f"geometry {self.name!r} has layers of different shapes; use split_layers()"
            )
        shape = self.relevant_layers[0].shape()
        return showers.reshape(*showers.shape[:-1], self.n_layers, *shape)

    def flatten(self, grid: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Inverse of :meth:`reshape`: ``(..., n_layers, a, b)`` to ``(..., n_voxels)``."""
        if not self.is_regular:
            raise GeometryError(f"geometry {self.name!r} is not regular")
        return grid.reshape(*grid.shape[:-3], self.n_voxels)

    def voxel_centres(self) -> dict[str, FloatArray]:
        """Centres of all voxels in flat order.

        Returns:
            Dict with keys ``"r"``, ``"alpha"``, ``"x"``, ``"y"`` (each ``(n_voxels,)``,
            mm or rad) and ``"layer"`` (layer id of each voxel, as float64).
        """
        parts: dict[str, list[FloatArray]] = {k: [] for k in ("r", "alpha", "x", "y", "layer")}
        for layer in self.relevant_layers:
            r, a, x, y = layer.centres()
            parts["r"].append(r)
            parts["alpha"].append(a)
            parts["x"].append(x)
            parts["y"].append(y)
            parts["layer"].append(np.full(layer.n_voxels, float(layer.id)))
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: name, particle, n_voxels, layers..."""
        return {
            "name": self.name,
            "particle": self.particle,
            "pid": self.pid,
            "n_voxels": self.n_voxels,
            "n_layers": self.n_layers,
            "threshold_mev": self.threshold_mev,
            "description": self.description,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def _check_last_axis(self, showers: npt.NDArray[Any]) -> None:
        if showers.ndim < 1 or showers.shape[-1] != self.n_voxels:
            raise GeometryError(
                f"geometry {self.name!r} expects {self.n_voxels} voxels on the last axis, "
                f"got shape {showers.shape}"
            )


# --------------------------------------------------------------------- XML
