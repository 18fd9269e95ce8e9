"""``physgen simulate`` on the command line."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from physgen.calo.io import read_showers
from physgen.cli.simulate import simulate as simulate_cmd

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(simulate_cmd)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps "simulate" a sub-command
        pass

    return app


def test_help_mentions_units_and_forms() -> None:
    result = runner.invoke(_app(), ["simulate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.output
    for word in (
        "--energy",
        "GeV",
        "MeV",
        "TeV",
        "1GeV:1TeV",
        "ds1",
        "--engine",
        "gflash",
        "cascade",
        "--workers",
        "--seed",
        "--no-progress",
        "--compression",
        "--detector",
    ):
        assert word in text, word


def test_simulate_writes_file_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    result = runner.invoke(
        _app(),
        [
            "simulate",
            "--geometry",
            "2",
            "--particle",
            "electron",
            "--n",
            "5",
            "--energy",
            "20GeV",
            "--engine",
            "gflash",
            "--seed",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "5 electron showers" in result.output and "showers/s" in result.output
    e, x = read_showers(out)
    assert x.shape == (5, 6480)
    np.testing.assert_array_equal(e[:, 0], 2e4)
    with h5py.File(out) as f:
        assert int(f.attrs["seed"]) == 3


def test_main_entry_point_with_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from physgen.cli.main import main

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    base = [
        "simulate",
        "--geometry",
        "3",
        "--particle",
        "photon",
        "--n",
        "6",
        "--energy",
        "1GeV:1TeV",
        "--engine",
        "gflash",
        "--no-progress",
        "--compression",
        "lzf",
    ]
    assert main([*base, "--out", str(a)]) == 0
    assert main([*base, "--out", str(b), "--workers", "2"]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--energy", "ten GeV"], "--energy"),
        (["--energy", "2TeV"], "--energy"),
        (["--particle", "muon"], "--particle"),
        (["--engine", "fast"], "--engine"),
        (["--geometry", "9"], "--geometry"),
        (["--n", "0"], "--n"),
        (["--workers", "0"], "--workers"),
        (["--seed", "-4"], "--seed"),
        (["--compression", "bzip2"], "--compression"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    from physgen.cli.main import main

    opts = {
        "--geometry": "2",
        "--particle": "electron",
        "--n": "3",
        "--energy": "10GeV",
        "--engine": "gflash",
        "--out": str(tmp_path / "x.h5"),
    }
    opts.update(dict(zip(args[::2], args[1::2])))
    argv = ["simulate", "--no-progress"] + [t for kv in opts.items() for t in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from physgen.cli.main import main

    argv = [
        "simulate",
        "--geometry",
        "2",
        "--particle",
        "e-",
        "--n",
        "2",
        "--energy",
        "5GeV",
        "--engine",
        "gflash",
        "--out",
        str(tmp_path / "no" / "x.h5"),
        "--no-progress",
    ]
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err
