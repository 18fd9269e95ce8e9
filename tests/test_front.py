"""The quality-versus-speed front: Pareto logic and a tiny end-to-end `physgen bench front`."""

from __future__ import annotations

import json

import pytest

from physgen.cli.main import main
from physgen.front import pareto_front
from physgen.io import write_showers
from showerdata import toy_showers


def test_pareto_front():
    pts = [(1.0, 0.9), (10.0, 0.7), (5.0, 0.95), (100.0, 0.6), (50.0, 0.8), (1.0, 0.95)]
    assert pareto_front(pts) == [0, 1, 3]
    assert pareto_front([]) == []
    assert pareto_front([(2.0, 0.5)]) == [0]


@pytest.mark.slow
def test_bench_front_end_to_end(tmp_path, capsys):
    for name, seed in (("train", 1), ("ref", 2)):
        e, x = toy_showers(300, "1-photons", seed=seed)
        write_showers(tmp_path / f"{name}.h5", e, x, attrs={"geometry": "1-photons"})
    out = tmp_path / "front"
    code = main(
        [
            "bench",
            "front",
            "--geometry",
            "1-photons",
            "--train",
            str(tmp_path / "train.h5"),
            "--reference",
            str(tmp_path / "ref.h5"),
            "--out",
            str(out),
            "--models",
            "gan,flow",
            "--preset",
            "tiny",
            "--repeats",
            "1",
            "--batch-sizes",
            "1,100",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| gan" in text or "| **gan**" in text
    rec = json.loads((out / "front.json").read_text())
    assert [e["model"] for e in rec["entries"]] == ["gan", "flow"]
    for e in rec["entries"]:
        assert 0.0 <= e["auc_low"][0] <= 1.0 and e["n_parameters"] > 0
        assert set(e["ms_per_shower"]) == {"1", "100"}
    assert (out / "front.png").stat().st_size > 10_000
    # a second call reuses the finished runs (no retraining)
    mtime = (out / "runs" / "gan-1-photons" / "weights.pt").stat().st_mtime
    assert (
        main(
            [
                "bench",
                "front",
                "--geometry",
                "1-photons",
                "--train",
                str(tmp_path / "train.h5"),
                "--reference",
                str(tmp_path / "ref.h5"),
                "--out",
                str(out),
                "--models",
                "gan",
                "--repeats",
                "1",
                "--batch-sizes",
                "1",
            ]
        )
        == 0
    )
    assert (out / "runs" / "gan-1-photons" / "weights.pt").stat().st_mtime == mtime


def test_bench_front_bad_model(tmp_path, capsys):
    assert (
        main(
            [
                "bench",
                "front",
                "--geometry",
                "1-photons",
                "--train",
                "x.h5",
                "--reference",
                "y.h5",
                "--out",
                str(tmp_path / "o"),
                "--models",
                "nosuch",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'nosuch'" in err[0]


@pytest.mark.parametrize("bad", ["0", "a,b", ""])
def test_bench_front_bad_batch_sizes(tmp_path, capsys, bad):
    assert (
        main(
            [
                "bench",
                "front",
                "--geometry",
                "1-photons",
                "--train",
                "x.h5",
                "--reference",
                "y.h5",
                "--out",
                str(tmp_path / "o"),
                "--batch-sizes",
                bad,
            ]
        )
        == 2
    )
    assert "--batch-sizes" in capsys.readouterr().err
