"""Evaluation figures: files, resolution, error propagation, colour-scale arrows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mplhep")

from physgen.calo.evaluate.average_plots import _extend, energy_scale, plot_average_layers
from physgen.calo.evaluate.binned import WeightedHistogram
from physgen.calo.evaluate.histograms import HistogramResult, HistogramSpec
from physgen.calo.evaluate.plots import (
    HistogramPlotter,
    PlotInfo,
    energy_text,
    plot_histogram,
    ratio_with_errors,
)
from physgen.calo.geometry import get_geometry

REPO = Path(__file__).resolve().parents[3]


def _result(log_x: bool, seed: int) -> HistogramResult:
    rng = np.random.default_rng(seed)
    edges = np.logspace(0, 3, 31) if log_x else np.linspace(-30, 30, 101)
    lo, hi = edges[0], edges[-1]
    ref = WeightedHistogram(edges).fill(rng.uniform(lo, hi, 500))
    gen = WeightedHistogram(edges).fill(rng.uniform(lo, hi * 1.2, 400), rng.random(400))
    spec = HistogramSpec(
        "k", "E layer 3", "E_layer_3", "e_layer", 3, tuple(edges), "$E$ [MeV]", log_x
    )
    return HistogramResult.of(spec, ref, gen)


def test_figures_in_png_and_pdf(tmp_path: Path) -> None:
    info = PlotInfo("2", "electron", (1e3, 1e6), 500, 400)
    with HistogramPlotter(gen_label="model", info=info) as p:
        for i, log_x in enumerate((True, False, True)):  # artists reused across scales
            out = p.plot(_result(log_x, i), tmp_path / f"h{i}.png")
            assert out == tmp_path / f"h{i}.png"
            assert (tmp_path / f"h{i}.pdf").read_bytes()[:5] == b"%PDF-"
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "h0.png").shape[:2] == (1050, 1050)  # 7 in, 150 dpi
    only_png = plot_histogram(_result(False, 5), tmp_path / "one.png", formats=("png",))
    assert only_png.exists() and not (tmp_path / "one.pdf").exists()
    with pytest.raises(ValueError, match="formats"):
        plot_histogram(_result(False, 5), tmp_path / "none.png", formats=())


def test_errors_are_normalised_like_the_contents() -> None:
    edges = np.array([0.0, 1.0, 3.0])
    h = WeightedHistogram(edges).fill([0.5, 0.5, 2.0], [1.0, 2.0, 3.0])
    total = 6.0
    np.testing.assert_allclose(h.density(), [3 / total / 1, 3 / total / 2])
    np.testing.assert_allclose(h.density_error(), [np.sqrt(5) / total / 1, 3 / total / 2])


def test_ratio_errors_propagate_both_samples() -> None:
    gen, gen_err = np.array([2.0, 1.0, 0.0, 3.0]), np.array([0.2, 0.1, 0.0, 0.3])
    ref, ref_err = np.array([1.0, 0.0, 0.0, 2.0]), np.array([0.1, 0.0, 0.0, 0.4])
    ratio, err = ratio_with_errors(gen, gen_err, ref, ref_err)
    assert ratio[0] == 2.0 and err[0] == pytest.approx(2.0 * np.hypot(0.1, 0.1))
    assert ratio[1] == np.inf and np.isnan(ratio[2])  # off the scale (arrow) / nothing
    assert err[3] == pytest.approx(1.5 * np.hypot(0.1, 0.2))


def test_colour_scale_is_shared_and_flags_values_outside(tmp_path: Path) -> None:
    assert energy_scale(np.array([1.0, 5.0]), np.array([20.0])) == (20.0 * 1e-5, 20.0)
    assert _extend(np.array([1.0, np.nan, 2.0]), 0.5, 2.0) == "neither"
    assert _extend(np.array([0.0, 1.0]), 0.5, 2.0) == "min"
    assert _extend(np.array([0.0, 3.0]), 0.5, 2.0) == "both"
    geo = get_geometry("1-photons")
    mean = np.random.default_rng(1).exponential(1.0, geo.n_voxels)
    paths = plot_average_layers(geo, mean, mean * 1.1, tmp_path, "1-photons", formats=("png",))
    assert [p.name for p in paths] == [
        f"Average_Layer_{layer.id}_dataset_1-photons.png" for layer in geo.relevant_layers
    ]
    assert energy_text(4.19e6) == "4.19 TeV" and energy_text(256.0) == "256 MeV"


def test_no_backend_is_chosen_inside_the_library() -> None:
    """``matplotlib.use`` belongs to applications (the CLI), never to library functions."""
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "src" / "physgen").rglob("*.py")
        if "matplotlib.use(" in p.read_text() and "cli" not in p.parts
    ]
    assert offenders == []
