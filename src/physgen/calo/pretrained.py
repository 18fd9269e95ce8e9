"""Pretrained surrogates shipped inside the package.

A shipped model is two files in ``physgen/calo/pretrained_weights/``:

``NAME.pt``
    ``{"format": "physgen-pretrained/1", "model": family, "state_dict": ...}``: the tensors
    generation needs (a GAN's critic is left out), network weights in float16, the codec's
    fitted constants at their own precision. Loaded with ``torch.load(weights_only=True)``.
``NAME.json``
    What it is and where it comes from: family, geometry, the full training config, the
    omitted module prefixes, the SHA-256 of ``NAME.pt`` (checked at load), and a
    ``provenance`` record with the commands that reproduce it and what it scored.

:func:`pack_run` writes both from a run directory of ``physgen train``;
:func:`load_pretrained` builds the model back (float32) for ``physgen generate --pretrained``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from physgen.calo.config import TrainConfig, from_mapping, to_mapping
from physgen.calo.rundir import build_codec, read_run_config
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import build_model, check_sampling_overrides
from physgen.outputs import atomic_write_bytes, atomic_write_text
from physgen.train.rundir import load_weights_file

__all__ = [
    "FORMAT",
    "PretrainedInfo",
    "available_pretrained",
    "load_pretrained",
    "pack_run",
    "unknown_pretrained",
]

FORMAT = "physgen-pretrained/1"
_KEEP_PRECISION = ("codec.",)  # fitted preprocessing constants stay exact


@dataclass(frozen=True)
class PretrainedInfo:
    """One shipped model.

    Attributes:
        name: The name ``physgen generate --pretrained`` takes.
        model: Model family (``gan``, ``flow``...).
        geometry: Geometry of its showers.
        description: One line for listings.
        size_bytes: Size of the weights file.
        provenance: Commands, data and scores, as recorded when it was packed.
        path: The weights file.
    """

    name: str
    model: str
    geometry: str
    description: str
    size_bytes: int
    provenance: dict[str, Any]
    path: Path


def _directory() -> Path:
    return Path(str(resources.files("physgen.calo") / "pretrained_weights"))


def _manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable pretrained manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a {FORMAT} manifest")
    return data


def available_pretrained(directory: str | Path | None = None) -> dict[str, PretrainedInfo]:
    """The shipped models by name (those of ``directory`` if given, for tests and packing)."""
    d = _directory() if directory is None else Path(directory)
    out: dict[str, PretrainedInfo] = {}
    for js in sorted(d.glob("*.json")) if d.is_dir() else []:
        m = _manifest(js)
        pt = js.with_suffix(".pt")
        out[js.stem] = PretrainedInfo(
            name=js.stem,
            model=str(m["model"]),
            geometry=str(m["config"]["geometry"]),
            description=str(m.get("description", "")),
            size_bytes=pt.stat().st_size if pt.is_file() else 0,
            provenance=dict(m.get("provenance", {})),
            path=pt,
        )
    return out


def unknown_pretrained(name: str, known: dict[str, PretrainedInfo]) -> ConfigError:
    """The error for a ``--pretrained`` name that is not shipped, listing those that are."""
    names = ", ".join(known) or "none"
    return ConfigError(f"--pretrained: no shipped model {name!r}; shipped: {names}")


def load_pretrained(
    name: str,
    device: str | torch.device = "cpu",
    *,
    overrides: dict[str, Any] | None = None,
    directory: str | Path | None = None,
) -> ShowerGenerator:
    """Build a shipped model, in eval mode, with float32 weights.

    Args:
        name: A name of :func:`available_pretrained`.
        device: Where to put the model.
        overrides: Sampling options of the family (as for :func:`physgen.calo.rundir.load_run`).
        directory: Where the files are (default: the package's own).

    Raises:
        ConfigError: Unknown name (the message lists the shipped ones), a missing weights
            file or one whose checksum does not match its manifest, a file that is not plain
            weights, or weights that do not fit.
    """
    known = available_pretrained(directory)
    if name not in known:
        raise unknown_pretrained(name, known)
    info = known[name]
    m = _manifest(info.path.with_suffix(".json"))
    if not info.path.is_file():
        raise ConfigError(
            f"{info.path}: weights file missing beside its manifest (reinstall physgen)"
        )
    blob = info.path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != m.get("sha256"):
        raise ConfigError(f"{info.path}: checksum does not match its manifest (reinstall physgen)")
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ConfigError(
            f"{info.path}: not loadable as plain weights ({type(exc).__name__}: {first[:200]})"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("model") != info.model:
        raise ConfigError(f"{info.path}: not the {info.model} weights its manifest describes")
    cfg = from_mapping(TrainConfig, m["config"], str(info.path.with_suffix(".json")))
    model_cfg = dict(cfg.model_config)
    if overrides:
        check_sampling_overrides(cfg.model, overrides)
        model_cfg.update(overrides)
    model = build_model(cfg.model, build_codec(cfg), model_cfg)
    result = model.load_state_dict(obj["state_dict"], strict=False)
    omitted = tuple(m.get("omitted", ()))
    missing = [k for k in result.missing_keys if not k.startswith(omitted)]
    if missing or result.unexpected_keys:
        bad = (missing + list(result.unexpected_keys))[:3]
        raise ConfigError(f"{info.path}: does not fit the {info.model} network (e.g. {bad})")
    model.to(device).eval()
    return model  # type: ignore[no-any-return]


def _without_paths(obj: Any) -> Any:
    """A JSON record with absolute paths cut to their file names (a shipped file names
    no directory of the machine it was made on)."""
    if isinstance(obj, dict):
        return {k: _without_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_paths(v) for v in obj]
    if isinstance(obj, str):  # a path alone, or inside a command line: keep the file name
        return _ABSOLUTE.sub(lambda m: m.group(1) + Path(m.group(2)).name, obj)
    return obj


#: An absolute POSIX path (or ``~/...``) at the start of a string or after a space, ``=``,
#: quote or colon.
_ABSOLUTE = re.compile(r"""(^|[\s='":])((?:/|~/)[^\s'"]+)""")


def pack_run(
    run_dir: str | Path,
    name: str,
    *,
    description: str,
    provenance: dict[str, Any],
    omit: tuple[str, ...] = (),
    directory: str | Path | None = None,
    half: bool = True,
) -> Path:
    """Write ``NAME.pt`` and ``NAME.json`` from a run directory (atomically).

    Args:
        run_dir: A run directory of ``physgen train`` (its best EMA weights are packed).
        name: The shipped name (letters, digits, ``-`` and ``.``, starting with a letter or
            digit; not ``list``).
        description: One line for listings.
        provenance: Commands that reproduce the run, data, steps, scores; stored as given,
            with the run's own ``provenance.json`` and ``summary.json`` added.
        omit: Prefixes of state-dict keys not needed to generate (e.g. ``("critic.",)``).
        directory: Where to write (default: the package's own directory).
        half: Store floating-point network weights as float16.

    Returns:
        The weights file.
    """
    if not name or not name[0].isalnum() or not all(ch.isalnum() or ch in "-." for ch in name):
        raise ConfigError(
            f"pack_run: name must start with a letter or digit and hold only letters, digits, "
            f"'-' or '.', got {name!r}"
        )
    if name == "list":
        raise ConfigError("pack_run: 'list' is reserved (physgen generate --pretrained list)")
    d = Path(run_dir)
    cfg = read_run_config(d)
    obj = load_weights_file(d / "weights.pt", cfg.model)
    state: dict[str, torch.Tensor] = {}
    for k, v in obj["state_dict"].items():
        if k.startswith(omit):
            continue
        if half and v.is_floating_point() and not k.startswith(_KEEP_PRECISION):
            v = v.to(torch.float16)
        state[k] = v.contiguous()
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "model": cfg.model, "state_dict": state}, buf)
    blob = buf.getvalue()
    run_records = {
        f: _without_paths(json.loads((d / f).read_text()))
        for f in ("provenance.json", "summary.json")
        if (d / f).is_file()
    }
    manifest = {
        "format": FORMAT,
        "model": cfg.model,
        "description": description,
        "config": to_mapping(cfg),
        "omitted": list(omit),
        "dtype": "float16" if half else "float32",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "provenance": {**provenance, "run": run_records},
    }
    out = _directory() if directory is None else Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{name}.pt", blob)
    atomic_write_text(out / f"{name}.json", json.dumps(manifest, indent=2) + "\n")
    return out / f"{name}.pt"
