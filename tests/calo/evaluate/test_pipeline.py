"""physgen evaluate end to end: outputs, statistical behaviour, bad inputs, the HTML report."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from clitools import one_line_error
from physgen.calo.evaluate.pipeline import evaluate, expand_modes
from physgen.calo.evaluate.report import final_results
from physgen.calo.geometry import get_geometry
from physgen.calo.io import write_showers
from physgen.cli.main import main
from physgen.errors import ConfigError, DataFormatError
from showerdata import toy_showers

N = 3000


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("samples")
    out = {}
    for name, kw, seed in (
        ("ref", {}, 1),
        ("same", {}, 2),
        ("scaled", {"scale": 1.05}, 2),
        ("dropped", {"drop_layer": 1}, 2),
        ("wide", {"radial_scale": 1.3}, 2),
    ):
        e, x = toy_showers(N, "1-photons", seed=seed, **kw)
        out[name] = write_showers(d / f"{name}.h5", e, x)
    return out


@pytest.fixture(scope="module")
def same_result(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("ev") / "same"
    return evaluate(samples["same"], samples["ref"], "1-photons", "hist,avg,avg-E", out, seed=3)


def test_outputs(same_result) -> None:  # type: ignore[no-untyped-def]
    out = same_result.out_dir
    names = {p.name for p in out.iterdir()}
    for required in (
        "histogram_chi2_1-photons.txt",
        "results.json",
        "report.html",
        "Etot_Einc_dataset_1-photons.png",
        "Etot_Einc_dataset_1-photons_E_i.png",
        "E_layer_12_dataset_1-photons.png",
        "ECEta_layer_1_dataset_1-photons.png",
        "WidthPhi_layer_2_dataset_1-photons.png",
        "voxel_energy_dataset_1-photons.png",
        "Average_Layer_12_dataset_1-photons.png",
        "average_shower_dataset_1-photons.png",
        "reference_average_shower_dataset_1-photons.png",
    ):
        assert required in names, required
    assert not [n for n in out.parent.iterdir() if n.name.startswith(".same.tmp")]
    r = json.loads((out / "results.json").read_text())
    assert r["geometry"] == "1-photons" and r["n_generated"] == N
    assert set(r["separation_power_summary"]) >= {"E_tot", "E_layer", "EC_eta", "voxel", "sparsity"}


def test_official_text_format(same_result) -> None:  # type: ignore[no-untyped-def]
    text = (same_result.out_dir / "histogram_chi2_1-photons.txt").read_text()
    lines = text.split("\n")
    assert (
        lines[0]
        == "List of chi2 of the plotted histograms, see eq. 15 of 2009.03796 for its definition."
    )
    blocks = re.findall(r"^(.+): \n([0-9.e+-]+)\n\n", text[len(lines[0]) + 1 :], flags=re.M)
    titles = [b[0] for b in blocks]
    assert titles[0] == "Etot / Einc"
    assert titles[1:6] == ["E layer 0", "E layer 1", "E layer 2", "E layer 3", "E layer 12"]
    assert titles[6:8] == ["EC Eta layer 1", "EC Eta layer 2"]
    assert "Etot / Einc at E = 256.0" in titles
    assert titles[-1] == "Voxel distribution"
    assert len(blocks) == 1 + 5 + 4 * 2 + 15 + 1
    seps = json.loads((same_result.out_dir / "results.json").read_text())["separation_power"]
    assert float(blocks[0][1]) == pytest.approx(seps["Etot_Einc"])


def test_same_distribution_small_separation(same_result) -> None:  # type: ignore[no-untyped-def]
    s = same_result.results["separation_power_summary"]
    # statistical floor for 3k vs 3k showers and 20-100 bins
    assert s["E_tot"]["mean"] < 0.02
    assert s["E_layer"]["max"] < 0.03
    assert s["voxel"]["mean"] < 0.005


def test_distortions_move_metrics(samples: dict[str, Path], same_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = same_result.results["separation_power"]
    scaled = evaluate(
        samples["scaled"], samples["ref"], "1-photons", "hist", tmp_path / "s", plots=False
    )
    s = scaled.results["separation_power"]
    assert s["Etot_Einc"] > 10 * base["Etot_Einc"]
    assert s["Etot_Einc"] > 0.08  # a 5 % shift against a ~5 % resolution
    dropped = evaluate(
        samples["dropped"], samples["ref"], "1-photons", "hist", tmp_path / "d", plots=False
    )
    d = dropped.results["separation_power"]
    # layer 1 is empty: all generated entries fall below the log binning (which starts at the
    # threshold) and are dropped, as in the official code; an empty histogram gives S = 1/2
    assert d["E_layer_1"] == pytest.approx(0.5)
    assert d["E_layer_1"] > 20 * base["E_layer_1"]
    wide = evaluate(
        samples["wide"], samples["ref"], "1-photons", "hist", tmp_path / "w", plots=False
    )
    w = wide.results["separation_power_summary"]
    assert w["EC_r"]["mean"] > 5 * same_result.results["separation_power_summary"]["EC_r"]["mean"]
    assert (
        w["width_r"]["mean"]
        > 5 * same_result.results["separation_power_summary"]["width_r"]["mean"]
    )


def test_arrays_api_and_modes(tmp_path: Path) -> None:
    e, x = toy_showers(400, "2", seed=1)
    e2, x2 = toy_showers(400, "2", seed=2)
    res = evaluate((e2, x2), (e, x), "2", ["hist"], tmp_path / "o", plots=False)
    assert res.results["n_reference"] == 400
    assert "cls-resnet" in expand_modes("all", get_geometry("2"))
    assert "cls-resnet" not in expand_modes("all", get_geometry("1-photons"))
    with pytest.raises(ConfigError, match="unknown mode 'histo'"):
        expand_modes("hist,histo", get_geometry("2"))
    with pytest.raises(ConfigError, match="cls-resnet"):
        expand_modes("cls-resnet", get_geometry("1-pions"))


def test_plot_formats(samples: dict[str, Path], tmp_path: Path) -> None:
    """PNG always (the report embeds it); PDF on request, through the command line too."""
    rc = main(
        [
            "evaluate",
            str(samples["same"]),
            str(samples["ref"]),
            "--geometry",
            "1-photons",
            "--mode",
            "avg",
            "--plot-format",
            "pdf",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    pngs = sorted(p.stem for p in (tmp_path / "o").rglob("*.png"))
    pdfs = sorted(p.stem for p in (tmp_path / "o").rglob("*.pdf"))
    assert pngs and pngs == pdfs
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in (tmp_path / "o").rglob("*.pdf"))
    with pytest.raises(ConfigError, match="--plot-format: expected png, pdf or svg, got eps"):
        evaluate(
            samples["same"],
            samples["ref"],
            "1-photons",
            "avg",
            tmp_path / "p",
            plot_formats=["png", "eps"],
        )


def test_final_results_table() -> None:
    rows = final_results("2")
    names = [r["submission name"] for r in rows]
    assert "CaloDREAM" in names and names[0] == "GEANT4"
    dream = rows[names.index("CaloDREAM")]
    assert dream["binary cls low"] == pytest.approx(0.531, abs=1e-3)
    assert final_results("calogan") == []


def test_cli_bad_inputs(
    samples: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = samples["ref"]
    e, x = toy_showers(100, "1-photons", seed=5)
    short = write_showers(tmp_path / "short.h5", e, x)
    x_nan = x.copy()
    x_nan[3, 3] = np.nan
    nan = write_showers(tmp_path / "nan.h5", e, x_nan)
    x_neg = x.copy()
    x_neg[3, 3] = -1
    neg = write_showers(tmp_path / "neg.h5", e, x_neg)
    e2, x2 = toy_showers(100, "2", seed=5)
    ds2 = write_showers(tmp_path / "ds2.h5", e2, x2)
    cases = [
        ([ds2, ref, "--geometry", "1-photons"], ("ds2.h5", "6480 voxels", "expects 368")),
        ([short, ref, "--geometry", "2"], ("expects 6480",)),
        (
            [short, ref, "--geometry", "1-photons", "--mode", "cls-low"],
            ("equal size", "100", str(N)),
        ),
        ([nan, ref, "--geometry", "1-photons"], ("NaN or inf",)),
        ([neg, ref, "--geometry", "1-photons"], ("negative voxel energies",)),
        (
            [short, ref, "--geometry", "1-photons", "--mode", "hist,bogus"],
            ("unknown mode 'bogus'",),
        ),
        ([short, ref, "--geometry", "ds9"], ("unknown geometry 'ds9'",)),
        ([short, ref, "--geometry", "1-photons", "--classifier", "huge"], ("--classifier",)),
    ]
    for args, needles in cases:
        out = tmp_path / "evalout"
        rc = main(["evaluate", *map(str, args), "--out", str(out)])
        _, err = capsys.readouterr()
        one_line_error(rc, err, *needles)
        assert not out.exists(), args
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".evalout")]
    rc = main(
        [
            "evaluate",
            str(short),
            str(ref),
            "--geometry",
            "1-photons",
            "--out",
            str(tmp_path / "no" / "x"),
        ]
    )
    _, err = capsys.readouterr()
    one_line_error(rc, err, "--out", "does not exist")


def test_energy_distribution_warning(samples: dict[str, Path], tmp_path: Path) -> None:
    e, x = toy_showers(N, "1-photons", seed=7)
    e[:] = 1024.0  # all showers at one energy
    other = write_showers(tmp_path / "mono.h5", e, x)
    res = evaluate(other, samples["ref"], "1-photons", "hist", tmp_path / "w", plots=False)
    assert res.results["warnings"] and "classifier AUCs" in res.results["warnings"][0]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp()}",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_report_renders_in_headless_chromium(same_result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must render the report: .ci/run installs Debian's chromium")
        pytest.skip("no headless Chromium found (Debian packages: chromium, chromium-driver)")
    report = same_result.out_dir / "report.html"
    html = report.read_text()
    assert "this sample among the CaloChallenge 2022 submissions" in html
    assert html.count("data:image/png;base64,") >= 10
    assert '<tr class="ours">' in html or 'class="ours"' in html
    # the DOM as the browser built it: the summary table's header and the sample's label
    dom = _headless(browser, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    assert "Summary: this sample among the CaloChallenge 2022 submissions" in dom.stdout
    assert "<th>model</th><th>AUC low</th><th>AUC high</th>" in dom.stdout
    assert "generated (this sample)" in dom.stdout
    assert "Separation power per feature class" in dom.stdout
    # a screenshot of the expected size that is not blank
    shot = tmp_path / "report.png"
    proc = _headless(browser, "--window-size=1280,2000", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-500:]
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 2000)
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.std() > 0.05  # text, tables and figures, not one flat colour
    dark = (pixels.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.6, dark  # some ink on a light page


def test_data_format_error_types(tmp_path: Path) -> None:
    e, x = toy_showers(10, "1-photons", seed=1)
    with pytest.raises(DataFormatError, match="showers must be"):
        evaluate((e, x[:, :10]), (e, x), "1-photons", "hist", tmp_path / "o")
