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

The passes over the samples are in :mod:`physgen.calo.evaluate.samples`, the modes in
:mod:`physgen.calo.evaluate.modes`, their figures in :mod:`physgen.calo.evaluate.figures`
and the HTML report in :mod:`physgen.calo.evaluate.report`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physgen._optional import require
from physgen._version import __version__
from physgen.calo.evaluate.features import Sample
from physgen.calo.evaluate.histograms import VoxelSpectrum
from physgen.calo.evaluate.modes import CLASSIFIER_MODES as CLASSIFIER_MODES
from physgen.calo.evaluate.modes import MODES, expand_modes, run_modes
from physgen.calo.evaluate.modes import energy_ranges as energy_ranges
from physgen.calo.evaluate.samples import (
    SampleSummary,
    check_sample,
    compare_energy_distributions,
    spectrum_pass,
    summarise,
)
from physgen.calo.geometry import Geometry, get_geometry
from physgen.checks import check_device, check_seed
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import check_output, raise_if_interrupted, staging_dir

__all__ = ["MODES", "EvaluationResult", "SampleSummary", "evaluate", "expand_modes"]

log = logging.getLogger(__name__)


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
    cluster: Any = None,
    generated_weights: Any = None,
    use_weights: bool = True,
    ensemble: Sequence[Sample] | None = None,
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
        cluster: Run the per-file passes (features, voxel spectra, per-energy sums) of
            *files* as batch tasks on a Dask cluster: a ``--cluster`` string, a
            :class:`physgen.dist.ClusterSpec` or a ``distributed.Client``; the workers must
            see the files. Results are identical to the in-process passes. Classifiers and
            plots run here.
        generated_weights: Per-shower weights of the generated sample ``(N,)``, >= 0 (e.g.
            DCTR refinement); by default those of the file's ``weights`` dataset, if any
            (``physgen generate --refiner``). Histograms, separation powers, average
            showers, the voxel spectrum and the classifiers are then weighted, FPD/KPD
            draw the generated rows with probability proportional to the weight; PRDC
            and multiclass have no weighted form and run unweighted (a warning says so).
            ``results["weights"]`` holds the effective sample size.
        use_weights: False ignores the file's weights (judge the unrefined sample).
        ensemble: Samples of the members of an ensemble (e.g. K trainings with different
            seeds, each generating for the reference's incident energies; >= 2, same
            geometry): every ``hist`` histogram gets a band (the members' mean +- 1 sigma)
            and ``results["ensemble"]`` each separation power's mean and spread over them.

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
    sample_files = [
        s for s in (generated, reference, *(extra_generated or {}).values(), *(ensemble or []))
    ]
    out = check_output(
        out_dir,
        "--out",
        kind="dir",
        inputs=[s for s in sample_files if isinstance(s, (str, Path))],
    )

    say("checking samples")
    n_gen = check_sample(generated, geo, "generated sample")
    n_ref = check_sample(reference, geo, "reference sample")
    weights = _generated_weights(generated, generated_weights, use_weights, geo, n_gen)
    members = list(ensemble or [])
    if members:
        if len(members) < 2:
            raise ConfigError(f"--ensemble: needs >= 2 members, got {len(members)}")
        if "hist" not in mode_list:
            raise ConfigError("--ensemble: draws bands on the histograms; add hist to --mode")
        for i, m in enumerate(members):
            check_sample(
                m, geo, f"ensemble member {i + 1} ({m if isinstance(m, (str, Path)) else 'array'})"
            )
    extras = dict(extra_generated or {})
    for name, s in extras.items():
        check_sample(s, geo, f"sample {name!r}")
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
    with contextlib.ExitStack() as stack:
        if cluster is not None:
            from physgen.calo.distributed import cluster_client
            from physgen.calo.evaluate.streaming import on_cluster

            stack.enter_context(on_cluster(stack.enter_context(cluster_client(cluster))))
        say("features of the reference")
        ref = summarise(reference, geo, ranges, None, batch_size)
        max_voxel = max(ref.features.max_voxel, 1e-12) if "hist" in mode_list else None
        if max_voxel is not None:
            ref.spectrum = VoxelSpectrum(geo, max_voxel, ref.features.energy_dtype)
            spectrum_pass(reference, geo, ref.spectrum, batch_size)
        say("features of the generated sample")
        gen = summarise(
            generated, geo, ranges, max_voxel, batch_size, ref.features.energy_dtype, weights
        )
        member_summaries = []
        for i, m in enumerate(members):
            say(f"features of ensemble member {i + 1} of {len(members)}")
            wm = _generated_weights(m, None, use_weights, geo, 0)
            member_summaries.append(
                summarise(m, geo, [], max_voxel, batch_size, ref.features.energy_dtype, wm)
            )
    t_features = time.perf_counter() - t0

    warning = compare_energy_distributions(ref.features, gen.features)
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
    if members:
        results["ensemble_members"] = [
            str(m) if isinstance(m, (str, Path)) else "<array>" for m in members
        ]
    if weights is not None:
        from physgen.trust.dctr import effective_sample_size

        ess = effective_sample_size(weights)
        results["weights"] = {
            "source": "array" if generated_weights is not None else "file",
            "effective_sample_size": ess,
            "ess_fraction": ess / n_gen,
            "max": float(weights.max()),
            "mean": float(weights.mean()),
        }
    if warning:
        invalid = "classifier AUCs (the classifier can separate on E_inc alone) and E_tot/E_inc"
        msg = f"{warning}: {invalid} comparisons are not valid"
        log.warning(msg)
        results["warnings"].append(msg)

    created = not out.exists()
    with staging_dir(out) as stage:
        files = run_modes(
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
            members=member_summaries,
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


def _generated_weights(
    generated: Sample, given: Any, use: bool, geo: Geometry, n: int
) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """The checked weights of the generated sample: given ones, else the file's (if used)."""
    from physgen.calo.io import check_weights, read_weights

    if given is not None:
        w = check_weights(given, "generated_weights")
        if w.size != n:
            raise DataFormatError(f"generated_weights: {w.size} weights for {n} showers")
        return w
    if use and isinstance(generated, (str, Path)):
        return read_weights(generated, geo)
    return None


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
