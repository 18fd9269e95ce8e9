"""The modes of ``physgen evaluate``: their names, and what each computes and writes.

:data:`MODES` lists them and :func:`expand_modes` checks a user's list (``all`` is every
mode sensible for the geometry); :func:`run_modes` runs them on the two sample summaries
of :mod:`physgen.calo.evaluate.samples`: ``hist`` (separation powers and
``histogram_chi2_<ds>.txt``), ``avg`` and ``avg-E`` (average showers, per incident-energy
range of :func:`energy_ranges`), the classifier tests (``cls-*``, one official-style text
file each), ``multiclass``, ``fpd`` / ``kpd`` and ``prdc``. The figures each mode draws
are in :mod:`physgen.calo.evaluate.figures`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from physgen.calo.evaluate.features import Sample
from physgen.calo.evaluate.histograms import (
    HistogramResult,
    HistogramSpec,
    VoxelSpectrum,
    compare_histograms,
    compare_per_energy,
    histogram_specs,
    iter_groups,
)
from physgen.calo.evaluate.samples import SampleSummary, subsample_showers
from physgen.calo.geometry import Geometry
from physgen.errors import ConfigError

if TYPE_CHECKING:
    from physgen.trust.ensemble import Band

log = logging.getLogger(__name__)

__all__ = ["CLASSIFIER_MODES", "MODES", "energy_ranges", "expand_modes", "run_modes"]


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


def energy_ranges(geometry: Geometry) -> list[tuple[float, float]]:
    """Incident-energy ranges (MeV) of the ``avg-E`` mode, as in the official evaluator."""
    if geometry.name.startswith("1-"):
        edges = 2.0 ** np.linspace(8, 23, 16)
    else:
        edges = 10.0 ** np.linspace(3, 6, 4)
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


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


def ensemble_histograms(
    ref: SampleSummary,
    members: list[SampleSummary],
    specs: list[HistogramSpec],
    ds: str,
    main: list[HistogramResult],
) -> tuple[dict[str, Band], dict[str, Any]]:
    """Every histogram of the ``hist`` mode for each ensemble member: the bands (densities,
    mean +- std over members, by histogram key) and each separation power's spread."""
    from physgen.trust.ensemble import Band

    per_member: list[list[HistogramResult]] = []
    for m in members:
        rows = compare_histograms(ref.features, m.features, specs, generated_weights=m.weights)
        if ds.startswith("1-"):
            rows += compare_per_energy(ref.features, m.features, generated_weights=m.weights)
        if ref.spectrum is not None and m.spectrum is not None:
            rows.append(VoxelSpectrum.compare(ref.spectrum, m.spectrum))
        per_member.append(rows)
    bands: dict[str, Band] = {}
    sep: dict[str, dict[str, float]] = {}
    for j, r in enumerate(main):
        dens = np.array([rows[j].generated for rows in per_member])
        bands[r.spec.key] = Band(np.asarray(r.spec.edges), dens)
        s = [rows[j].separation_power for rows in per_member]
        sep[r.spec.key] = {"mean": float(np.mean(s)), "std": float(np.std(s, ddof=1))}
    return bands, {"n_members": len(members), "separation_power": sep}


def _ignored(results: dict[str, Any], mode: str) -> None:
    """Record that ``mode`` has no weighted form and ran on the unweighted showers."""
    msg = f"{mode}: not defined for weighted samples; computed without the weights"
    log.warning(msg)
    results["warnings"].append(msg)


def _argline(argv: Sequence[str] | None) -> str:
    return " ".join(argv) if argv else "physgen evaluate (library call)"


def run_modes(
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
    members: list[SampleSummary] | None = None,
) -> list[Path]:
    """Run each mode on the two sample summaries, in the order of ``mode_list``.

    Writes the official-style text files and the figures into ``stage`` and the numbers
    into ``results``; returns the files written, in the order written. ``members`` (the
    summaries of an ensemble's samples) add a band to every histogram and the spread of
    each separation power over the members (``results["ensemble"]``).
    """
    from physgen.calo.evaluate import figures as F

    ds = geo.name
    files: list[Path] = []
    info = F.plot_info(geo, ref, gen)
    fmt = plot_formats
    if "hist" in mode_list:
        say("histograms")
        t0 = time.perf_counter()
        specs = histogram_specs(ref.features)
        wg = gen.weights
        hist = compare_histograms(ref.features, gen.features, specs, generated_weights=wg)
        per_e = (
            compare_per_energy(ref.features, gen.features, generated_weights=wg)
            if ds.startswith("1-")
            else []
        )
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
        bands = None
        if members:
            say(f"histograms of {len(members)} ensemble members")
            bands, results["ensemble"] = ensemble_histograms(ref, members, specs, ds, all_hist)
        (stage / f"histogram_chi2_{ds}.txt").write_text(_official_hist_text(hist, per_e, vox))
        files.append(stage / f"histogram_chi2_{ds}.txt")
        if plots:
            say(f"plotting {len(all_hist)} histograms")
            t0 = time.perf_counter()
            files += F.plot_histograms(
                hist, per_e, vox, stage, ds, label=label, info=info, formats=fmt, bands=bands
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
            files += F.plot_average_showers(
                geo, ref.mean_shower, gen.mean_shower, stage, label=label, info=info, formats=fmt
            )
    if "avg-E" in mode_list:
        say("average showers per energy")
        per: dict[str, Any] = {}
        for lo, hi in ref.range_sums:
            nr, ng = ref.range_counts[(lo, hi)], gen.range_counts[(lo, hi)]
            per[f"{lo:g}-{hi:g}"] = {"n_reference": nr, "n_generated": ng}
        if plots:
            files += F.plot_average_showers_per_energy(
                geo, ref, gen, stage, label=label, info=info, formats=fmt
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
                generated_weights=gen.weights,
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
        if gen.weights is not None:
            _ignored(results, "multiclass")
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
            fres = fpd(fr, fg, seed=seed, generated_weights=gen.weights)
            d["fpd"], d["fpd_err"] = fres.value, fres.error
            lines.append(f"FPD (x10^3): {fres.value * 1e3:.4f} ± {fres.error * 1e3:.4f}\n")
        if "kpd" in mode_list:
            kres = kpd(fr, fg, seed=seed, generated_weights=gen.weights)
            d["kpd"], d["kpd_err"] = kres.value, kres.error
            lines.append(f"KPD (x10^3): {kres.value * 1e3:.4f} ± {kres.error * 1e3:.4f}\n")
        results["fpd_kpd"] = d
        (stage / f"fpd_kpd_{ds}.txt").write_text("".join(lines))
        files.append(stage / f"fpd_kpd_{ds}.txt")
    if "prdc" in mode_list:
        from physgen.calo.evaluate.distances import prdc_voxels

        say("PRDC")
        if gen.weights is not None:
            _ignored(results, "prdc")
        n_max = 10_000
        pres = prdc_voxels(
            subsample_showers(reference, geo, n_max, seed, batch_size),
            subsample_showers(generated, geo, n_max, seed + 1, batch_size),
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
