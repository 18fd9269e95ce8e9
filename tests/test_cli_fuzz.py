"""Property-based fuzzing of the whole ``physgen`` command line (hypothesis).

Every command is called in-process (:func:`physgen.cli.main.main`) in a fresh
folder holding a menu of good and bad files: valid shower files, a symbolic and a
hard link to one, a folder, a truncated HDF5 file, a text file, an empty file, a
file with a NaN row, a fake run directory. Argument lists are drawn from
per-command menus of valid and invalid values (seeds, counts, devices, energies,
paths that alias the inputs...). For every invocation:

1. no ``Traceback`` on stderr (nor an exception out of ``main``);
2. exit status 0 or 2;
3. on status 2 the last stderr line is one ``error: ...`` line, or a click usage
   error (``Usage:`` ... ``Error: ...``);
4. every input file is byte-identical afterwards (sha256, symbolic links followed);
5. after a failure nothing in the folder changed (no new file or folder, nothing at
   the output path); after a success only the output path changed; never a
   temporary ``.NAME.tmp-PID-HEX`` left behind.

Commands that would train a model or run an integration for real (``train``,
``bench front``, ``integrate``, ``events``) always get at least one argument that
is refused before any work starts ("poison"), and ``generate``/``timing --run``
only ever see fake run directories, so each example takes milliseconds (a few
``evaluate`` examples with plots take about a second). Hypothesis runs
derandomized, without a database, one test per command (25-80 examples each).

``test_found_defects`` keeps the invocations that broke these properties when this
file was written (symbolic-link loops, ``evaluate -o .``, over-long file names,
sizes beyond memory), so that they are checked on every run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import shlex
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from physgen.cli.main import main
from showerdata import make_showers

# --------------------------------------------------------------------------- sandbox

TMP_RE = re.compile(r"^\..*\.tmp-\d+-[0-9a-f]+$")
ROOT = "{root}"  # replaced by the sandbox's absolute path in arguments


@functools.lru_cache(maxsize=1)
def _file_bytes() -> dict[str, bytes]:
    """The sandbox's files (path -> bytes), written once with the library.

    a.h5, b.h5: valid, geometry 1-photons, 20 showers; p.h5: the same with provenance
    (particle electron, engine gflash); g2.h5: geometry 2 (particle photon); nan.h5: a
    NaN voxel; neg.h5: negative voxels; trunc.h5: the first 100 bytes of a.h5;
    text.h5, empty.h5, conf.yaml (a list, no config); old.h5: an unrelated earlier
    output; run/: a run directory with a valid config and unusable weights; badrun/:
    an invalid config.yaml.
    """
    from physgen.calo.config import load_config
    from physgen.calo.io import write_showers
    from physgen.calo.rundir import config_yaml

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        e, x = make_showers(20, 368, seed=1)
        write_showers(tmp / "a.h5", e, x)
        e2, x2 = make_showers(20, 368, seed=2)
        write_showers(tmp / "b.h5", e2, x2)
        write_showers(
            tmp / "p.h5", e2, x2, attrs={"particle": "electron", "engine": "gflash", "seed": 3}
        )
        e3, x3 = make_showers(4, 6480, seed=3)
        write_showers(tmp / "g2.h5", e3, x3, attrs={"particle": "photon", "geometry": "2"})
        # bad values written with h5py: the library's writer may refuse them
        for name, row, value in (("nan.h5", 3, np.nan), ("neg.h5", 2, -1.5)):
            xb = x.copy()
            xb[row, :4] = value
            with h5py.File(tmp / name, "w") as h:
                h.create_dataset("incident_energies", data=e)
                h.create_dataset("showers", data=xb)
        for name in ("a.h5", "b.h5", "p.h5", "g2.h5", "nan.h5", "neg.h5"):
            out[name] = (tmp / name).read_bytes()
        out["run/config.yaml"] = config_yaml(
            load_config("cfm", "1-photons", preset="tiny")
        ).encode()
    out["trunc.h5"] = out["a.h5"][:100]
    out["text.h5"] = b"incident_energies,showers\n1,2\n"
    out["empty.h5"] = b""
    out["old.h5"] = b"an earlier output\n"
    out["conf.yaml"] = b"- just\n- a list\n"
    # A run directory with a valid config but unusable weights: generate/timing get as
    # far as loading the model, never further.
    out["run/transforms.json"] = b"{}\n"
    out["run/weights.pt"] = b"not a torch file"
    out["badrun/config.yaml"] = b"model: [unclosed\n"
    return out


def _populate(root: Path) -> None:
    for name, data in _file_bytes().items():
        p = root / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
    (root / "dir").mkdir()  # a folder where a file is expected
    (root / "dir.lhe").mkdir()
    (root / "link.h5").symlink_to("a.h5")
    (root / "linkdir").symlink_to("dir")
    (root / "loop.h5").symlink_to("loop.h5")  # a symbolic link to itself
    (root / "dangling.h5").symlink_to("gone.h5")
    try:
        os.link(root / "a.h5", root / "hard.h5")
    except OSError:  # a file system without hard links
        (root / "hard.h5").write_bytes((root / "a.h5").read_bytes())


def _snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` (not following links): file hash, link target or folder."""
    snap: dict[str, tuple[str, str]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                snap[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                snap[rel] = ("dir", "")
            else:
                snap[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return snap


def _content(path: Path) -> str | None:
    """sha256 of what ``path`` holds (links followed), None if it is no readable file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One invocation: the argument list and which of its values are inputs and outputs."""

    argv: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"physgen {shlex.join(self.argv)}"


#: A menu value: ``None`` leaves the option out, a string is the option's value (or a
#: positional argument, or a flag, when the option has no name), a tuple is raw tokens.
Value = str | tuple[str, ...] | None
OMIT = None


@dataclass(frozen=True)
class Opt:
    """One option with menus of accepted (``good``) and refused (``bad``) values.

    ``poison`` values are refused before the command does any work; commands that
    would otherwise train or integrate for real always get one.
    """

    name: str | None
    good: Sequence[Value]
    bad: Sequence[Value] = ()
    poison: Sequence[Value] = ()
    role: str = ""  # "in" or "out" for a positional argument
    many: bool = False  # a positional taking 1-3 values


@dataclass(frozen=True)
class Spec:
    command: tuple[str, ...]
    opts: tuple[Opt, ...]
    ins: frozenset[str] = frozenset()  # options whose value is an input file
    outs: frozenset[str] = frozenset()  # options whose value is the output
    needs_poison: bool = False


def _flag(*names: str, bad: Sequence[Value] = ()) -> Opt:
    return Opt(None, (OMIT, *names), bad)


SEEDS = (OMIT, "0", "7")
BAD_SEEDS = ("-1", str(2**63), str(2**64), "abc", "")
BAD_COUNTS = ("0", "-3", str(10**13), "abc")
#: ``cuda`` (and ``cuda:7`` on a big machine) may exist: refused only where it does not
BAD_DEVICES = ("gpu", "tpu", "cpu:0", "", "CUDA:-1")
MAYBE_DEVICES = ("cuda", "cuda:7")
#: A file name of 253 characters (legal: at most 255) and one of 303 (too long).
LONG = "x" * 250 + ".h5"
TOO_LONG = "y" * 300 + ".h5"
GOOD_INPUTS = ("a.h5", "b.h5", "link.h5", "hard.h5", f"{ROOT}/a.h5", "p.h5")
BAD_INPUTS = (
    "dir",
    "missing.h5",
    "trunc.h5",
    "text.h5",
    "empty.h5",
    "nan.h5",
    "neg.h5",
    "g2.h5",
    "",
    "nodir/a.h5",
    "loop.h5",
    "dangling.h5",
    "linkdir",
    TOO_LONG,
)
#: Output files that do not alias any input of this module's commands.
FREE_OUTS = ("new.h5", f"{ROOT}/new.h5", "old.h5", "dir/new.h5", "./new.h5", "dangling.h5", LONG)
#: Output files that alias ``a.h5`` (and its links) or that cannot be a file.
ALIAS_OUTS = ("a.h5", "link.h5", "hard.h5", "./a.h5", "dir/../a.h5", f"{ROOT}/link.h5")
NOT_FILES = ("dir", "nodir/x.h5", "", ".", "run", "nodir/../new.h5", "linkdir", "loop.h5", TOO_LONG)
#: Refused as an output folder by design (a poison); a looping or dangling link is bad
#: but not necessarily refused before the work starts.
FILE_NOT_DIRS = ("a.h5", "link.h5", "hard.h5", "nodir/sub", "text.h5")
BAD_OUT_DIRS = (*FILE_NOT_DIRS, "loop.h5", "dangling.h5", TOO_LONG)
ENERGY_BAD = ("abc", "-1GeV", "0", "nan", "inf", "1TeV:1GeV", "", "1e30MeV", "ds1:odd", ":")
JSON = _flag("--json", bad=("--bogus",))
PROGRESS = _flag("--no-progress")
GEO_OPT = Opt("--geometry", (OMIT, "1-photons"), ("2", "nope", "", "conf.yaml", "dir"))

GEOMETRY = Spec(
    ("geometry",),
    (
        Opt(None, ("1-photons", "2", "3", "calogan", "1-pions"), ("nope", "", "a.h5", "dir")),
        Opt("--particle", (OMIT, "photon", "pion", "electron"), ("nope", "")),
        JSON,
    ),
)
INFO = Spec(("info",), (Opt(None, GOOD_INPUTS, BAD_INPUTS, role="in"), GEO_OPT, JSON))
VALIDATE = Spec(
    ("validate",),
    (
        Opt(None, GOOD_INPUTS, BAD_INPUTS, role="in"),
        GEO_OPT,
        _flag("--clip-negative", "--no-clip-negative"),
    ),
)
MERGE = Spec(
    ("merge",),
    (
        Opt(None, ("a.h5", "b.h5", "p.h5", "link.h5"), BAD_INPUTS, role="in", many=True),
        Opt("-o", FREE_OUTS, (*ALIAS_OUTS, *NOT_FILES, "b.h5", "p.h5")),
        GEO_OPT,
        Opt("--compression", (OMIT, "gzip", "lzf", "none", "NONE"), ("zstd", "")),
        _flag("--clip-negative", "--no-clip-negative"),
        _flag("--allow-mixed", "--no-allow-mixed"),
    ),
    outs=frozenset({"-o"}),
)
SIMULATE = Spec(
    ("simulate",),
    (
        Opt("--geometry", ("2", "1-photons", "calogan", "3"), ("nope", "1-pions", "")),
        Opt("--particle", ("electron", "photon", "e+", "gamma"), ("muon", "")),
        Opt("--n", ("2", "1"), BAD_COUNTS),
        Opt("--energy", ("10GeV", "1GeV:1TeV", "2.5e3MeV", "ds1:even"), ENERGY_BAD),
        # simulate reads no file: replacing a.h5 or a link is allowed
        Opt("--out", (*FREE_OUTS, *ALIAS_OUTS), NOT_FILES),
        Opt("--seed", SEEDS, BAD_SEEDS),
        Opt("--engine", ("gflash",), ("nope", "")),  # cascade: seconds per shower
        Opt("--workers", (OMIT, "1"), ("0", "-1", "abc")),  # >1 starts a process pool
        Opt("--compression", (OMIT, "gzip", "lzf", "none"), ("zstd",)),
        Opt("--detector", (OMIT,), ("nope", "calogan", "par04", "atlas-like")),
        PROGRESS,
    ),
    outs=frozenset({"--out"}),
)
EVALUATE = Spec(
    ("evaluate",),
    (
        Opt(None, GOOD_INPUTS, BAD_INPUTS, role="in"),
        Opt(None, GOOD_INPUTS, BAD_INPUTS, role="in"),
        Opt("--geometry", ("1-photons",), ("2", "nope", "")),
        Opt(
            "-o", ("newdir", "dir", "dir/sub", f"{ROOT}/newdir", ".", "linkdir", LONG), BAD_OUT_DIRS
        ),
        # classifier, FPD/KPD and PRDC modes train or embed for minutes: not drawn
        Opt("--mode", ("avg", "avg", "avg", "avg-E", "avg,avg-E", "hist"), ("nope", "", "avg,")),
        Opt("--classifier", (OMIT, "fast", "official"), ("nope",)),
        Opt("--repeats", (OMIT, "1", "2"), ("0", "-1", "abc")),
        Opt("--seed", SEEDS, BAD_SEEDS),
        Opt("--device", (OMIT, "cpu"), (*BAD_DEVICES, *MAYBE_DEVICES)),
        Opt("--extra", (OMIT, "x=b.h5"), ("bad", "x=missing.h5", "x=trunc.h5", "=a.h5", "x=")),
        Opt("--label", (OMIT, "gen", "a b", "../x", "a/b"), ("",)),
        Opt(None, ("--no-plots", "--no-plots", "--no-plots", "--no-plots", "--plots")),
        Opt("--batch-size", (OMIT, "7"), ("0", "-1", str(10**13), "abc")),
        JSON,
    ),
    ins=frozenset({"--extra"}),
    outs=frozenset({"-o"}),
)
TRAIN = Spec(
    ("train",),
    (
        Opt("--data", GOOD_INPUTS, BAD_INPUTS),
        Opt(
            "--out",
            ("newrun", f"{ROOT}/newrun", "dir"),
            ("run", ".", "loop.h5", LONG, TOO_LONG),
            FILE_NOT_DIRS,
        ),
        Opt("--model", ("cfm", "vae"), (OMIT, "nope", "")),
        Opt("--geometry", ("1-photons",), (OMIT, "nope", "2")),
        Opt("--config", (OMIT,), ("conf.yaml", "dir", "missing.yaml", "a.h5")),
        Opt("--preset", (OMIT, "tiny"), ("nope",)),
        Opt("--seed", SEEDS, (), BAD_SEEDS),
        Opt("--epochs", (OMIT, "1"), ("0", "-1", "abc")),
        Opt("--max-time", (OMIT, "1s", "2h"), (), ("0", "-1", "abc", "nan", "inf", "1x")),
        _flag("--no-resume", bad=("--resume",)),
        Opt("--device", (OMIT, "cpu"), MAYBE_DEVICES, BAD_DEVICES),
        PROGRESS,
        JSON,
    ),
    ins=frozenset({"--data", "--config"}),
    outs=frozenset({"--out"}),
    needs_poison=True,
)
GENERATE = Spec(
    ("generate",),
    (
        # a run directory with a valid config but unusable weights: never gets further
        Opt(None, ("run", f"{ROOT}/run"), ("badrun", "dir", "a.h5", "missing", "")),
        Opt(
            "--out",
            FREE_OUTS,
            (*ALIAS_OUTS, *NOT_FILES, "run/x.h5", "run/weights.pt", "run/config.yaml"),
        ),
        Opt(
            None,
            (
                ("--energy", "10GeV", "--n", "3"),
                ("--energy", "1GeV:1TeV", "--n", "5"),
                ("--energies-from", "a.h5"),
                ("--energies-from", "link.h5", "--n", "5"),
            ),
            (
                (),
                ("--energy", "10GeV"),
                ("--n", "3"),
                ("--energy", "10GeV", "--n", "0"),
                ("--energy", "10GeV", "--n", "-3"),
                ("--energy", "10GeV", "--n", str(10**13)),
                ("--energy", "abc", "--n", "3"),
                ("--energies-from", "a.h5", "--energy", "10GeV", "--n", "3"),
                ("--energies-from", "a.h5", "--n", "100"),
                *(("--energies-from", f) for f in BAD_INPUTS),
            ),
        ),
        Opt("--batch-size", (OMIT, "5"), ("0", "-1")),
        Opt("--seed", SEEDS, BAD_SEEDS),
        Opt("--shard", (OMIT, "1/2", "2/2"), ("0/0", "9/8", "abc", "")),
        Opt("--steps", (OMIT, "4"), ("0", "-1")),
        Opt("--solver", (OMIT, "euler"), ("nope",)),
        Opt("--device", (OMIT, "cpu"), (*BAD_DEVICES, *MAYBE_DEVICES)),
        Opt("--compression", (OMIT, "gzip", "none"), ("zstd",)),
        PROGRESS,
    ),
    ins=frozenset({"--energies-from"}),
    outs=frozenset({"--out"}),
)
BENCH_FRONT = Spec(
    ("bench", "front"),
    (
        Opt("--geometry", ("1-photons",), ("2", "nope")),
        Opt("--train", GOOD_INPUTS, BAD_INPUTS),
        Opt("--reference", GOOD_INPUTS, BAD_INPUTS),
        Opt(
            "--out",
            ("newfront", "dir"),
            ("run", "loop.h5", "dangling.h5", LONG, TOO_LONG),
            FILE_NOT_DIRS,
        ),
        Opt("--models", (OMIT, "cfm", "cfm,vae"), ("", "nope", ",")),
        Opt("--runs", (OMIT, "runs", "dir"), ("a.h5", "run")),
        Opt("--train-time", (OMIT, "1s"), (), ("abc", "0", "-5m", "nan")),
        Opt("--repeats", (OMIT, "1"), ("0", "-1")),
        Opt("--device", (OMIT, "cpu"), MAYBE_DEVICES, BAD_DEVICES),
        Opt("--preset", (OMIT, "tiny"), ("nope",)),
        Opt("--batch-sizes", (OMIT, "1", "1,100"), (), ("0", "abc", "", "1,-1")),
        Opt("--sampling", (OMIT, "cfm:steps=2"), ("vae:steps=2",), ("nope", "cfm:", ":=")),
    ),
    ins=frozenset({"--train", "--reference"}),
    outs=frozenset({"--out"}),
    needs_poison=True,
)
TIMING = Spec(
    ("timing",),
    (
        Opt("--geometry", ("2", "1-photons"), ("nope", "1-pions", "")),
        Opt(
            None,
            (("--engine", "gflash"), ("--callable", "showerdata:toy_generator")),
            (
                (),
                ("--engine", "nope"),
                ("--callable", "math:pi"),
                ("--callable", "nomod_xyz:f"),
                ("--callable", "bad"),
                ("--engine", "gflash", "--callable", "showerdata:toy_generator"),
                *(("--run", r) for r in ("run", "badrun", "dir", "a.h5", "missing")),
            ),
        ),
        Opt("--steps", (OMIT, "1"), ("0", "-1")),
        Opt("--device", (OMIT, "cpu"), (*BAD_DEVICES, *MAYBE_DEVICES)),
        Opt("--particle", (OMIT, "electron", "photon"), ("muon", "")),
        Opt("--energy", (OMIT, "10GeV", "1GeV:1TeV", "ds1"), ENERGY_BAD),
        # always given: the default 1,100,10000 takes seconds
        Opt("--batch-sizes", ("1", "1,2"), ("0", "-1", "abc", "", "1,,2", str(10**13))),
        Opt("--repeats", ("1", "2"), ("0", "-1", "abc")),
        Opt("--warmup", (OMIT, "0", "1"), ("-1",)),
        Opt("--seed", SEEDS, BAD_SEEDS),
        Opt("--out", (OMIT, "t.json", *FREE_OUTS, *ALIAS_OUTS, "run/t.json"), NOT_FILES),
        JSON,
    ),
    outs=frozenset({"--out"}),
)
INTEGRATE = Spec(
    ("integrate",),
    (
        Opt("--integrand", ("camel", "ring", "ee-mumu", "dy3-mc"), (), ("nope", "")),
        Opt("--dim", (OMIT, "2", "5"), (), ("0", "-1", "1000000", "abc")),
        Opt("--method", (OMIT, "nis", "vegas", "uniform"), (), ("nope", "")),
        Opt("--calls", (OMIT, "1000", "0"), (), ("-3", str(10**13), "abc")),
        Opt("--eval-calls", (OMIT, "1000", "100"), (), ("99", "0", "-5", str(10**13))),
        Opt("--seed", SEEDS, (), BAD_SEEDS),
        # training options: checked only when the method trains a flow (nis)
        Opt("--loss", (OMIT, "variance", "kl"), ("nope",)),
        Opt("--buffered-steps", (OMIT, "0", "3"), ("-1",), ("abc",)),
        Opt("--vegas-fraction", (OMIT, "0.2", "0"), ("nan", "1", "-0.5"), ("abc",)),
        _flag("--strict"),
        _flag("--allow-negative"),
        JSON,
    ),
    needs_poison=True,
)
EVENTS = Spec(
    ("events",),
    (
        Opt("--process", ("ee-mumu", "ee-qqg"), (), ("nope", "")),
        Opt("--n", ("1", "5"), (), BAD_COUNTS),
        Opt(
            "--out",
            ("e.lhe", "e.h5", "e.hdf5", f"{ROOT}/e.lhe", "a.h5", "old.h5", "link.h5"),
            ("x" * 250 + ".lhe", "y" * 300 + ".lhe", "loop.h5"),
            ("e.txt", "dir", "", ".lhe", "dir.lhe", "nodir/e.lhe", "a.h5.txt", "run"),
        ),
        Opt("--method", (OMIT, "nis", "vegas", "uniform"), (), ("nope",)),
        Opt("--calls", (OMIT, "1000", "0", "-3"), (), (str(10**13), "abc")),
        Opt("--seed", SEEDS, (), BAD_SEEDS),
        Opt("--overweight", (OMIT, "0.001"), ("-1", "nan", "2")),
    ),
    outs=frozenset({"--out"}),
    needs_poison=True,
)


@st.composite
def cases(draw: st.DrawFn, spec: Spec) -> Case:
    """Mostly accepted values with zero to two refused ones; with ``needs_poison``,
    always one value that is refused before any work (plus up to one refused one)."""
    badable = [i for i, o in enumerate(spec.opts) if o.bad or o.poison]
    poisoned: set[int] = set()
    if spec.needs_poison:
        poisoned = {draw(st.sampled_from([i for i, o in enumerate(spec.opts) if o.poison]))}
        bad = poisoned | draw(st.sets(st.sampled_from(badable), max_size=1))
    else:
        bad = draw(st.sets(st.sampled_from(badable), max_size=2))
    argv: list[str] = [*draw(st.sampled_from(((), (), ("-v",)))), *spec.command]
    inputs: list[str] = []
    outputs: list[str] = []
    for i, opt in enumerate(spec.opts):
        if i in poisoned:
            menu = list(opt.poison)
        elif i in bad:
            menu = [*opt.bad, *opt.poison]
        else:
            menu = list(opt.good)
        if opt.many:
            values = draw(st.lists(st.sampled_from(list(opt.good)), min_size=1, max_size=3))
            if i in bad:
                values.insert(draw(st.integers(0, len(values))), draw(st.sampled_from(menu)))
        else:
            values = [draw(st.sampled_from(menu))]
        for v in values:
            if v is OMIT:
                continue
            if isinstance(v, tuple):
                argv.extend(v)
            elif opt.name is None:
                argv.append(v)
                if opt.role == "in":
                    inputs.append(v)
            else:
                argv.extend((opt.name, v))
    for k, tok in enumerate(argv[:-1]):
        value = argv[k + 1]
        if tok in spec.ins:
            inputs.append(value.partition("=")[2] if tok == "--extra" else value)
        elif tok in spec.outs:
            outputs.append(value)
    return Case(tuple(argv), tuple(inputs), tuple(outputs))


# ------------------------------------------------------------------ the properties


def _rel(root: Path, value: str) -> str:
    """The sandbox-relative form of a path argument (not resolving links)."""
    p = os.path.normpath(os.path.join(root, value.replace(ROOT, str(root))))
    return Path(os.path.relpath(p, root)).as_posix()


def _outputs(root: Path, values: Sequence[str]) -> list[str]:
    """Sandbox-relative output paths; a link to a folder also names the folder."""
    outs = [_rel(root, v) for v in values]
    for o in list(outs):
        with contextlib.suppress(OSError):  # e.g. a name too long for the file system
            if (root / o).is_symlink() and (root / o).is_dir():
                outs.append(Path(os.path.relpath(os.path.realpath(root / o), root)).as_posix())
    return outs


def _under(rel: str, outs: list[str]) -> bool:
    return any(o == "." or rel == o or rel.startswith(o + "/") for o in outs)


def _invoke(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except Exception:  # what the console script would print (and exit 1)
            traceback.print_exc()
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def check_case(case: Case) -> None:
    """Run ``case`` in a fresh sandbox and assert the five properties."""
    with tempfile.TemporaryDirectory(prefix="physgen-fuzz-") as d:
        root = Path(d).resolve()
        _populate(root)
        argv = [a.replace(ROOT, str(root)) for a in case.argv]
        before = _snapshot(root)
        outs = _outputs(root, case.outputs)
        inputs = {v: _content(root / _rel(root, v)) for v in case.inputs}
        with _cwd(root):
            rc, out, err = _invoke(argv)
        after = _snapshot(root)
        where = f"\n$ {case!r}\nexit status {rc}\n--- stderr\n{err}--- stdout\n{out[-2000:]}"

        # 1. no traceback
        assert "Traceback" not in err and "Traceback" not in out, "traceback" + where
        # 2. exit status
        assert rc in (0, 2), "exit status not in {0, 2}" + where
        # 3. one error line, or a click usage error
        if rc == 2:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            assert lines, "status 2 without a message" + where
            last = lines[-1]
            if last.startswith("error: "):
                n_err = sum(ln.startswith("error: ") for ln in lines)
                others = [
                    ln for ln in lines if not ln.startswith(("error: ", "warning: ", "info: "))
                ]
                assert n_err == 1 and not others, "error message is not one line" + where
            else:
                assert last.startswith("Error:") and any(ln.startswith("Usage:") for ln in lines), (
                    "status 2 without 'error: ...' or a usage error" + where
                )
        # 4. inputs byte-identical (links followed)
        for v, digest in inputs.items():
            assert _content(root / _rel(root, v)) == digest, f"input {v} changed" + where
        # 5. nothing left behind
        stray = [p for p in after if TMP_RE.match(p.rsplit("/", 1)[-1])]
        assert not stray, f"temporary files left: {stray}" + where
        if rc != 0:
            new = sorted(set(after) - set(before))
            changed = sorted(p for p in before if after.get(p) != before[p])
            assert not new and not changed, (
                f"failed but created {new} / changed or removed {changed}" + where
            )
        else:
            new = sorted(p for p in set(after) - set(before) if not _under(p, outs))
            changed = sorted(p for p in before if after.get(p) != before[p] and not _under(p, outs))
            assert not new and not changed, (
                f"created {new} / changed or removed {changed} besides the output {outs}" + where
            )


def _fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------------- the tests
# One test per command, so that a defect in one command does not hide the others.


@_fuzz(25)
@given(cases(GEOMETRY))
def test_fuzz_geometry(case: Case) -> None:
    check_case(case)


@_fuzz(40)
@given(cases(INFO))
def test_fuzz_info(case: Case) -> None:
    check_case(case)


@_fuzz(40)
@given(cases(VALIDATE))
def test_fuzz_validate(case: Case) -> None:
    check_case(case)


@_fuzz(80)
@given(cases(MERGE))
def test_fuzz_merge(case: Case) -> None:
    check_case(case)


@_fuzz(60)
@given(cases(SIMULATE))
def test_fuzz_simulate(case: Case) -> None:
    check_case(case)


@_fuzz(50)
@given(cases(EVALUATE))
def test_fuzz_evaluate(case: Case) -> None:
    check_case(case)


@_fuzz(50)
@given(cases(TRAIN))
def test_fuzz_train(case: Case) -> None:
    check_case(case)


@_fuzz(60)
@given(cases(GENERATE))
def test_fuzz_generate(case: Case) -> None:
    check_case(case)


@_fuzz(40)
@given(cases(BENCH_FRONT))
def test_fuzz_bench_front(case: Case) -> None:
    check_case(case)


@_fuzz(60)
@given(cases(TIMING))
def test_fuzz_timing(case: Case) -> None:
    check_case(case)


@_fuzz(50)
@given(cases(INTEGRATE))
def test_fuzz_integrate(case: Case) -> None:
    check_case(case)


@_fuzz(50)
@given(cases(EVENTS))
def test_fuzz_events(case: Case) -> None:
    check_case(case)


# ------------------------------------------------------------------ found defects
# Invocations that broke the properties when this file was written, kept as
# deterministic cases: the fuzzer's fixed example budget may not draw them again.


def _c(*argv: str, ins: Sequence[str] = (), outs: Sequence[str] = ()) -> Case:
    return Case(tuple(argv), tuple(ins), tuple(outs))


_SIM = tuple(shlex.split("simulate --engine gflash --geometry 2 --particle electron --n 2"))
_EVAL = ("--geometry", "1-photons", "--mode", "avg", "--no-plots")
_TIMING = tuple(shlex.split("timing --geometry 2 --engine gflash --batch-sizes 1 --repeats 1"))
FOUND = {
    # a symbolic link that points to itself, as input or output: RuntimeError (Python < 3.13)
    "loop-merge-out": _c("merge", "a.h5", "-o", "loop.h5", ins=["a.h5"], outs=["loop.h5"]),
    "loop-merge-in": _c("merge", "loop.h5", "-o", "new.h5", outs=["new.h5"]),
    "loop-evaluate-in": _c("evaluate", "loop.h5", "b.h5", *_EVAL, "-o", "ev", ins=["b.h5"]),
    "loop-evaluate-out": _c("evaluate", "a.h5", "b.h5", *_EVAL, "-o", "loop.h5", ins=["a.h5"]),
    "loop-generate-out": _c("generate", "run", "--out", "loop.h5", "--n", "2", "--energy", "1GeV"),
    "loop-generate-in": _c("generate", "run", "--out", "g.h5", "--energies-from", "loop.h5"),
    "loop-train-out": _c(
        *("train", "--data", "a.h5", "--out", "loop.h5"),
        *("--model", "cfm", "--geometry", "1-photons"),
        ins=["a.h5"],
    ),
    "loop-bench-front-in": _c(
        *("bench", "front", "--geometry", "1-photons", "--train", "loop.h5"),
        *("--reference", "b.h5", "--out", "newfront", "--batch-sizes", "0"),
        ins=["b.h5"],
    ),
    # the current folder as evaluate's output: ValueError from the staging folder's name
    "evaluate-out-dot": _c("evaluate", "a.h5", "b.h5", *_EVAL, "-o", ".", outs=["."]),
    "evaluate-out-empty": _c("evaluate", "a.h5", "b.h5", *_EVAL, "-o", "", outs=[""]),
    # a legal 253-character output name: its temporary name is too long (after the work)
    "long-name-merge": _c("merge", "a.h5", "-o", LONG, ins=["a.h5"], outs=[LONG]),
    "long-name-simulate": _c(*_SIM, "--energy", "10GeV", "--out", LONG, outs=[LONG]),
    "long-name-timing": _c(*_TIMING, "--out", LONG, outs=[LONG]),
    "long-name-evaluate": _c("evaluate", "a.h5", "b.h5", *_EVAL, "-o", LONG, outs=[LONG]),
    # a name longer than the file system allows: OSError instead of an error line
    "too-long-info": _c("info", TOO_LONG),
    "too-long-merge": _c("merge", "a.h5", "-o", TOO_LONG, ins=["a.h5"]),
    "too-long-events": _c(
        "events", "--process", "ee-mumu", "--n", "0", "--out", "y" * 300 + ".lhe"
    ),
    # sizes that cannot fit in memory: MemoryError instead of an error line
    "huge-timing-batch": _c(
        "timing", "--geometry", "2", "--engine", "gflash", "--batch-sizes", str(10**13)
    ),
    "huge-generate-n": _c(
        "generate", "run", "--out", "g.h5", "--n", str(10**13), "--energy", "1GeV"
    ),
    # an energy outside every detector's range: ValueError inside GFlash
    "timing-energy-1e30MeV": _c(*_TIMING, "--energy", "1e30MeV"),
}


@pytest.mark.parametrize("case", list(FOUND.values()), ids=list(FOUND))
def test_found_defects(case: Case) -> None:
    check_case(case)
