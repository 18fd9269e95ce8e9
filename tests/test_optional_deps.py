"""Without the optional extras: the base install works, and a feature that needs an extra
stops with one line naming it (exit status 2, no traceback, nothing written).

The command line runs in a subprocess whose ``sitecustomize`` blocks the packages of the
``plot`` and ``io`` extras (and the test-only pylhe), as in a fresh ``pip install physgen``
without extras; no network, no second venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from physgen._optional import require
from physgen.calo.io import write_showers
from physgen.errors import MissingDependencyError, PhysgenError
from showerdata import toy_showers

BLOCKED = ("matplotlib", "mplhep", "uproot", "pyarrow", "pylhe", "onnx", "onnxruntime",
           "distributed", "dask_jobqueue")  # fmt: skip

SITECUSTOMIZE = f'''
import importlib.abc
import sys

_BLOCKED = {set(BLOCKED)!r}


class _Blocker(importlib.abc.MetaPathFinder):
    """Acts as if the optional extras were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A work folder and the environment of a Python without the extras."""
    site = tmp_path_factory.mktemp("no-extras-site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("MPLBACKEND", None)
    return tmp_path_factory.mktemp("no-extras-work"), env


def _physgen(bare: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    cwd, env = bare
    return subprocess.run(
        [sys.executable, "-m", "physgen", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_the_blocker_blocks(bare: tuple[Path, dict[str, str]]) -> None:
    cwd, env = bare
    code = "import importlib, sys\n" + "".join(
        f"try:\n    importlib.import_module({m!r})\n    sys.exit('imported {m}')\n"
        "except ModuleNotFoundError:\n    pass\n"
        for m in BLOCKED
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_base_install_commands(bare: tuple[Path, dict[str, str]]) -> None:
    cwd, _ = bare
    assert "evaluate" in _ok(_physgen(bare, "--help"))

    out = _ok(
        _physgen(
            bare,
            *("simulate", "--geometry", "1-photons", "--particle", "photon", "--n", "10"),
            *("--energy", "1GeV", "--engine", "gflash", "--seed", "1", "--out", "sim.h5"),
        )
    )
    assert "wrote sim.h5: 10 photon showers" in out
    assert "showers      10" in _ok(_physgen(bare, "info", "sim.h5"))
    assert _ok(_physgen(bare, "validate", "sim.h5", "--geometry", "1-photons")).startswith("ok:")

    write_showers(cwd / "gen.h5", *toy_showers(40, "1-photons", seed=0))
    write_showers(cwd / "ref.h5", *toy_showers(40, "1-photons", seed=1))
    args = ("evaluate", "gen.h5", "ref.h5", "--geometry", "1-photons", "--mode", "hist")
    out = _ok(_physgen(bare, *args, "--no-plots", "--out", "ev"))
    assert "separation power" in out
    assert (cwd / "ev" / "results.json").is_file()
    assert not list((cwd / "ev").glob("*.png"))

    proc = _physgen(bare, *args, "--out", "ev-plots")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: plots need matplotlib: pip install 'physgen[plot]', or use --no-plots"
    ]
    assert proc.stdout == ""
    assert not (cwd / "ev-plots").exists()

    run = Path(__file__).parent / "fixtures" / "legacy_runs" / "gan-0"
    proc = _physgen(bare, "export", str(run), "--out", "m.onnx")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: ONNX exports need onnx: pip install 'physgen[export]'"
    ]
    assert not (cwd / "m.onnx").exists()

    sim = ("simulate", "--geometry", "2", "--particle", "e-", "--n", "5", "--energy", "10GeV",
           "--engine", "gflash", "--out", "s.h5")  # fmt: skip
    proc = _physgen(bare, *sim, "--cluster", "local:2")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: Dask clusters (--cluster local:2) need distributed: pip install 'physgen[dist]'"
    ]
    (cwd / "q.yaml").write_text("cores: 2\nmemory: 2GB\n")
    proc = _physgen(bare, *sim, "--cluster", "slurm", "--cluster-config", "q.yaml")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: batch-system clusters (--cluster slurm) need dask_jobqueue: "
        "pip install 'physgen[dist]'"
    ]
    assert not (cwd / "s.h5").exists()


@pytest.mark.parametrize(("name", "module"), [("x.parquet", "pyarrow"), ("x.root", "uproot")])
def test_columns_without_io_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module: str
) -> None:
    from physgen.columns import read_columns, write_columns

    for m in [m for m in sys.modules if m.partition(".")[0] == module]:
        monkeypatch.delitem(sys.modules, m)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    path = tmp_path / name
    path.write_bytes(b"not read: the missing package is reported first")
    expected = f"need {module}: pip install 'physgen[io]'"
    with pytest.raises(MissingDependencyError, match=expected.replace("[", r"\[")) as info:
        read_columns(path, "x")
    assert str(path) in str(info.value)
    with pytest.raises(MissingDependencyError, match=r"physgen\[io\]"):
        write_columns(tmp_path / f"out-{name}", {"x": [1.0, 2.0]})
    assert not (tmp_path / f"out-{name}").exists()


def test_require_message_and_types() -> None:
    assert require("json", "plot", "plots") is sys.modules["json"]
    with pytest.raises(MissingDependencyError) as info:
        require("physgen_no_such_pkg.sub", "plot", "plots", hint="or use --no-plots")
    assert str(info.value) == (
        "plots need physgen_no_such_pkg: pip install 'physgen[plot]', or use --no-plots"
    )
    # one class for the command line (PhysgenError: exit 2) and for `except ImportError`
    assert isinstance(info.value, PhysgenError) and isinstance(info.value, ImportError)
