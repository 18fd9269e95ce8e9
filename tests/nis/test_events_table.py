"""``physgen events --out X.parquet / X.root``: one row per event, the LHE file's numbers.

Read back with pyarrow and uproot (and awkward where installed); momentum conservation, masses
and weights are checked against the LHE output of the same seed, number for number.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import physgen.nis as nis
from physgen.cli.main import main
from physgen.columns import read_columns
from physgen.errors import ConfigError, MissingDependencyError
from physgen.nis import EEToMuMu, EEToQQG, generate_events, write_events_table

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
uproot = pytest.importorskip("uproot")
torch.set_num_threads(1)

COLUMNS = ["pdg_id", "status", "px", "py", "pz", "E", "m", "weight"]
ARGS = ["events", "--process", "ee-mumu", "--n", "200", "--method", "vegas", "--calls", "20000"]


def _read_lhe(path: Path) -> tuple[float, dict[str, np.ndarray]]:
    """Cross section and the event table of one of our LHE files (every event has the same
    number of particle lines)."""
    text = path.read_text()
    xs = float(text.split("<init>\n")[1].split("\n")[1].split()[0])
    rows, weights = [], []
    for block in re.findall(r"<event>\n(.*?)\n</event>", text, flags=re.S):
        lines = block.split("\n")
        weights.append(float(lines[0].split()[2]))
        rows.append([[float(v) for v in ln.split()] for ln in lines[1:]])
    a = np.array(rows)  # (n, k + 2, 13): id status mo1 mo2 col acol px py pz E m tau spin
    cols = {"pdg_id": a[..., 0].astype(np.int32), "status": a[..., 1].astype(np.int32)}
    cols.update({name: a[..., 6 + i] for i, name in enumerate(("px", "py", "pz", "E", "m"))})
    cols["weight"] = np.array(weights)
    return xs, cols


def _read_parquet(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    table = pq.read_table(path)
    assert table.column_names == COLUMNS
    out = {}
    for name in COLUMNS:
        col = table.column(name).combine_chunks()
        if name == "weight":
            out[name] = col.to_numpy()
        else:
            assert pa.types.is_fixed_size_list(col.type) and col.null_count == 0
            out[name] = col.flatten().to_numpy().reshape(len(table), col.type.list_size)
    return out, json.loads(table.schema.metadata[b"physgen"])


def _read_root(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with uproot.open(path) as f:
        assert {k.split(";")[0]: v for k, v in f.classnames().items()} == {
            "events": "TTree",
            "events_provenance": "TObjString",
        }
        tree = f["events"]
        assert list(tree.keys()) == COLUMNS
        arrays = tree.arrays(library="np")
        meta = json.loads(str(f["events_provenance"]))
    return {k: np.asarray(arrays[k]) for k in COLUMNS}, meta


@pytest.fixture(scope="module")
def same_seed_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("events")
    paths = {}
    for suffix in ("lhe", "parquet", "root"):
        paths[suffix] = folder / f"ev.{suffix}"
        assert main([*ARGS, "--seed", "5", "--no-progress", "--out", str(paths[suffix])]) == 0
    return paths


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_table_equals_the_lhe_file_of_the_same_seed(same_seed_files, fmt):
    xs, lhe = _read_lhe(same_seed_files["lhe"])
    table, meta = (_read_parquet if fmt == "parquet" else _read_root)(same_seed_files[fmt])
    assert table["px"].shape == (200, 4) and table["weight"].shape == (200,)
    assert table["pdg_id"].dtype == np.int32 and table["E"].dtype == np.float64
    for name in COLUMNS:  # the LHE numbers have 17 digits: the same float64 values
        np.testing.assert_array_equal(table[name], lhe[name], err_msg=name)
    assert (table["pdg_id"] == [11, -11, 13, -13]).all()
    assert (table["status"] == [-1, -1, 1, 1]).all()
    # momentum conservation in every event, and E^2 - |p|^2 = m^2
    sqrt_s = EEToMuMu().sqrt_s
    four = np.stack([table[c] for c in ("E", "px", "py", "pz")], axis=-1)  # (n, 4, 4)
    incoming = four[:, :2].sum(1)
    outgoing = four[:, 2:].sum(1)
    np.testing.assert_allclose(outgoing, incoming, rtol=0, atol=1e-12 * sqrt_s)
    np.testing.assert_allclose(incoming, [[sqrt_s, 0, 0, 0]] * 200, rtol=0, atol=1e-12 * sqrt_s)
    m2 = four[..., 0] ** 2 - (four[..., 1:] ** 2).sum(-1)
    assert (np.abs(m2 - table["m"] ** 2) <= 2e-15 * four[..., 0] ** 2).all()
    # weights: sigma / N each, summing to the LHE cross section
    assert math.fsum(table["weight"]) == pytest.approx(xs, rel=1e-12)
    assert meta["cross_section_pb"] == xs and meta["n_events"] == 200
    assert meta["event_weight_pb"] == table["weight"][0]
    assert meta["process"] == "ee-mumu" and meta["seed"] == 5
    assert meta["units"]["px"] == "GeV" and meta["units"]["weight"] == "pb"
    # physgen's own column reader (physgen fit / sample --data) takes the same columns
    got = read_columns(same_seed_files[fmt], "E[2:4],pdg_id[2],weight")
    np.testing.assert_array_equal(
        got, np.column_stack([lhe["E"][:, 2:], lhe["pdg_id"][:, 2], lhe["weight"]])
    )


def test_awkward_reads_regular_records(same_seed_files):
    ak = pytest.importorskip("awkward")
    events = ak.from_parquet(same_seed_files["parquet"])
    assert str(events.type) == (
        "200 * {pdg_id: 4 * int32, status: 4 * int32, px: 4 * float64, py: 4 * float64, "
        "pz: 4 * float64, E: 4 * float64, m: 4 * float64, weight: float64}"
    )
    with uproot.open(same_seed_files["root"]) as f:
        from_root = f["events"].arrays()
    assert ak.to_list(from_root) == ak.to_list(events)
    # per-particle records (variable-length, for jagged selections), and the final state as
    # a physicist selects it
    particles = ak.from_regular(ak.zip({c: events[c] for c in COLUMNS[:-1]}), axis=1)
    assert str(particles.type).startswith("200 * var * {pdg_id: int32")
    muons = particles[particles.status == 1]
    assert ak.all(ak.num(muons, axis=1) == 2) and ak.all(abs(muons.pdg_id) == 13)
    np.testing.assert_allclose(ak.to_numpy(ak.sum(muons.pz, axis=1)), 0.0, atol=1e-12 * 91.2)


def test_ee_qqg_table_through_the_library(tmp_path):
    proc = EEToQQG()
    ev = generate_events(proc, 50, method="vegas", calls=20_000, seed=2, pilot=20_000)
    for suffix in ("parquet", "root"):
        path = write_events_table(
            tmp_path / f"qqg.{suffix}",
            ev.beams,
            ev.pdg,
            ev.momenta,
            proc.beam_pdg,
            ev.cross_section,
            ev.cross_section_error,
            {"process": proc.name},
        )
        table, meta = (_read_parquet if suffix == "parquet" else _read_root)(path)
        assert table["px"].shape == (50, 5)
        assert (table["status"] == [-1, -1, 1, 1, 1]).all()
        np.testing.assert_array_equal(table["pdg_id"][:, 2:], ev.pdg.numpy())
        np.testing.assert_array_equal(table["E"][:, 2:], ev.momenta[..., 0].numpy())
        assert (table["m"][:, 2:] == 0.0).all() and (table["m"][:, :2] == 0.51099895e-3).all()
        assert math.fsum(table["weight"]) == pytest.approx(ev.cross_section, rel=1e-12)
        assert meta["cross_section_error_pb"] == ev.cross_section_error


def test_table_errors(tmp_path):
    ev = generate_events(EEToMuMu(), 5, method="uniform", calls=0, seed=1, pilot=2000)
    args = (ev.beams, ev.pdg, ev.momenta, (11, -11), ev.cross_section, ev.cross_section_error)
    with pytest.raises(ConfigError, match=r"expected a \.parquet or \.root file"):
        write_events_table(tmp_path / "x.csv", *args)
    with pytest.raises(ConfigError, match="does not exist"):
        write_events_table(tmp_path / "nodir" / "x.root", *args)
    assert main(["events", "--process", "ee-mumu", "--n", "5", "--out", str(tmp_path / "x.csv")])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "module"), [("x.parquet", "pyarrow"), ("x.root", "uproot")])
def test_missing_io_extra_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, name, module):
    for m in [m for m in sys.modules if m.partition(".")[0] == module]:
        monkeypatch.delitem(sys.modules, m)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    out = tmp_path / name
    ev = generate_events(EEToMuMu(), 5, method="uniform", calls=0, seed=1, pilot=2000)

    def no_work(*args, **kwargs):
        raise AssertionError("events were generated before the missing package was reported")

    monkeypatch.setattr(nis, "generate_events", no_work)
    code = main(["events", "--process", "ee-mumu", "--n", "5", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {out}: {'Parquet' if module == 'pyarrow' else 'ROOT'} files need {module}: "
        "pip install 'physgen[io]'"
    ]
    assert not out.exists()
    with pytest.raises(MissingDependencyError, match=r"physgen\[io\]"):
        write_events_table(out, ev.beams, ev.pdg, ev.momenta, (11, -11), ev.cross_section, 0.0)
