"""Voxel binnings of calorimeter showers.

A :class:`Geometry` says how a shower's flat voxel vector maps onto space. The
CaloChallenge 2022 geometries are *polar*: every readout layer is divided into
``n_radial`` rings (edges in mm) times ``n_alpha`` equal angular sectors over
[-pi, pi), with the flat order layer-major, then angular bin, then radial bin
(radial index fastest), exactly as in the official binning XML files. The
original CaloGAN geometry is *Cartesian*: each layer is a grid of ``n_y`` rows
times ``n_x`` columns (column index fastest).

Coordinates are relative to the incident particle's axis: ``x = r cos(alpha)``,
``y = r sin(alpha)`` in mm.

Example:
    >>> from physgen.calo.geometry import get_geometry
    >>> geo = get_geometry("1-photons")
    >>> geo.n_voxels, [l.id for l in geo.relevant_layers]
    (368, [0, 1, 2, 3, 12])
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from physgen.calo.layout import Geometry, Layer
from physgen.errors import GeometryError

__all__ = [
    "Geometry",
    "Layer",
    "available_geometries",
    "get_geometry",
    "load_xml",
    "match_geometry",
    "parse_xml",
]


def _parse_edges(text: str, where: str) -> tuple[float, ...]:
    try:
        edges = tuple(float(v) for v in text.split(",") if v.strip() != "")
    except ValueError as exc:
        raise GeometryError(
            f"{where}: r_edges must be comma-separated numbers, got {text!r}"
        ) from exc
    if not edges:
        raise GeometryError(f'{where}: r_edges is empty (use "0" for a layer without voxels)')
    if not all(math.isfinite(e) for e in edges):
        raise GeometryError(f"{where}: r_edges must be finite, got {text!r}")
    if len(edges) == 1:
        if edges[0] != 0.0:
            raise GeometryError(f"{where}: a single r_edge must be 0 (no voxels), got {text!r}")
        return ()
    if edges[0] < 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise GeometryError(
            f"{where}: r_edges must be non-negative and strictly increasing, got {text!r}"
        )
    return edges


def parse_xml(
    text: str, particle: str, *, name: str | None = None, source: str = "<xml>"
) -> Geometry:
    """Parse a CaloChallenge binning XML document.

    Args:
        text: The XML document.
        particle: Value of the ``name`` attribute of the ``Bin`` to use
            (``"photon"``, ``"pion"``, ``"electron"``).
        name: Name of the resulting geometry (default: ``source``).
        source: File name used in error messages.

    Returns:
        The geometry of that particle's ``Bin``.

    Raises:
        GeometryError: On malformed XML, missing or non-numeric attributes,
            decreasing edges, ``n_bin_alpha < 1`` or an unknown particle.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise GeometryError(f"{source}: not well-formed XML ({exc})") from exc
    if root.tag != "Bins":
        raise GeometryError(f"{source}: root element must be <Bins>, got <{root.tag}>")
    bins = root.findall("Bin")
    if not bins:
        raise GeometryError(f"{source}: no <Bin> element")
    chosen = [b for b in bins if b.get("name") == particle]
    if not chosen:
        names = [b.get("name") for b in bins]
        raise GeometryError(f"{source}: no <Bin name={particle!r}>; the file has {names}")
    node = chosen[0]
    pid_text = node.get("pid")
    pid: int | None
    try:
        pid = int(pid_text) if pid_text is not None else None
    except ValueError as exc:
        raise GeometryError(f"{source}: Bin pid must be an integer, got {pid_text!r}") from exc
    layers = []
    seen: set[int] = set()
    for i, el in enumerate(node.findall("Layer")):
        where = f"{source}: Layer #{i}"
        missing = [a for a in ("id", "r_edges", "n_bin_alpha") if el.get(a) is None]
        if missing:
            raise GeometryError(f"{where}: missing attribute(s) {', '.join(missing)}")
        try:
            layer_id = int(el.get("id", ""))
        except ValueError as exc:
            raise GeometryError(f"{where}: id must be an integer, got {el.get('id')!r}") from exc
        where = f"{source}: Layer id={layer_id}"
        if layer_id in seen:
            raise GeometryError(f"{where}: duplicate layer id")
        seen.add(layer_id)
        try:
            n_alpha = int(el.get("n_bin_alpha", ""))
        except ValueError as exc:
            raise GeometryError(
                f"{where}: n_bin_alpha must be an integer >= 1, got {el.get('n_bin_alpha')!r}"
            ) from exc
        if n_alpha < 1:
            raise GeometryError(f"{where}: n_bin_alpha must be >= 1, got {n_alpha}")
        edges = _parse_edges(el.get("r_edges", ""), where)
        layers.append(Layer(id=layer_id, r_edges=edges, n_alpha=n_alpha))
    if not layers:
        raise GeometryError(f"{source}: <Bin name={particle!r}> has no <Layer>")
    geo = Geometry(name=name or source, particle=particle, layers=tuple(layers), pid=pid)
    if geo.n_voxels == 0:
        raise GeometryError(f"{source}: no layer has voxels")
    return geo


