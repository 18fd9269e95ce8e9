"""The quality-versus-speed front: Pareto logic and a tiny end-to-end `physgen bench front`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from physgen.calo.front import (
    FrontEntry,
    challenge_comparison,
    comparison_text,
    pareto_front,
    parse_sampling,
)
from physgen.calo.io import write_showers
from physgen.cli.main import main
from physgen.errors import ConfigError
from showerdata import toy_showers


def test_pareto_front():
    pts = [(1.0, 0.9), (10.0, 0.7), (5.0, 0.95), (100.0, 0.6), (50.0, 0.8), (1.0, 0.95)]
    assert pareto_front(pts) == [0, 1, 3]
    assert pareto_front([]) == []
    assert pareto_front([(2.0, 0.5)]) == [0]


def _entry(model: str, ms: float, auc: float) -> FrontEntry:
    return FrontEntry(
        model=model,
        run_dir="",
        n_parameters=1,
        train={},
        auc_low=(auc, 0.0),
        auc_high=(auc, 0.0),
        jsd_low=0.0,
        fpd=(0.0, 0.0),
        kpd=(0.0, 0.0),
        separation={},
        ms_per_shower={10_000: (ms, 0.0)},
    )


_KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(0.001, 1e6, allow_nan=False).map(lambda v: float(f"{v:.6g}")),
    st.sampled_from(["ddpm", "ddim", "euler", "rk4", "adaptive"]),
)


@given(st.dictionaries(_KEYS, st.dictionaries(_KEYS, _VALUES, min_size=1), min_size=1))
def test_parse_sampling_roundtrip(options):
    specs = [f"{m}:" + ",".join(f"{k}={v}" for k, v in o.items()) for m, o in options.items()]
    assert parse_sampling(specs) == options


def test_parse_sampling_merges_repeated_models():
    got = parse_sampling(["diffusion:steps=200", "diffusion:sampler=ddpm", "cfm:solver=rk4"])
    assert got == {"diffusion": {"steps": 200, "sampler": "ddpm"}, "cfm": {"solver": "rk4"}}


@pytest.mark.parametrize(
    "bad", ["diffusion", "diffusion:", ":steps=2", "diffusion:steps", "diffusion:steps=", "x:=3"]
)
def test_parse_sampling_rejects_malformed_specs(bad):
    with pytest.raises(ConfigError, match="sampling"):
        parse_sampling([bad])


def test_entry_label_shows_sampling_overrides():
    e = _entry("diffusion", 1.0, 0.7)
    assert e.label == "diffusion"
    e.sampling = {"steps": 200, "sampler": "ddpm"}
    assert e.label == "diffusion (sampler=ddpm, steps=200)"
    cmp = challenge_comparison([e], "1-photons")
    assert "diffusion (sampler=ddpm, steps=200)" in cmp["models"]


def test_challenge_comparison_against_published_points():
    # dataset-1 photons: fastest CPU submission BoloGAN 0.553 ms, best AUC CaloINN 0.626
    cmp = challenge_comparison(
        [_entry("ideal", 0.1, 0.55), _entry("slow", 1e6, 0.6), _entry("bad", 0.1, 0.9999)],
        "1-photons",
    )
    assert cmp["submissions"] == 15
    assert cmp["fastest_ms"] == pytest.approx(0.552852)
    assert cmp["best_auc"] == pytest.approx(0.62592)
    ideal, slow, bad = (cmp["models"][m] for m in ("ideal", "slow", "bad"))
    assert ideal["dominates_all"] and len(ideal["dominates"]) == 15 and not ideal["dominated_by"]
    assert not slow["dominates"] and not slow["dominated_by"]  # best AUC, slowest
    assert bad["dominated_by"] == [] and bad["dominates"] == []  # fastest, worst AUC
    text = comparison_text(cmp)
    assert "ideal (0.1 ms, AUC 0.550): dominates all" in text
    assert "slow (1e+06 ms, AUC 0.600): dominates 0/15; dominated by: none." in text


def test_model_without_a_batch_10000_time_is_not_placed():
    e = _entry("untimed", 1.0, 0.7)
    e.ms_per_shower = {100: (2.0, 0.0)}
    cmp = challenge_comparison([e], "1-photons")
    assert "untimed: not placed" in comparison_text(cmp)
    assert "nan" not in comparison_text(cmp)


def test_challenge_comparison_without_published_results():
    cmp = challenge_comparison([_entry("m", 1.0, 0.7)], "calogan")
    assert cmp["submissions"] == 0 and not cmp["models"]["m"]["dominates_all"]
    assert "No published" in comparison_text(cmp)


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
            "gan,cfm",
            "--preset",
            "tiny",
            "--repeats",
            "1",
            "--batch-sizes",
            "1,100",
            "--sampling",
            "cfm:steps=2,solver=euler",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| gan" in text or "| **gan**" in text
    assert "cfm (solver=euler, steps=2)" in text
    rec = json.loads((out / "front.json").read_text())
    assert [e["model"] for e in rec["entries"]] == ["gan", "cfm"]
    assert rec["entries"][1]["sampling"] == {"steps": 2, "solver": "euler"}
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gan:steps=4", "gan: steps cannot change after training; sampling options of gan: none"),
        ("diffusion:hidden=64", "diffusion: hidden cannot change after training"),
        ("flow:steps=4", "--sampling: flow not among --models gan"),
    ],
)
def test_bench_front_rejects_bad_sampling_before_training(tmp_path, capsys, spec, message):
    models = "diffusion" if spec.startswith("diffusion") else "gan"
    args = ["bench", "front", "--geometry", "1-photons", "--train", "x.h5", "--reference"]
    args += ["y.h5", "--out", str(tmp_path / "o"), "--models", models, "--sampling", spec]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()
