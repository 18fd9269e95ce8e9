"""Command-line conventions, checked on every command and sub-command of ``physgen``.

The walk goes over the Typer app's registered commands (``typer.main.get_command``), so a
new command must be classified in :data:`COMMANDS` before this file passes. On each
command's ``--help``:

* a command that writes has ``-o/--out``; one that draws random numbers has ``--seed``;
  the ones a script reads have ``--json``;
* every command takes ``-q/--quiet`` and ``-v/--verbose`` (the root takes them too);
* every numeric option names a unit in its help, or is a dimensionless count, seed or
  share listed in :data:`DIMENSIONLESS` with the reason.

Then what the options do: ``--json`` prints one parseable object and nothing else on
stdout; ``-q`` silences warnings and progress bars on stderr (root or command level),
``-v`` adds info lines; ``--shard`` with fewer showers than shards explains itself.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import typer

from clitools import Run
from physgen.calo.io import open_showers, write_showers
from physgen.cli.main import app, main
from showerdata import make_showers

#: command -> (writes a file or folder, draws random numbers, has --json)
COMMANDS: dict[str, tuple[bool, bool, bool]] = {
    "geometry": (False, False, True),
    "info": (False, False, True),
    "validate": (False, False, True),
    "merge": (True, False, True),
    "simulate": (True, True, True),
    "train": (True, True, True),
    "generate": (True, True, True),
    "refine": (True, True, True),
    "distill": (True, True, True),
    "evaluate": (True, True, True),
    "timing": (True, True, True),
    "integrate": (False, True, True),
    "events": (True, True, True),
    "fit": (True, True, True),
    "sample": (True, True, True),
    "convert": (True, False, True),
    "unfold": (True, True, True),
    "pythia": (True, True, True),
    "anomaly": (True, True, True),
    "export": (True, True, True),
    "job-script": (False, False, False),
    "bench front": (True, True, True),
    "diffsim fit-alphas": (True, True, True),
    "diffsim optimise-calorimeter": (True, True, True),
}

#: The commands issue 16 names for --json (a script wants their result).
JSON_REQUIRED = {"simulate", "generate", "merge", "validate", "events", "integrate", "timing"}

#: Numeric options without a physical unit, and why.
DIMENSIONLESS: dict[str, str] = {
    "--n": "a number of showers, events or samples",
    "--seed": "names a random stream; not a quantity",
    "--workers": "a number of processes",
    "--threads": "a number of torch threads",
    "--epochs": "passes over the training data",
    "--steps": "solver or sampler steps",
    "--batch-size": "showers per batch",
    "--repeats": "repetitions of a measurement",
    "--warmup": "untimed repetitions",
    "--dim": "the dimension of the integration domain",
    "--calls": "integrand evaluations",
    "--eval-calls": "integrand evaluations",
    "--buffered-steps": "optimiser steps",
    "--vegas-fraction": "a share of the training calls (0-1)",
    "--overweight": "a share of the cross section (0-1)",
    "--iterations": "unfolding iterations",
    "--ensemble": "a number of classifiers averaged",
    "--bootstrap": "a number of bootstrap replicas",
    "--bins": "a number of histogram bins",
    "--folds": "a number of cross-validation folds",
    "--oversample": "background samples per signal-region event (a ratio)",
    "--opset": "an ONNX operator-set version",
    "--check-n": "a number of showers",
    "--task-size": "showers per cluster task",
    "--clip": "the largest weight, a ratio of densities",
    "--members": "a number of classifiers averaged",
    "--weight-draw": "names a draw of the network weights; not a quantity",
    "--n-mc": "a number of simulated events",
    "--curve-points": "a number of points on a curve",
    "--pseudo-data-alphas": "the strong coupling alpha_s(M_Z), dimensionless",
    "--start": "the strong coupling alpha_s(M_Z), dimensionless",
    "--target-resolution": "a relative resolution sigma_E / E",
    "--cost-ratio": "a ratio of costs per volume",
    "--containment-rm": "a length in Moliere radii of the material",
    "--lr": "a learning rate",
    "--start-ratio": "a ratio of thicknesses",
    "--grid-n": "a number of showers",
    "--pairs": "a number of teacher samples",
    "--max-steps": "a number of optimiser steps",
    "--cascade-n": "a number of showers",
}

#: Units a help text may name.
UNIT = re.compile(
    r"\b(keV|MeV|GeV|TeV|eV|mm|cm|m|ns|ms|s|seconds|minutes|hours|h|pb|fb|nb|bytes|kB|MB|GB|X0|"
    r"radiation lengths?)\b"
)


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _walk(sub, (*path, name))
    else:
        yield " ".join(path), cmd


ALL = dict(_walk(typer.main.get_command(app)))


def _options(cmd: Any) -> dict[str, Any]:
    """Every spelling of every option -> the option."""
    return {o: p for p in cmd.params if p.param_type_name == "option" for o in p.opts}


def test_every_command_is_classified() -> None:
    assert set(ALL) == set(COMMANDS), "classify new commands in COMMANDS"
    assert {c for c, (_, _, j) in COMMANDS.items() if j} >= JSON_REQUIRED


def test_root_takes_quiet_and_verbose(run: Run) -> None:
    rc, out, _ = run("--help")
    assert rc == 0
    assert "-q, --quiet" in out and "-v, --verbose" in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_follows_the_conventions(run: Run, name: str) -> None:
    writes, draws, has_json = COMMANDS[name]
    rc, text, err = run(*name.split(), "--help")
    assert rc == 0, err
    opts = _options(ALL[name])
    for flag, short in (("--quiet", "-q"), ("--verbose", "-v")):
        assert flag in opts and opts[flag] is opts.get(short), f"{name}: {short}/{flag}"
        assert f"{short}, {flag}" in text
    if writes:
        assert "--out" in opts and opts["--out"] is opts.get("-o"), f"{name}: -o/--out"
        assert "-o, --out" in text
    else:
        assert "--out" not in opts
    assert ("--seed" in opts) == draws, f"{name}: --seed"
    assert ("--json" in opts) == has_json, f"{name}: --json"
    for p in {id(p): p for p in opts.values()}.values():
        if p.is_flag or p.hidden:
            continue
        long = max(p.opts, key=len)
        assert p.help, f"{name} {long}: no help"
        m = re.search(re.escape(long) + r" <([^>]+)>", text)
        assert m is not None, f"{name} {long}: no metavar in --help"
        if m.group(1) in ("int", "float"):
            assert UNIT.search(p.help) or long in DIMENSIONLESS, (
                f"{name} {long}: name the unit in the help, or list it in DIMENSIONLESS "
                f"with the reason: {p.help!r}"
            )
        if long == "--energy":
            assert "MeV" in p.help, f"{name} --energy: say that a bare number is MeV"
        if long in ("--max-time", "--train-time"):
            assert re.search(r"\d+[hms]\b", p.help), f"{name} {long}: examples with units"


# --------------------------------------------------------------------- behaviour


@pytest.fixture(scope="module")
def shower_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "a.h5"
    write_showers(path, *make_showers(20, 368, seed=1), attrs={"seed": 1})
    return path


def _one_json_object(out: str) -> dict[str, Any]:
    """stdout holds exactly one JSON object (nothing before or after it)."""
    d = json.loads(out)
    assert isinstance(d, dict)
    return d


def test_validate_json(run: Run, shower_file: Path) -> None:
    rc, out, err = run("validate", shower_file, "--json")
    assert rc == 0, err
    d = _one_json_object(out)
    assert d == {
        "path": str(shower_file),
        "valid": True,
        "n_showers": 20,
        "geometry": "1-photons",
        "n_voxels": 368,
    }


def test_merge_json(run: Run, shower_file: Path, tmp_path: Path) -> None:
    other = write_showers(tmp_path / "b.h5", *make_showers(5, 368, seed=2), attrs={"seed": 2})
    rc, out, err = run("merge", shower_file, other, "-o", tmp_path / "m.h5", "--json")
    assert rc == 0, err
    assert _one_json_object(out) == {
        "path": str(tmp_path / "m.h5"),
        "n_showers": 25,
        "n_shards": 2,
    }


SIM = ("--geometry", "1-photons", "--particle", "photon", "--energy", "10GeV", "--engine")


def test_simulate_json(run: Run, tmp_path: Path) -> None:
    out_file = tmp_path / "s.h5"
    rc, out, err = run(
        "simulate", *SIM, "gflash", "--n", "3", "--seed", "4", "-o", out_file, "--json"
    )
    assert rc == 0, err
    d = _one_json_object(out)
    assert d["path"] == str(out_file) and d["n_showers"] == 3 and d["seed"] == 4
    assert d["rows"] == [0, 3] and d["shard"] == "1/1" and d["engine"] == "gflash"
    assert d["elapsed_s"] >= 0 and d["showers_per_s"] > 0
    with h5py.File(out_file) as f:
        assert f["showers"].shape == (3, 368)


def test_simulate_shards_merge_to_the_unsharded_run(run: Run, tmp_path: Path) -> None:
    args = (*SIM, "gflash", "--n", "5", "--seed", "9")
    assert run("simulate", *args, "-o", tmp_path / "all.h5", "-q")[0] == 0
    shards = []
    for i in (1, 2, 3):
        shards.append(tmp_path / f"s{i}.h5")
        rc, out, err = run("simulate", *args, "--shard", f"{i}/3", "-o", shards[-1], "--json")
        assert rc == 0, err
        assert _one_json_object(out)["rows"] == [[0, 1], [1, 3], [3, 5]][i - 1]
    assert run("merge", *shards, "-o", tmp_path / "m.h5")[0] == 0
    with h5py.File(tmp_path / "all.h5") as a, h5py.File(tmp_path / "m.h5") as m:
        for key in ("incident_energies", "showers"):
            np.testing.assert_array_equal(a[key][()], m[key][()])
    with open_showers(tmp_path / "m.h5") as f:  # the complete shard set: the unsharded run
        assert f.attrs["shard"] == "1/1" and f.attrs["rows"] == [0, 5]


def test_simulate_more_shards_than_showers_is_explained(run: Run, tmp_path: Path) -> None:
    rc, out, err = run(
        "simulate", *SIM, "gflash", "--n", "2", "--shard", "3/4", "-o", tmp_path / "x.h5"
    )
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: --shard 3/4")
    assert "2 showers cannot fill 4 shards; use at most 2 shards" in err
    assert not (tmp_path / "x.h5").exists()


def test_generate_empty_shard_is_explained_before_loading(run: Run, tmp_path: Path) -> None:
    from physgen.calo.config import load_config
    from physgen.calo.rundir import config_yaml

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(
        config_yaml(load_config("cfm", "1-photons", preset="tiny"))
    )
    (run_dir / "transforms.json").write_text("{}\n")
    (run_dir / "weights.pt").write_bytes(b"unusable: the shard check comes first")
    rc, _, err = run(
        "generate",
        run_dir,
        "--energy",
        "10GeV",
        "--n",
        "2500",
        "--shard",
        "1/4",  # 3 seed blocks over 4 shards: shard 1 gets none
        "-o",
        tmp_path / "g.h5",
    )
    assert rc == 2 and err.count("\n") == 1
    assert "seed blocks of 1000" in err and "2500 showers make only 3 block(s)" in err
    assert "use at most 3 shards" in err and "at least 3001 showers for 4 shards" in err


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bars."""

    def isatty(self) -> bool:
        return True