def load_xml(path: str | Path, particle: str, *, name: str | None = None) -> Geometry:
    """Read a binning XML file (see :func:`parse_xml`).

    Raises:
        GeometryError: If the file cannot be read or is malformed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeometryError(f"{p}: cannot read binning XML ({exc.__class__.__name__})") from exc
    return parse_xml(text, particle, name=name or p.stem, source=str(p))


# --------------------------------------------------------------- built-ins

_DS1_EMPTY = tuple(range(24))


def _ds1(particle: str, pid: int, binned: dict[int, tuple[tuple[float, ...], int]]) -> Geometry:
    layers = tuple(
        Layer(id=i, r_edges=binned[i][0], n_alpha=binned[i][1]) if i in binned else Layer(id=i)
        for i in _DS1_EMPTY
    )
    label = "1-photons" if particle == "photon" else "1-pions"
    return Geometry(
        name=label,
        particle=particle,
        layers=layers,
        pid=pid,
        threshold_mev=1.0,
        description=f"CaloChallenge dataset 1 {particle}s (ATLAS FastCaloGAN binning)",
    )


def _par04(name: str, n_r: int, dr: float, n_alpha: int) -> Geometry:
    # Edges are k * dr rounded as printed in the official files (e.g. 4.65, 6.975).
    edges = tuple(round(k * dr, 6) for k in range(n_r + 1))
    layers = tuple(Layer(id=i, r_edges=edges, n_alpha=n_alpha) for i in range(45))
    return Geometry(
        name=name,
        particle="electron",
        layers=layers,
        pid=11,
        threshold_mev=0.5e-3 / 0.033,
        description=f"CaloChallenge dataset {name} (Geant4 Par04 W/Si, 45 x {n_alpha} x {n_r})",
    )


def _calogan() -> Geometry:
    # 480 mm x 480 mm window centred on the beam axis.
    def edges(n: int) -> tuple[float, ...]:
        return tuple(float(v) for v in np.linspace(-240.0, 240.0, n + 1))

    layers = (
        Layer(id=0, x_edges=edges(96), y_edges=edges(3)),
        Layer(id=1, x_edges=edges(12), y_edges=edges(12)),
        Layer(id=2, x_edges=edges(6), y_edges=edges(12)),
    )
    return Geometry(
        name="calogan",
        particle="positron",
        layers=layers,
        pid=-11,
        threshold_mev=0.0,
        description="CaloGAN Pb/LAr: layers of 3x96, 12x12, 12x6 cells over 480 x 480 mm",
    )


def _builtin(name: str) -> Geometry:
    if name == "1-photons":
        return _ds1(
            "photon",
            22,
            {
                0: ((0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
                1: ((0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 40, 50, 70, 90, 120, 150, 200), 10),
                2: (
                    (
                        0,
                        2,
                        5,
                        10,
                        15,
                        20,
                        25,
                        30,
                        40,
                        50,
                        60,
                        80,
                        100,
                        130,
                        160,
                        200,
                        250,
                        300,
                        350,
                        400,
                    ),
                    10,
                ),
                3: ((0, 50, 100, 200, 400, 600), 1),
                12: ((0, 100, 200, 400, 1000, 2000), 1),
            },
        )
    if name == "1-pions":
        return _ds1(
            "pion",
            211,
            {
                0: ((0, 5, 10, 30, 50, 100, 200, 400, 600), 1),
                1: ((0, 1, 4, 7, 10, 15, 30, 50, 90, 150, 200), 10),
                2: ((0, 5, 10, 20, 30, 50, 80, 130, 200, 300, 400), 10),
                3: ((0, 50, 100, 200, 400, 600), 1),
                12: (
                    (0, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250, 300, 350, 400, 1000, 2000),
                    10,
                ),
                13: (
                    (
                        0,
                        10,
                        20,
                        30,
                        50,
                        80,
                        100,
                        130,
                        160,
                        200,
                        250,
                        300,
                        350,
                        400,
                        600,
                        1000,
                        2000,
                    ),
                    10,
                ),
                14: ((0, 50, 100, 150, 200, 250, 300, 400, 600, 1000, 2000), 1),
            },
        )
    if name == "2":
        return _par04("2", 9, 4.65, 16)
    if name == "3":
        return _par04("3", 18, 2.325, 50)
    if name == "calogan":
        return _calogan()
    raise GeometryError(
        f"unknown geometry {name!r}; built-in geometries: {', '.join(available_geometries())} "
        "(or give a path to a binning XML file)"
    )


_BUILTIN_NAMES = ("1-photons", "1-pions", "2", "3", "calogan")
_CACHE: dict[str, Geometry] = {}


def available_geometries() -> tuple[str, ...]:
    """Names of the built-in geometries."""
    return _BUILTIN_NAMES


def get_geometry(name: str | Geometry, particle: str | None = None) -> Geometry:
    """Look up a built-in geometry, or read a binning XML file.

    Args:
        name: A built-in name (``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"``,
            ``"calogan"``), a path to a binning XML file, or a Geometry (returned as is).
            ``"1"`` is not accepted because dataset 1 has two binnings.
        particle: For XML files, the ``Bin`` name to select (default: the first Bin's).

    Raises:
        GeometryError: If the name is unknown or the file is malformed.
    """
    if isinstance(name, Geometry):
        return name
    key = str(name)
    if key in _BUILTIN_NAMES:
        if key not in _CACHE:
            _CACHE[key] = _builtin(key)
        return _CACHE[key]
    if key.lower().endswith(".xml"):
        path = Path(key)
        if particle is None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise GeometryError(f"{path}: cannot read binning XML ({exc})") from exc
            try:
                first = ET.fromstring(text).find("Bin")
            except ET.ParseError as exc:
                raise GeometryError(f"{path}: not well-formed XML ({exc})") from exc
            particle = first.get("name") if first is not None else None
            if particle is None:
                raise GeometryError(f"{path}: no <Bin name=...> element")
        return load_xml(path, particle)
    if key == "1":
        raise GeometryError("geometry '1' is ambiguous: use '1-photons' or '1-pions'")
    return _builtin(key)


def match_geometry(n_voxels: int) -> Geometry | None:
    """The built-in geometry with this many voxels, or None."""
    for name in _BUILTIN_NAMES:
        geo = get_geometry(name)
        if geo.n_voxels == n_voxels:
            return geo
    return None
