"""DCTR refinement of a calorimeter surrogate: ``physgen refine`` and ``generate --refiner``.

A :class:`ShowerRefiner` is a :class:`physgen.trust.dctr.Reweighter` on the inputs of one
CaloChallenge classifier mode (default ``cls-low``: ``[log10 E_inc, voxel / E_inc]`` after the
threshold, so the ratio is parametrised in the incident energy, parametrised DCTR), bound to
the geometry and to the surrogate run it was trained for. Its weights, clipped to ``[1/clip, clip]``
and normalised to mean 1 per incident energy (each of the 15 dataset-1 energies; deciles of
a continuous spectrum), are what ``physgen generate --refiner`` writes into the ``weights``
dataset of the CaloChallenge file and what ``physgen evaluate`` then honours.

Train on one pair of samples (generated showers for a reference's incident energies, and
that reference), judge on others: a refiner scored on its own training events looks better
than it is.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._version import __version__
from physgen.calo.evaluate.classifier_inputs import classifier_inputs, input_dim
from physgen.calo.evaluate.features import Sample, iter_sample
from physgen.calo.geometry import Geometry, get_geometry
from physgen.errors import ConfigError
from physgen.metrics.classifier import ClassifierConfig, get_preset
from physgen.trust.dctr import (
    Reweighter,
    condition_groups,
    effective_sample_size,
    fit_reweighter,
    normalise_in_groups,
    regularise,
)

__all__ = ["INPUTS", "ShowerRefiner", "fit_refiner", "run_digest"]

F64 = npt.NDArray[np.float64]
#: Classifier input modes a refiner can use.
INPUTS = ("cls-low", "cls-low-normed", "cls-high")


def run_digest(run_dir: str | Path) -> str:
    """SHA-256 of a run's ``weights.pt``: identifies the trained surrogate."""
    p = Path(run_dir) / "weights.pt"
    if not p.is_file():
        raise ConfigError(f"{run_dir}: no weights.pt (not a trained run directory)")
    return hashlib.sha256(p.read_bytes()).hexdigest()


@dataclass
class ShowerRefiner:
    """A DCTR reweighter for showers of one geometry and one trained surrogate."""

    reweighter: Reweighter

    @property
    def geometry(self) -> str:
        """The geometry name it was trained on."""
        return str(self.reweighter.info["geometry"])

    @property
    def inputs(self) -> str:
        """The classifier input mode."""
        return str(self.reweighter.info["inputs"])

    @property
    def model(self) -> str:
        """Family name of the surrogate it refines."""
        return str(self.reweighter.info.get("model", ""))

    @property
    def run_digest(self) -> str:
        """SHA-256 of the refined run's ``weights.pt`` ('' if unknown)."""
        return str(self.reweighter.info.get("run_digest", ""))

    @property
    def info(self) -> dict[str, Any]:
        """Metadata and training diagnostics."""
        return self.reweighter.info

    def summary(self) -> dict[str, Any]:
        """What a refined file records about its refiner (provenance)."""
        keys = ("inputs", "clip", "model", "run_digest", "reference", "generated", "seed")
        return {k: self.info[k] for k in keys if k in self.info}

    def ratios(self, incident_energies: npt.ArrayLike, showers: npt.ArrayLike) -> F64:
        """Calibrated density ratios ``(b,)`` of one batch, before the weight rule."""
        x = classifier_inputs(self.inputs, incident_energies, showers, self.geometry)
        return self.reweighter.raw_weights(x)

    def weights(self, incident_energies: npt.ArrayLike, showers: npt.ArrayLike) -> F64:
        """Refinement weights ``(N,)``: mean 1 per incident energy, clipped to
        ``[1 / clip, clip]`` (:func:`physgen.trust.dctr.regularise`)."""
        r = self.ratios(incident_energies, showers)
        return regularise(r, self.reweighter.clip, condition_groups(incident_energies))

    def check_compatible(self, geometry: str, model: str, digest: str | None = None) -> None:
        """Refuse to refine a surrogate of another geometry, family or training run."""
        geo = get_geometry(geometry).name
        if geo != self.geometry:
            raise ConfigError(
                f"--refiner: trained for geometry {self.geometry!r}, the run is {geo!r}"
            )
        if self.model and model and model != self.model:
            raise ConfigError(f"--refiner: trained for a {self.model} run, this run is {model}")
        if digest and self.run_digest and digest != self.run_digest:
            raise ConfigError(
                "--refiner: trained for another run of this model (its weights.pt differs); "
                "refine this run with `physgen refine`"
            )

    def save(self, path: str | Path) -> Path:
        """Write atomically to one file (``torch.load(weights_only=True)`` reads it)."""
        return self.reweighter.save(path)

    @classmethod
    def load(cls, path: str | Path) -> ShowerRefiner:
        """Read a refiner written by :meth:`save` or ``physgen refine``."""
        rw = Reweighter.load(path)
        if rw.info.get("kind") != "shower-refiner":
            raise ConfigError(f"{path}: a reweighter, but not a shower refiner (physgen refine)")
        return cls(rw)