def _run_on_terminal(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    rc = main([str(a) for a in args])
    monkeypatch.undo()
    return rc, err.getvalue()


@pytest.mark.parametrize("where", ["root", "command"])
def test_quiet_silences_warnings_and_progress(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    # --workers above the number of showers is lowered with a warning; on a terminal a bar is drawn
    args = ["simulate", *SIM, "gflash", "--n", "1", "--workers", "512", "-o", tmp_path / "q.h5"]
    rc, err = _run_on_terminal(monkeypatch, *args)
    assert rc == 0
    assert "warning: --workers 512" in err and "simulate (gflash)" in err  # the bar
    quiet = ["-q", *args] if where == "root" else [*args, "-q"]
    rc, err = _run_on_terminal(monkeypatch, *quiet)
    assert rc == 0 and err == ""
    assert capsys.readouterr().out.count("wrote ") == 2  # the result still reaches stdout


def test_progress_bars_stay_off_without_a_terminal(run: Run, tmp_path: Path) -> None:
    rc, _, err = run("simulate", *SIM, "gflash", "--n", "2", "-o", tmp_path / "p.h5")
    assert rc == 0 and err == ""


def test_verbose_at_root_and_command(run: Run, tmp_path: Path) -> None:
    for args in (["-v", "simulate"], ["simulate", "-v"], ["-q", "simulate", "-v"]):
        rc, _, err = run(*args, *SIM, "gflash", "--n", "1", "-o", tmp_path / "v.h5")
        assert rc == 0 and "info: simulating 1 photon showers" in err, args
    rc, _, err = run("simulate", "-q", "-v", *SIM, "gflash", "--n", "1", "-o", tmp_path / "v.h5")
    assert rc == 2 and err == "error: --quiet and --verbose exclude each other: give one\n"


def test_quiet_does_not_leak_into_the_next_command(run: Run, tmp_path: Path) -> None:
    args = ["simulate", *SIM, "gflash", "--n", "1", "--workers", "512", "-o", tmp_path / "l.h5"]
    assert run("-q", *args)[2] == ""
    assert "warning: --workers 512" in run(*args)[2]


def test_events_and_integrate_json(run: Run, tmp_path: Path) -> None:
    rc, out, err = run(
        "events", "--process", "ee-mumu", "--n", "5", "--method", "uniform", "--calls", "0",
        "-o", tmp_path / "ev.lhe", "--json", "-q",
    )  # fmt: skip
    assert rc == 0 and err == ""
    d = _one_json_object(out)
    assert d["n_events"] == 5 and d["path"] == str(tmp_path / "ev.lhe")
    assert d["cross_section_pb"] > 0 and 0 < d["unweighting_efficiency"] <= 1
    rc, out, err = run(
        "integrate", "--integrand", "camel", "--dim", "2", "--method", "uniform", "--calls", "0",
        "--eval-calls", "1000", "--json", "-q",
    )  # fmt: skip
    assert rc == 0 and err == ""
    d = _one_json_object(out)
    assert d["integrand"] == "camel2" and d["error"] > 0 and d["eval_calls"] == 1000
