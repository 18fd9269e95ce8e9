"""``physgen evaluate``: the CaloChallenge evaluation of a generated sample against a reference.

:func:`evaluate` checks both samples completely *before* producing anything,
streams them in batches (features, voxel spectrum, average showers), runs the
requested modes, and writes the official-style text files, ``results.json``,
PNG figures and a self-contained ``report.html``. Outputs are staged in a
temporary folder beside the output folder and moved in only when every mode
succeeded, so a failing run leaves nothing half-written.

Modes: ``hist``, ``avg``, ``avg-E``, ``cls-low``, ``cls-low-normed``, ``cls-high``,
``cls-resnet`` (geometries 2 and 3), ``multiclass``, ``fpd``, ``kpd``, ``prdc`` and
``all`` (everything sensible for the geometry).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen._version import __version__
from physgen.calo.evaluate.binned import WeightedHistogram
from physgen.calo.evaluate.features import (
    Sample,
    ShowerFeatures,
    apply_threshold,
    features_of_batch,
    iter_sample,
)
from physgen.calo.evaluate.histograms import (
    HistogramResult,
    VoxelSpectrum,
    compare_histograms,
    compare_per_energy,
    histogram_specs,
    iter_groups,
)
from physgen.calo.evaluate.streaming import WORKERS, in_threads
from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.io import check_values, open_showers
from physgen.checks import check_device, check_seed
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import check_output, raise_if_interrupted, staging_dir

__all__ = ["MODES", "EvaluationResult", "SampleSummary", "evaluate", "expand_modes"]

log = logging.getLogger(__name__)


MODES = (
    "hist",
    "avg",
    "avg-E",
    "cls-low",
    "cls-low-normed",
    "cls-high",
    "cls-resnet",
    "multiclass",
    "fpd",
    "kpd",
    "prdc",
    "all",
)
CLASSIFIER_MODES = ("cls-low", "cls-low-normed", "cls-high", "cls-resnet")


def expand_modes(modes: Sequence[str] | str, geometry: Geometry) -> list[str]:
    """Validate and expand a mode list (``"all"`` = every mode sensible for the geometry).

    Raises:
        ConfigError: On an unknown mode or ``cls-resnet`` for an irregular geometry.
    """
    items = [
        m.strip() for m in (modes.split(",") if isinstance(modes, str) else modes) if m.strip()
    ]
    if not items:
        raise ConfigError("--mode: give at least one mode")
    out: list[str] = []
    for m in items:
        if m not in MODES:
            raise ConfigError(f"--mode: unknown mode {m!r}; choose from {', '.join(MODES)}")
        if m == "all":
            extra = ["hist", "avg", "avg-E", "cls-low", "cls-high", "fpd", "kpd", "prdc"]
            if geometry.name in ("2", "3"):
                extra.append("cls-resnet")
            out += [e for e in extra if e not in out]
        elif m not in out:
            out.append(m)
    if "cls-resnet" in out and not geometry.is_regular:
        raise ConfigError(
            f"--mode cls-resnet: needs a regular (layer x alpha x r) geometry such as 2 or 3, "
            f"not {geometry.name!r}"
        )
    return out


@dataclass
class SampleSummary:
    """What the streaming pass keeps of one sample."""

    features: ShowerFeatures
    spectrum: VoxelSpectrum | None
    mean_shower: npt.NDArray[np.float64]
    range_sums: dict[tuple[float, float], npt.NDArray[np.float64]]
    range_counts: dict[tuple[float, float], int]
    n: int


@dataclass
class EvaluationResult:
    """Everything an evaluation produced (also written to ``results.json``)."""

    out_dir: Path
    results: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def report(self) -> Path:
        """The HTML report."""
        return self.out_dir / "report.html"


def energy_ranges(geometry: Geometry) -> list[tuple[float, float]]:
    """Incident-energy ranges (MeV) of the ``avg-E`` mode, as in the official evaluator."""
    if geometry.name.startswith("1-"):
        edges = 2.0 ** np.linspace(8, 23, 16)
    else:
        edges = 10.0 ** np.linspace(3, 6, 4)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def _check_sample(sample: Sample, geometry: Geometry, name: str) -> int:
    """Layout check of a file (its values are checked batch by batch in the feature
    pass), full check of in-memory arrays; returns the sample's size."""
    if isinstance(sample, (str, Path)):
        with open_showers(sample, geometry) as f:
            return f.n_showers
    e = np.asarray(sample[0], dtype=np.float64).reshape(-1)
    x = np.asarray(sample[1])
    if x.ndim != 2 or x.shape[1] != geometry.n_voxels:
        raise DataFormatError(
            f"{name}: showers must be (N, {geometry.n_voxels}) for geometry {geometry.name!r}, got {x.shape}"
        )
    if len(e) != len(x):
        raise DataFormatError(f"{name}: {len(e)} incident energies but {len(x)} showers")
    if len(x) == 0:
        raise DataFormatError(f"{name}: empty sample (0 showers)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(e))):
        raise DataFormatError(f"{name}: holds NaN or inf")
    if np.any(x < 0):
        raise DataFormatError(f"{name}: holds negative voxel energies")
    if np.any(e <= 0):
        raise DataFormatError(f"{name}: incident energies must be > 0 MeV")
    return len(x)


def _summarise(
    sample: Sample,
    geometry: Geometry,
    ranges: list[tuple[float, float]],
    max_ref_voxel: float | None,
    batch_size: int | None,
    ref_dtype: str | None = None,
) -> SampleSummary:
    sums = {r: np.zeros(geometry.n_voxels) for r in ranges}
    counts = dict.fromkeys(ranges, 0)
    spectrum = None
    if max_ref_voxel is not None:
        dtype = ref_dtype or "float64"
        spectrum = VoxelSpectrum(geometry, max_ref_voxel, dtype)
    path = Path(sample) if isinstance(sample, (str, Path)) else None

    def work(
        offset: int, e: npt.NDArray[Any], x: npt.NDArray[Any]
    ) -> tuple[ShowerFeatures, WeightedHistogram | None, list[tuple[Any, Any, int]]]:
        if path is not None:  # validate_file's checks of the energies; the voxels are
            # checked by the feature pass itself
            check_values(path, e, x[:, :0], offset, clip_negative=False)
        f = features_of_batch(e, x, geometry, source=path, offset=offset)
        spec = spectrum.batch(x) if spectrum is not None else None
        range_parts = []
        if ranges:
            xt = apply_threshold(x, geometry)
            for lo, hi in ranges:
                sel = (f.incident_energy >= lo) & (f.incident_energy < hi)
                if sel.any():
                    range_parts.append(((lo, hi), xt[sel].sum(axis=0), int(sel.sum())))
        return f, spec, range_parts

    parts = []
    for f, spec, range_parts in in_threads(sample, geometry, batch_size, work, WORKERS):
        parts.append(f)
        if spectrum is not None and spec is not None:
            spectrum.add(spec)
        for key, s_, c_ in range_parts:
            sums[key] += s_
            counts[key] += c_
    feats = ShowerFeatures.concatenate(parts)
    return SampleSummary(feats, spectrum, feats.voxel_sum / feats.n, sums, counts, feats.n)


def _spectrum_pass(
    sample: Sample, geometry: Geometry, spectrum: VoxelSpectrum, batch_size: int | None
) -> None:
    def work(offset: int, e: npt.NDArray[Any], x: npt.NDArray[Any]) -> WeightedHistogram:
        return spectrum.batch(x)

    for part in in_threads(sample, geometry, batch_size, work, WORKERS):
        spectrum.add(part)


def _ks_pvalue(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """Two-sample Kolmogorov-Smirnov p-value: scipy's ``ks_2samp`` for samples under
    10,000, else the asymptotic distribution with Stephens' small-sample correction
    (within 1e-3 of scipy's at 100k showers, without importing scipy.stats: 0.8 s)."""
    if min(a.size, b.size) < 10_000:
        from scipy.stats import ks_2samp

        return float(ks_2samp(a, b).pvalue)
    from scipy.special import kolmogorov

    sa, sb = np.sort(a), np.sort(b)
    grid = np.concatenate([sa, sb])
    cdf_a = np.searchsorted(sa, grid, side="right") / sa.size
    cdf_b = np.searchsorted(sb, grid, side="right") / sb.size
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(sa.size * sb.size / (sa.size + sb.size))
    return float(kolmogorov((en + 0.12 + 0.11 / en) * d))


def _compare_energy_distributions(ref: ShowerFeatures, gen: ShowerFeatures) -> str | None:
    """A warning text if the incident-energy distributions differ, else None."""
    a, b = ref.incident_energy, gen.incident_energy
    ua, ub = np.unique(a), np.unique(b)
    # discrete spectra (dataset 1): few distinct values, each shared by many showers
    discrete = (len(ua) <= 64 and len(ua) < len(a) / 4) or (len(ub) <= 64 and len(ub) < len(b) / 4)
    if discrete and not np.array_equal(ua, ub):
        return (
            "incident energies differ: discrete values "
            f"{len(ua)} in the reference vs {len(ub)} in the sample"
        )
    p = _ks_pvalue(a, b)
    if p < 1e-3:
        return f"incident-energy distributions differ (Kolmogorov-Smirnov p = {p:.1e})"
    return None


def _official_hist_text(
    results: list[HistogramResult], per_energy: list[HistogramResult], voxel: HistogramResult | None
) -> str:
    """``histogram_chi2_<ds>.txt`` in the official layout and block order."""
    lines = [
        "List of chi2 of the plotted histograms, see eq. 15 of 2009.03796 for its definition.\n"
    ]
    order = ("E_tot", "E_layer", "EC_eta", "EC_phi", "width_eta", "width_phi")
    by_group: dict[str, list[HistogramResult]] = {}
    for r in results:
        by_group.setdefault(r.spec.group, []).append(r)
    blocks = [r for g in order for r in by_group.get(g, [])]
    blocks += per_energy
    if voxel is not None:
        blocks.append(voxel)
    for r in blocks:
        lines.append(f"{r.spec.title}: \n{r.separation_power}\n\n")
    return "".join(lines)


def evaluate(
    generated: Sample,
    reference: Sample,
    geometry: str | Geometry,
    modes: Sequence[str] | str,
    out_dir: str | Path,
    *,
    classifier: str = "fast",
    repeats: int = 1,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    extra_generated: dict[str, Sample] | None = None,
    batch_size: int | None = None,
    label: str = "generated",
    plots: bool = True,
    plot_formats: Sequence[str] = ("png",),
    argv: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Run the CaloChallenge evaluation.

    Args:
        generated: The sample to judge: a file path or ``(incident_energies, showers)``.
        reference: The reference (e.g. Geant4 or physgen's cascade simulator).
        geometry: Geometry name or object; both samples must match it.
        modes: Mode names (list or comma-separated string).
        out_dir: Output folder (created; existing files of the same names are replaced).
        classifier: ``"fast"`` (default) or ``"official"`` classifier preset.
        repeats: Classifier trainings with different seeds (mean +- std reported).
        seed: Seed of splits and trainings.
        device: ``"cpu"`` or ``"cuda"`` for classifiers.
        threads: torch threads for the classifiers (None: leave torch's setting). On a
            machine shared with other jobs, fewer threads than cores avoid slow,
            oversubscribed OpenMP.
        extra_generated: Further samples for the ``multiclass`` mode, by name.
        batch_size: Showers per streamed batch.
        label: Name of the generated sample in plots and the report.
        plots: Write figures (the report embeds the PNG files).
        plot_formats: File formats of every figure: ``png`` (150 dpi; the report embeds
            them, so it is always written), and optionally ``pdf`` and ``svg`` (vector, for
            talks and papers; each doubles the plotting time of the 363 figures of dataset 2).
        argv: Command line recorded in the official text files.
        progress: Callback receiving short status strings.

    Returns:
        The results; see ``results.json`` for the layout.

    Raises:
        ConfigError: Bad modes/options, unequal sizes where the classifier split needs
            equal sizes.
        DataFormatError: A sample does not match the geometry or holds bad values.
    """
    say = progress or (lambda _msg: None)
    geo = get_geometry(geometry)
    mode_list = expand_modes(modes, geo)
    if classifier not in ("fast", "official"):
        raise ConfigError(f"--classifier: expected 'fast' or 'official', got {classifier!r}")
    if repeats < 1:
        raise ConfigError(f"--repeats: must be >= 1, got {repeats}")
    formats = tuple(dict.fromkeys(["png", *(f.strip().lower() for f in plot_formats)]))
    if bad := [f for f in formats if f not in ("png", "pdf", "svg")]:
        raise ConfigError(f"--plot-format: expected png, pdf or svg, got {', '.join(bad)}")
    if plots:  # fail now, not after the features and classifiers
        require("matplotlib.pyplot", "plot", "plots", hint="or use --no-plots")
    check_seed(seed)
    check_device(device)
    sample_files = [s for s in (generated, reference, *(extra_generated or {}).values())]
    out = check_output(
        out_dir,
        "--out",
        kind="dir",
        inputs=[s for s in sample_files if isinstance(s, (str, Path))],
    )

    say("checking samples")
    n_gen = _check_sample(generated, geo, "generated sample")
    n_ref = _check_sample(reference, geo, "reference sample")
    extras = dict(extra_generated or {})
    for name, s in extras.items():
        _check_sample(s, geo, f"sample {name!r}")
    if "multiclass" in mode_list and not extras:
        log.warning("multiclass with a single generated sample reduces to a binary classifier")
    cls_modes = [m for m in mode_list if m in CLASSIFIER_MODES]
    if cls_modes and n_gen != n_ref:
        raise ConfigError(
            f"--mode {cls_modes[0]}: the classifier split needs samples of equal size, got "
            f"{n_gen} generated vs {n_ref} reference showers (generate exactly {n_ref})"
        )

    t0 = time.perf_counter()
    ranges = energy_ranges(geo) if "avg-E" in mode_list else []
    say("features of the reference")
    ref = _summarise(reference, geo, ranges, None, batch_size)
    max_voxel = max(ref.features.max_voxel, 1e-12) if "hist" in mode_list else None
    if max_voxel is not None:
        ref.spectrum = VoxelSpectrum(geo, max_voxel, ref.features.energy_dtype)
        _spectrum_pass(reference, geo, ref.spectrum, batch_size)
    say("features of the generated sample")
    gen = _summarise(generated, geo, ranges, max_voxel, batch_size, ref.features.energy_dtype)
    t_features = time.perf_counter() - t0

    warning = _compare_energy_distributions(ref.features, gen.features)
    results: dict[str, Any] = {
        "physgen_version": __version__,
        "geometry": geo.name,
        "modes": mode_list,
        "label": label,
        "n_generated": n_gen,
        "n_reference": n_ref,
        "generated": str(generated) if isinstance(generated, (str, Path)) else "<array>",
        "reference": str(reference) if isinstance(reference, (str, Path)) else "<array>",
        "classifier_preset": classifier,
        "seed": seed,
        "warnings": [],
        "timing_s": {"features": round(t_features, 3)},
    }
    if warning:
        invalid = "classifier AUCs (the classifier can separate on E_inc alone) and E_tot/E_inc"
        msg = f"{warning}: {invalid} comparisons are not valid"
        log.warning(msg)
        results["warnings"].append(msg)

    created = not out.exists()
    with staging_dir(out) as stage:
        files = _run_modes(
            mode_list,
            geo,
            ref,
            gen,
            reference,
            generated,
            extras,
            stage,
            results,
            classifier=classifier,
            repeats=repeats,
            seed=seed,
            device=device,
            threads=threads,
            label=label,
            plots=plots,
            plot_formats=formats,
            argv=argv,
            say=say,
            batch_size=batch_size,
        )
        from physgen.calo.evaluate.report import write_report

        (stage / "results.json").write_text(json.dumps(results, indent=2, default=_json_default))
        write_report(results, stage, files)
        raise_if_interrupted()
        out.mkdir(exist_ok=True)
        moved = []
        try:
            for p in sorted(stage.iterdir()):
                dest = out / p.name
                if dest.is_dir():
                    shutil.rmtree(dest)
                os.replace(p, dest)  # same folder as the stage: a rename, never a copy
                moved.append(dest)
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
    return EvaluationResult(out, results, moved)


def _subsample_showers(
    sample: Sample, geometry: Geometry, n_max: int, seed: int, batch_size: int | None
) -> npt.NDArray[np.float64]:
    """Up to ``n_max`` showers drawn without replacement (streaming; file order kept)."""
    n = _check_size(sample, geometry)
    rng = np.random.default_rng(seed)
    keep = np.zeros(n, dtype=bool)
    keep[rng.choice(n, size=min(n, n_max), replace=False)] = True
    parts = []
    start = 0
    for _, x in iter_sample(sample, geometry, batch_size):
        sel = keep[start : start + len(x)]
        if sel.any():
            parts.append(np.asarray(x, dtype=np.float64)[sel])
        start += len(x)
    return np.concatenate(parts)


def _check_size(sample: Sample, geometry: Geometry) -> int:
    if isinstance(sample, (str, Path)):
        from physgen.calo.io import open_showers

        with open_showers(sample, geometry) as f:
            return f.n_showers
    return len(np.asarray(sample[1]))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _argline(argv: Sequence[str] | None) -> str:
    return " ".join(argv) if argv else "physgen evaluate (library call)"


def _run_modes(
    mode_list: list[str],
    geo: Geometry,
    ref: SampleSummary,
    gen: SampleSummary,
    reference: Sample,
    generated: Sample,
    extras: dict[str, Sample],
    stage: Path,
    results: dict[str, Any],
    *,
    classifier: str,
    repeats: int,
    seed: int,
    device: str,
    threads: int | None,
    label: str,
    plots: bool,
    argv: Sequence[str] | None,
    say: Callable[[str], None],
    batch_size: int | None = None,
    plot_formats: tuple[str, ...] = ("png",),
) -> list[Path]:
    from physgen.calo.evaluate import average_plots as A
    from physgen.calo.evaluate import plots as P

    ds = geo.name
    files: list[Path] = []
    e_ref = ref.features.incident_energy
    info = P.PlotInfo(
        dataset=ds,
        particle=geo.particle,
        energy_range_mev=(float(e_ref.min()), float(e_ref.max())) if e_ref.size else None,
        n_reference=ref.n,
        n_generated=gen.n,
    )
    fmt = plot_formats
    if "hist" in mode_list:
        say("histograms")
        t0 = time.perf_counter()
        specs = histogram_specs(ref.features)
        hist = compare_histograms(ref.features, gen.features, specs)
        per_e = compare_per_energy(ref.features, gen.features) if ds.startswith("1-") else []
        vox = (
            VoxelSpectrum.compare(ref.spectrum, gen.spectrum)
            if ref.spectrum is not None and gen.spectrum is not None
            else None
        )
        results["timing_s"]["histograms"] = round(time.perf_counter() - t0, 3)
        all_hist = [*hist, *per_e, *([vox] if vox else [])]
        results["separation_power"] = {r.spec.key: r.separation_power for r in all_hist}
        results["separation_power_summary"] = {
            g: {"mean": float(np.mean(v)), "max": float(np.max(v)), "n": len(v)}
            for g, v in iter_groups(all_hist)
        }
        (stage / f"histogram_chi2_{ds}.txt").write_text(_official_hist_text(hist, per_e, vox))
        files.append(stage / f"histogram_chi2_{ds}.txt")
        if plots:
            say(f"plotting {len(all_hist)} histograms")
            t0 = time.perf_counter()
            with P.HistogramPlotter(gen_label=label, info=info, formats=fmt) as plotter:
                for r in [*hist, *([vox] if vox else [])]:
                    files.append(plotter.plot(r, stage / f"{r.spec.filename}_dataset_{ds}.png"))
            if per_e:
                files.append(
                    P.plot_etot_per_energy(
                        per_e,
                        stage / f"Etot_Einc_dataset_{ds}_E_i.png",
                        gen_label=label,
                        info=info,
                        formats=fmt,
                    )
                )
            results["timing_s"]["histogram_plots"] = round(time.perf_counter() - t0, 3)
    if "avg" in mode_list:
        say("average showers")
        results["average_shower"] = {
            "mean_etot_reference_mev": float(ref.mean_shower.sum()),
            "mean_etot_generated_mev": float(gen.mean_shower.sum()),
        }
        np.savez_compressed(
            stage / f"average_showers_dataset_{ds}.npz",
            reference=ref.mean_shower,
            generated=gen.mean_shower,
        )
        if plots:
            files += A.plot_average_layers(
                geo,
                ref.mean_shower,
                gen.mean_shower,
                stage,
                ds,
                gen_label=label,
                info=info,
                formats=fmt,
            )
            scale = A.energy_scale(ref.mean_shower, gen.mean_shower)
            for mean, name, title in (
                (gen.mean_shower, f"average_shower_dataset_{ds}.png", label),
                (ref.mean_shower, f"reference_average_shower_dataset_{ds}.png", "reference"),
            ):
                files.append(
                    A.plot_average_shower(
                        geo,
                        mean,
                        stage / name,
                        f"{title}: shower average",
                        scale=scale,
                        info=info,
                        formats=fmt,
                    )
                )
    if "avg-E" in mode_list:
        say("average showers per energy")
        per: dict[str, Any] = {}
        for (lo, hi), s in ref.range_sums.items():
            nr, ng = ref.range_counts[(lo, hi)], gen.range_counts[(lo, hi)]
            per[f"{lo:g}-{hi:g}"] = {"n_reference": nr, "n_generated": ng}
            if plots and nr and ng:
                name = f"average_shower_dataset_{ds}_E_{lo}.png"
                g_mean, r_mean = gen.range_sums[(lo, hi)] / ng, s / nr
                scale = A.energy_scale(r_mean, g_mean)
                e_text = f"E in [{P.energy_text(lo)}, {P.energy_text(hi)})"
                info_e = replace(info, energy_range_mev=None, n_reference=nr, n_generated=ng)
                for mean, path, title in (
                    (g_mean, stage / name, f"{label} ({ng} showers): {e_text}"),
                    (r_mean, stage / f"reference_{name}", f"reference ({nr} showers): {e_text}"),
                ):
                    files.append(
                        A.plot_average_shower(
                            geo, mean, path, title, scale=scale, info=info_e, formats=fmt
                        )
                    )
        results["average_shower_per_energy"] = per
    cls_modes = [m for m in mode_list if m in CLASSIFIER_MODES]
    if cls_modes:
        from physgen.calo.evaluate.classifier import run_classifier

        results["classifier"] = {}
        for mode in cls_modes:
            say(f"classifier {mode} ({classifier} preset, {repeats} repeat(s))")
            cres = run_classifier(
                reference,
                generated,
                geo,
                mode=mode,
                config=classifier,
                seed=seed,
                repeats=repeats,
                device=device,
                cache_dir=stage,
                threads=threads,
            )
            cd = cres.to_dict()
            results["classifier"][mode] = cd
            path = stage / f"classifier_{mode}_{ds}.txt"
            path.write_text(
                f"{_argline(argv)}\n"
                "Final result of classifier test (AUC / JSD):\n"
                f"{cd['auc']:.4f} / {cd['jsd']:.4f}\n\n"
            )
            files.append(path)
    if "multiclass" in mode_list:
        from physgen.calo.evaluate.multiclass import run_multiclass

        say("multiclass classifier")
        samples = {label: generated, **extras}
        results["multiclass"] = run_multiclass(
            reference,
            samples,
            geo,
            config=classifier,
            seed=seed,
            device=device,
            cache_dir=stage,
            threads=threads,
        ).to_dict()
    if "fpd" in mode_list or "kpd" in mode_list:
        from physgen.calo.evaluate.distances import fpd, kpd
        from physgen.calo.evaluate.features import high_level_feature_vector

        say("FPD / KPD")
        fr = high_level_feature_vector(ref.features)
        fg = high_level_feature_vector(gen.features)
        d: dict[str, Any] = {}
        lines = []
        if "fpd" in mode_list:
            fres = fpd(fr, fg, seed=seed)
            d["fpd"], d["fpd_err"] = fres.value, fres.error
            lines.append(f"FPD (x10^3): {fres.value * 1e3:.4f} ± {fres.error * 1e3:.4f}\n")
        if "kpd" in mode_list:
            kres = kpd(fr, fg, seed=seed)
            d["kpd"], d["kpd_err"] = kres.value, kres.error
            lines.append(f"KPD (x10^3): {kres.value * 1e3:.4f} ± {kres.error * 1e3:.4f}\n")
        results["fpd_kpd"] = d
        (stage / f"fpd_kpd_{ds}.txt").write_text("".join(lines))
        files.append(stage / f"fpd_kpd_{ds}.txt")
    if "prdc" in mode_list:
        from physgen.calo.evaluate.distances import prdc_voxels

        say("PRDC")
        n_max = 10_000
        pres = prdc_voxels(
            _subsample_showers(reference, geo, n_max, seed, batch_size),
            _subsample_showers(generated, geo, n_max, seed + 1, batch_size),
            geo,
            max_samples=None,
            seed=seed,
        )
        p = pres.to_dict()
        results["prdc"] = p
        (stage / f"prdc_{ds}.txt").write_text(
            "".join(
                f"{k.capitalize()}: {p[k]:.4f}\n"
                for k in ("precision", "recall", "density", "coverage")
            )
        )
        files.append(stage / f"prdc_{ds}.txt")
    return files
