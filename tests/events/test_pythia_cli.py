"""``physgen pythia``: bad input gives one ``error:`` line, exit 2 and no file; a tiny run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from clitools import Run


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHYSGEN_CACHE", str(tmp_path / "cache"))


def _one_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    assert "Traceback" not in err


def test_help_follows_conventions(run: Run) -> None:
    rc, out, _ = run("pythia", "--help")
    assert rc == 0
    for opt in ("-o, --out", "--seed", "--json", "-q, --quiet", "-v, --verbose", "--set"):
        assert opt in out
    assert "GeV" in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--set", "Foo:bar = 1"), ("--set", "'Foo:bar'", "Pythia rejects")),
        (("--set", "TimeShower:alphaSvalue = 9"), ("--set", "alphaSvalue")),
        (("--set", "no equals sign"), ("--set", "Key = value")),
        (("--set", "Random:seed = 4"), ("--seed",)),
        (("--n", "0"), ("--n", ">= 1")),
        (("--config", "herwig"), ("--config", "sim or nature")),
        (("--seed", "-1"), ("--seed",)),
        (("--workers", "0"), ("--workers",)),
    ],
)
def test_bad_input(
    run: Run, tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    pytest.importorskip("pythia8mc")
    out = tmp_path / "x.h5"
    rc, _, err = run("pythia", "--n", "10", "-o", out, *args)
    _one_error(rc, err, *needles)
    assert not out.exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.h5"))
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


@pytest.mark.parametrize("module", ["pythia8mc", "fastjet"])
def test_missing_dependency(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    out = tmp_path / "x.h5"
    rc, _, err = run("pythia", "--n", "10", "-o", out, "--no-cache")
    _one_error(rc, err, module, "physgen[events]")
    assert not out.exists()


def test_missing_output_folder(run: Run, tmp_path: Path) -> None:
    rc, _, err = run("pythia", "--n", "10", "-o", tmp_path / "nope" / "x.h5")
    _one_error(rc, err, "--out", "does not exist")


def test_tiny_run_json(run: Run, tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    out = tmp_path / "z.h5"
    rc, stdout, err = run(
        "pythia", "--config", "nature", "--n", "20", "--seed", "2", "-o", out, "--json", "-q"
    )
    assert rc == 0, err
    d = json.loads(stdout)
    assert d["path"] == str(out) and d["n"] == 20 and d["config"] == "nature"
    assert d["n_generated"] >= 20 and not d["from_cache"]
    assert err == ""
    rc, stdout, err = run("pythia", "--config", "nature", "--n", "20", "--seed", "2", "-o", out)
    assert rc == 0 and "from the cache" in stdout, err