def _inputs_of(
    sample: Sample, geo: Geometry, mode: str, batch_size: int | None
) -> tuple[F64, npt.NDArray[np.float32]]:
    es, xs = [], []
    for e, x in iter_sample(sample, geo, batch_size):
        es.append(np.asarray(e, dtype=np.float64).reshape(-1))
        xs.append(classifier_inputs(mode, e, x, geo))
    return np.concatenate(es), np.concatenate(xs)


def fit_refiner(
    generated: Sample,
    reference: Sample,
    geometry: str | Geometry,
    *,
    inputs: str = "cls-low",
    config: str | ClassifierConfig = "fast",
    clip: float = 10.0,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    model: str = "",
    digest: str = "",
    batch_size: int | None = None,
    progress: Callable[[str], None] | None = None,
    members: int = 1,
) -> ShowerRefiner:
    """Train a refiner: generated showers (for the reference's incident energies) vs reference.

    Args:
        generated: Showers of the surrogate (file or ``(E, X)`` arrays, MeV).
        reference: The target (the simulator), same geometry, same incident-energy spectrum.
        geometry: Geometry name or object.
        inputs: Classifier input mode, one of :data:`INPUTS`.
        config: Classifier preset (``fast``, ``official``) or config; the voxel modes run on
            raw inputs, ``cls-high`` on whitened ones (as the evaluation's classifiers).
        clip: Largest weight before normalisation.
        seed: Split and initialisation seed.
        threads: torch threads.
        device: torch device.
        model: Family name of the surrogate (checked by ``generate --refiner``).
        digest: :func:`run_digest` of its run (checked likewise).
        batch_size: Showers per streamed batch when building inputs.
        progress: Callback for status strings.
        members: Classifiers averaged (their mean log ratio: smoother weights, higher ESS).

    Returns:
        The refiner, with diagnostics in ``info``: effective sample size and the fraction
        of clipped weights on its own generated sample (a held-out judgement is the
        evaluation's job).
    """
    say = progress or (lambda _m: None)
    if inputs not in INPUTS:
        raise ConfigError(f"--inputs: expected one of {', '.join(INPUTS)}, got {inputs!r}")
    geo = get_geometry(geometry)
    cfg = get_preset(config)
    transform = "whiten" if inputs == "cls-high" else "none"
    cfg = dataclasses.replace(cfg, input_transform=transform)
    say("classifier inputs of the generated sample")
    e_gen, x_gen = _inputs_of(generated, geo, inputs, batch_size)
    say("classifier inputs of the reference")
    _, x_ref = _inputs_of(reference, geo, inputs, batch_size)
    say(f"training the refiner on {len(x_gen)} generated vs {len(x_ref)} reference showers")
    info = {
        "kind": "shower-refiner",
        "geometry": geo.name,
        "inputs": inputs,
        "model": model,
        "run_digest": digest,
        "physgen_version": __version__,
        "generated": str(generated) if isinstance(generated, (str, Path)) else "<array>",
        "reference": str(reference) if isinstance(reference, (str, Path)) else "<array>",
    }
    rw = fit_reweighter(
        x_gen,
        x_ref,
        config=cfg,
        clip=clip,
        seed=seed,
        threads=threads,
        device=device,
        info=info,
        members=members,
    )
    assert input_dim(inputs, geo) == rw.n_inputs
    raw = rw.raw_weights(x_gen)
    groups = condition_groups(e_gen)
    w = regularise(raw, clip, groups)
    rw.info["train_diagnostics"] = {
        "ess_fraction": effective_sample_size(w) / len(w),
        "clipped_fraction": float(
            np.mean(np.abs(np.log(normalise_in_groups(raw, groups))) > np.log(clip))
        ),
        "max_raw_weight": float(raw.max()),
        "note": "on all its generated showers, 80 % of which it trained on",
    }
    return ShowerRefiner(rw)
