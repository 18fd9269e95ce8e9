"""Geometry: built-ins against the official XMLs, voxel order, centres, XML parser errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.calo.geometry import (
    Geometry,
    Layer,
    available_geometries,
    get_geometry,
    load_xml,
    match_geometry,
    parse_xml,
)
from physgen.errors import GeometryError

OFFICIAL = {
    "1-photons": ("binning_dataset_1_photons.xml", "photon", 368),
    "1-pions": ("binning_dataset_1_pions.xml", "pion", 533),
    "2": ("binning_dataset_2.xml", "electron", 6480),
    "3": ("binning_dataset_3.xml", "electron", 40500),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_builtin_identical_to_official_xml(name: str, binning_dir: Path) -> None:
    fname, particle, n_vox = OFFICIAL[name]
    official = load_xml(binning_dir / fname, particle)
    builtin = get_geometry(name)
    assert builtin.n_voxels == official.n_voxels == n_vox
    assert builtin.particle == official.particle
    assert builtin.pid == official.pid
    assert [lay.id for lay in builtin.layers] == [lay.id for lay in official.layers]
    for a, b in zip(builtin.layers, official.layers):
        assert a.n_alpha == b.n_alpha
        assert a.n_radial == b.n_radial
        np.testing.assert_array_equal(np.array(a.r_edges), np.array(b.r_edges))


def test_layer_structures() -> None:
    ph = get_geometry("1-photons")
    assert [lay.id for lay in ph.relevant_layers] == [0, 1, 2, 3, 12]
    slices = ph.layer_slices()
    assert [(s.start, s.stop) for s in slices.values()] == [
        (0, 8),
        (8, 168),
        (168, 358),
        (358, 363),
        (363, 368),
    ]
    pi = get_geometry("1-pions")
    assert [lay.shape()[::-1] for lay in pi.relevant_layers] == [
        (8, 1),
        (10, 10),
        (10, 10),
        (5, 1),
        (15, 10),
        (16, 10),
        (10, 1),
    ]
    assert get_geometry("2").reshape(np.zeros((3, 6480))).shape == (3, 45, 16, 9)
    assert get_geometry("3").reshape(np.zeros(40500)).shape == (45, 50, 18)
    cg = get_geometry("calogan")
    assert [lay.shape() for lay in cg.relevant_layers] == [(3, 96), (12, 12), (12, 6)]
    assert cg.n_voxels == 504


def test_voxel_order_radial_fastest() -> None:
    geo = get_geometry("2")
    flat = np.arange(geo.n_voxels)
    grid = geo.reshape(flat)
    # layer-major, then alpha, then r (r fastest)
    assert grid[0, 0, 1] == 1
    assert grid[0, 1, 0] == 9
    assert grid[1, 0, 0] == 144
    np.testing.assert_array_equal(geo.flatten(grid), flat)
    c = geo.voxel_centres()
    assert c["r"][0] == pytest.approx(4.65 / 2)
    assert c["r"][1] == pytest.approx(4.65 * 1.5)
    assert c["alpha"][0] == pytest.approx(-math.pi + math.pi / 16)
    assert c["alpha"][9] == pytest.approx(-math.pi + 3 * math.pi / 16)
    np.testing.assert_allclose(c["x"], c["r"] * np.cos(c["alpha"]))
    np.testing.assert_allclose(c["y"], c["r"] * np.sin(c["alpha"]))


def test_split_layers_and_energies() -> None:
    geo = get_geometry("1-photons")
    x = np.arange(2 * 368, dtype=float).reshape(2, 368)
    parts = geo.split_layers(x)
    assert parts[1].shape == (2, 10, 16)
    assert parts[1][0, 0, 0] == 8
    e = geo.layer_energies(x)
    assert e.shape == (2, 5)
    np.testing.assert_allclose(e.sum(axis=1), x.sum(axis=1))
    with pytest.raises(GeometryError, match="has layers of different shapes"):
        geo.reshape(x)
    with pytest.raises(GeometryError, match="expects 368 voxels"):
        geo.layer_energies(np.zeros((2, 10)))


def test_lookup_errors_and_matching() -> None:
    assert set(available_geometries()) == {"1-photons", "1-pions", "2", "3", "calogan"}
    with pytest.raises(GeometryError, match="unknown geometry 'ds9'"):
        get_geometry("ds9")
    with pytest.raises(GeometryError, match="ambiguous"):
        get_geometry("1")
    assert match_geometry(6480).name == "2"  # type: ignore[union-attr]
    assert match_geometry(7) is None
    d = get_geometry("3").to_dict()
    assert {"name", "particle", "n_voxels", "layers"} <= set(d)
    assert {"id", "n_radial", "n_alpha", "r_edges_mm"} <= set(d["layers"][0])


def _xml(layers: str, name: str = "photon") -> str:
    return f'<Bins><Bin pid="22" name="{name}">{layers}</Bin></Bins>'


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ('<Layer id="0" r_edges="0,1,2"/>', "missing attribute.*n_bin_alpha"),
        ('<Layer r_edges="0,1,2" n_bin_alpha="1"/>', "missing attribute.*id"),
        ('<Layer id="0" r_edges="0,a,2" n_bin_alpha="1"/>', "comma-separated numbers"),
        ('<Layer id="0" r_edges="0,2,1" n_bin_alpha="1"/>', "strictly increasing"),
        ('<Layer id="0" r_edges="0,1,2" n_bin_alpha="0"/>', "n_bin_alpha must be >= 1"),
        ('<Layer id="0" r_edges="0,1,2" n_bin_alpha="x"/>', "n_bin_alpha must be an integer"),
        ('<Layer id="x" r_edges="0,1" n_bin_alpha="1"/>', "id must be an integer"),
        ('<Layer id="0" r_edges="0" n_bin_alpha="1"/>', "no layer has voxels"),
        (
            '<Layer id="0" r_edges="0,1" n_bin_alpha="1"/><Layer id="0" r_edges="0,1" n_bin_alpha="1"/>',
            "duplicate",
        ),
        ('<Layer id="0" r_edges="0,1,nan" n_bin_alpha="1"/>', "finite"),
        ('<Layer id="0" r_edges="0,1" n_bin_alpha="1">', "not well-formed"),
    ],
)
def test_malformed_xml(layers: str, message: str) -> None:
    with pytest.raises(GeometryError, match=message):
        parse_xml(_xml(layers), "photon", source="bad.xml")


def test_xml_wrong_particle_and_root() -> None:
    with pytest.raises(GeometryError, match="no <Bin name='pion'>"):
        parse_xml(_xml('<Layer id="0" r_edges="0,1" n_bin_alpha="1"/>'), "pion")
    with pytest.raises(GeometryError, match="root element must be <Bins>"):
        parse_xml("<Foo/>", "photon")


def test_load_xml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GeometryError, match="cannot read binning XML"):
        load_xml(tmp_path / "nope.xml", "photon")


edges_st = st.lists(
    st.floats(min_value=0.01, max_value=1e4, allow_nan=False), min_size=1, max_size=12
).map(lambda d: np.cumsum([0.0, *d]).tolist())


@settings(max_examples=60, deadline=None)
@given(
    layers=st.lists(st.tuples(edges_st, st.integers(1, 64)), min_size=1, max_size=6),
)
def test_xml_roundtrip_property(layers: list[tuple[list[float], int]]) -> None:
    """Any valid binning written as XML parses back to the same edges and voxel count."""
    body = "".join(
        f'<Layer id="{i}" r_edges="{",".join(repr(e) for e in edges)}" n_bin_alpha="{na}"/>'
        for i, (edges, na) in enumerate(layers)
    )
    geo = parse_xml(_xml(body, "electron"), "electron")
    assert geo.n_voxels == sum((len(e) - 1) * na for e, na in layers)
    for lay, (edges, na) in zip(geo.layers, layers):
        assert lay.r_edges == tuple(edges)
        assert lay.n_alpha == na
    c = geo.voxel_centres()
    assert c["r"].shape == (geo.n_voxels,)
    assert np.all((c["alpha"] >= -math.pi) & (c["alpha"] < math.pi))


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_xml_parser_never_crashes(text: str) -> None:
    """Arbitrary text either parses or raises GeometryError - never anything else."""
    try:
        geo = parse_xml(text, "photon")
    except GeometryError:
        return
    assert isinstance(geo, Geometry)


@settings(max_examples=100, deadline=None)
@given(
    attrs=st.dictionaries(
        st.sampled_from(["id", "r_edges", "n_bin_alpha"]),
        st.text(alphabet="0123456789,.-eax ", max_size=12),
    )
)
def test_xml_layer_attributes_fuzz(attrs: dict[str, str]) -> None:
    from xml.sax.saxutils import quoteattr

    body = "<Layer " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + "/>"
    try:
        geo = parse_xml(_xml(body), "photon")
    except GeometryError:
        return
    assert geo.n_voxels >= 1
    assert all(isinstance(layer, Layer) for layer in geo.layers)


# ------------------------------------------------------------------ azimuthal symmetries


def _check_symmetry_rows(geo: Geometry, perms: np.ndarray) -> None:
    """Every row is a permutation that moves each voxel to the voxel at the rotated (or
    reflected) centre: same r, alpha mapped by one rigid map per row."""
    c = geo.voxel_centres()
    r, alpha = c["r"], c["alpha"]
    assert np.array_equal(perms[0], np.arange(geo.n_voxels))
    for perm in perms:
        assert np.array_equal(np.sort(perm), np.arange(geo.n_voxels))
        assert np.allclose(r[perm], r)
        binned = np.array(
            [lay.n_alpha > 1 for lay in geo.relevant_layers for _ in range(lay.n_voxels)]
        )
        if not binned.any():
            continue
        # output voxel j holds input voxel perm[j]: alpha_j = s * alpha_perm[j] + phi (mod 2 pi)
        a_out, a_in = alpha[binned], alpha[perm][binned]
        fits = []
        for sign in (1.0, -1.0):
            phi = np.angle(np.mean(np.exp(1j * (a_out - sign * a_in))))
            resid = np.angle(np.exp(1j * (a_out - sign * a_in - phi)))
            fits.append(np.abs(resid).max())
        assert min(fits) < 1e-9
        assert np.array_equal(perm[~binned], np.arange(geo.n_voxels)[~binned])


@pytest.mark.parametrize(("name", "g"), [("1-photons", 10), ("1-pions", 10), ("2", 16)])
def test_azimuthal_symmetries_of_the_datasets(name: str, g: int) -> None:
    geo = get_geometry(name)
    rot = geo.azimuthal_symmetries(reflect=False)
    both = geo.azimuthal_symmetries()
    assert rot.shape == (g, geo.n_voxels) and both.shape == (2 * g, geo.n_voxels)
    assert np.array_equal(both[:g], rot)
    assert len({row.tobytes() for row in both}) == 2 * g  # all distinct
    _check_symmetry_rows(geo, both)
    # a group: composing two elements gives an element
    rows = {row.tobytes() for row in both}
    for a in both[:: max(1, g // 3)]:
        for b in both[:: max(1, g // 2)]:
            assert a[b].tobytes() in rows
    # layer energies and the radial profile are invariant
    x = np.random.default_rng(0).exponential(size=(5, geo.n_voxels))
    for perm in both:
        assert np.allclose(geo.layer_energies(x[:, perm]), geo.layer_energies(x))


@settings(max_examples=40, deadline=None)
@given(
    layers=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 4, 6, 8, 12])), min_size=1, max_size=4
    )
)
def test_azimuthal_symmetries_property(layers: list[tuple[int, int]]) -> None:
    body = "".join(
        f'<Layer id="{i}" r_edges="{",".join(str(10 * k) for k in range(n_r + 1))}" '
        f'n_bin_alpha="{na}"/>'
        for i, (n_r, na) in enumerate(layers)
    )
    geo = parse_xml(_xml(body, "electron"), "electron")
    counts = [na for _, na in layers if na > 1]
    g = math.gcd(*counts) if counts else 1
    perms = geo.azimuthal_symmetries()
    assert perms.shape == ((2 * g if counts else 1), geo.n_voxels)
    _check_symmetry_rows(geo, perms)


def test_azimuthal_symmetries_need_polar_layers() -> None:
    with pytest.raises(GeometryError, match="Cartesian layers"):
        get_geometry("calogan").azimuthal_symmetries()
