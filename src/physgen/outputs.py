"""What physgen guarantees about a user's files: one output guard, one way to write, one cleanup.

Every command that writes goes through three pieces, so that no command can eat
its own input, leave half a file at the target, or leave hidden temporary files
behind:

* :func:`check_output` - the guard, run before any work starts: the output's
  folder exists, the output is of the expected kind (file or folder), it is not
  the same file as an input (resolved paths, symbolic and hard links) and does
  not lie inside a run directory being read. The path is remembered as this
  process's output for the interruption message.
* :func:`atomic_path` - every write goes to a temporary name in the target's
  folder, ``.NAME.tmp-PID-HEX``, renamed onto the target only on success. The
  temporary is registered while it exists; an exception, Ctrl-C or SIGTERM
  removes it, and a full disk becomes :class:`DiskFullError` naming the target.
  A temporary left by a killed (``kill -9``) process is recognised by its name
  and dead PID and removed by the next write to the same target.
* :func:`handle_signals` - SIGINT and SIGTERM become :class:`Interrupted` (a
  ``KeyboardInterrupt``) and also set a flag that writers check, so an
  interrupt that Python swallows inside a destructor still stops the command.

Example:
    >>> from pathlib import Path; import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "result.json"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("{}")
    >>> target.read_text()
    '{}'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from physgen.checks import format_bytes
from physgen.errors import ConfigError, PhysgenError

__all__ = [
    "DiskFullError",
    "Interrupted",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_free_space",
    "check_output",
    "claimed_outputs",
    "clean_stale_temps",
    "deferred_signals",
    "handle_signals",
    "hard_exit_requested",
    "interrupt_requested",
    "interrupt_signal",
    "is_disk_full",
    "json_ready",
    "publish_staged",
    "quiet_disk_full_errors",
    "raise_if_interrupted",
    "remove_pending",
    "request_hard_exit",
    "reset",
    "staging_dir",
    "temp_name",
]

_TMP_RE = r"^\.{name}\.tmp-(\d+)-[0-9a-f]+$"
_pending: set[Path] = set()
_claimed: list[Path] = []
_lock = threading.Lock()
_interrupt = threading.Event()
_signum: list[int] = []
_hard_exit = threading.Event()
_previous_hook: list[Any] = []


class DiskFullError(PhysgenError):
    """The disk filled up while writing an output; the partial output was removed."""

    def __init__(self, target: Path | str, detail: str = "", *, outcome: str = "") -> None:
        self.target = Path(target)
        extra = f" ({detail})" if detail else ""
        what = outcome or "nothing written"
        super().__init__(f"disk full while writing {self.target}: {what}{extra}")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


# ------------------------------------------------------------------ the guard


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


#: Longest file name most file systems accept (bytes).
NAME_MAX = 255


def _check_name_lengths(p: Path, option: str) -> None:
    for part in p.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise ConfigError(
                f"{option} {str(p)[:60]}...: a file name of {len(os.fsencode(part))} bytes, "
                f"the file system allows {NAME_MAX}"
            )


def check_output(
    out: str | Path,
    option: str = "--out",
    *,
    inputs: Iterable[str | Path | None] = (),
    read_dirs: Iterable[str | Path | None] = (),
    kind: Literal["file", "dir"] = "file",
) -> Path:
    """Refuse, before any work, an output that could destroy data or cannot be written.

    Args:
        out: The output path.
        option: The option's name, for the message.
        inputs: Files the command reads; ``out`` must be none of them (paths are
            resolved and hard links recognised).
        read_dirs: Folders the command reads (run directories); ``out`` must not lie
            inside any of them.
        kind: ``"file"`` or ``"dir"`` (a folder to create or fill).

    Returns:
        ``out`` as a Path; it is also remembered for :func:`claimed_outputs`.

    Raises:
        ConfigError: One line naming the option, the path and what is wrong.
    """
    p = Path(out)
    if str(p).strip() == "":
        raise ConfigError(f"{option}: empty path")
    _check_name_lengths(p, option)
    if kind == "dir" and p.name in ("", ".", ".."):  # "-o ." : the folder itself, by name
        p = p.resolve()
    if p.is_symlink() and not p.exists():
        raise ConfigError(f"{option} {p}: is a broken symbolic link (or a link loop)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{option} {p}: folder {parent} does not exist")
    if kind == "file" and p.is_dir():
        raise ConfigError(f"{option} {p}: is a folder, expected a file name")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p}: is a file, expected a folder")
    for src in inputs:
        if src is None:
            continue
        s = Path(src)
        if _same_file(p, s):
            raise ConfigError(f"{option} {p}: is the input {s}; choose another output")
    for d in read_dirs:
        if d is None:
            continue
        if _inside(p, Path(d)):
            raise ConfigError(
                f"{option} {p}: lies inside the run directory {d} being read; write elsewhere"
            )
    with _lock:
        if p not in _claimed:
            _claimed.append(p)
    return p


def claimed_outputs() -> list[Path]:
    """Outputs checked by :func:`check_output` in this process (for messages)."""
    with _lock:
        return list(_claimed)


def check_free_space(target: str | Path, n_bytes: float, option: str = "--out") -> None:
    """Refuse a write of about ``n_bytes`` to ``target`` that cannot fit on its disk.

    Raises:
        DiskFullError: Not enough free space; the message says how much is needed.
    """
    t = Path(target)
    folder = t.parent if str(t.parent) else Path(".")
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if n_bytes > free:
        raise DiskFullError(
            t,
            f"{option} needs about {format_bytes(n_bytes)}, {format_bytes(free)} free in {folder}",
        )


# ---------------------------------------------------------- temporary files


def _stem(name: str) -> str:
    """``name``, or for a name too long to extend, its first 180 characters and a hash."""
    if len(os.fsencode(name)) <= NAME_MAX - 40:
        return name
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:10]
    return f"{os.fsencode(name)[:180].decode(errors='ignore')}~{digest}"


def temp_name(target: Path) -> Path:
    """The temporary sibling of ``target``: ``.NAME.tmp-PID-HEX`` in the same folder
    (NAME shortened with a hash when the target's name is near the 255-byte limit)."""
    if target.name in ("", ".", ".."):
        target = target.resolve()
    return target.with_name(f".{_stem(target.name)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def clean_stale_temps(target: str | Path) -> list[Path]:
    """Remove temporaries of ``target`` left by processes that no longer run.

    Only names of physgen's own pattern for exactly this target are touched
    (``.NAME.tmp-PID-HEX`` with PID not alive), never other files.

    Returns:
        The paths removed.
    """
    t = Path(target)
    if t.name in ("", ".", ".."):
        t = t.resolve()
    folder = t.parent if str(t.parent) else Path(".")
    pattern = re.compile(_TMP_RE.format(name=re.escape(_stem(t.name))))
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def is_disk_full(exc: BaseException) -> bool:
    """True for an error caused by a full disk or an exceeded quota (also inside h5py)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e).lower()
        if "no space left" in text or "disk quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


@contextlib.contextmanager
def atomic_path(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path that replaces ``target`` when the block ends cleanly.

    Args:
        target: The final file (or folder, with ``directory=True``).
        directory: Create the temporary as a folder; on success it replaces
            ``target`` (an existing folder at ``target`` is removed first).

    On any exception, including ``KeyboardInterrupt``, the temporary is removed and
    nothing changes at ``target``; a full disk is re-raised as
    :class:`DiskFullError`. Stale temporaries of ``target`` are removed first.

    Raises:
        DiskFullError: The disk filled up while writing.
    """
    t = Path(target)
    clean_stale_temps(t)
    tmp = temp_name(t)
    with _lock:
        _pending.add(tmp)
    try:
        if directory:
            tmp.mkdir()
        yield tmp
        raise_if_interrupted()
        if directory and t.is_dir() and not t.is_symlink():
            old = temp_name(t)
            with _lock:
                _pending.add(old)
            t.rename(old)
            tmp.rename(t)
            _remove(old)
            with _lock:
                _pending.discard(old)
        else:
            os.replace(tmp, t)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, PhysgenError) and is_disk_full(exc):
            raise DiskFullError(t) from exc
        raise
    finally:
        with _lock:
            _pending.discard(tmp)


@contextlib.contextmanager
def staging_dir(target: str | Path) -> Iterator[Path]:
    """A registered temporary folder beside ``target``, always removed at the end.

    For outputs that are folders filled file by file (``evaluate``): stage there,
    then move the finished files into ``target``.
    """
    t = Path(target)
    clean_stale_temps(t)
    tmp = temp_name(t)
    with _lock:
        _pending.add(tmp)
    try:
        tmp.mkdir()
        yield tmp
    except Exception as exc:
        if not isinstance(exc, PhysgenError) and is_disk_full(exc):
            raise DiskFullError(t) from exc
        raise
    finally:
        _remove(tmp)
        with _lock:
            _pending.discard(tmp)


def publish_staged(stage: Path, out: Path, *, created: bool, last: str | None = None) -> None:
    """Move every file of a :func:`staging_dir` ``stage`` into the folder ``out`` (created if
    missing; a rename when both lie in the same folder). ``last``: the name moved last (e.g.
    the report that links the others). On failure a folder ``out`` that this command
    ``created`` is removed again.

    Raises:
        Interrupted: A pending interrupt, before anything moves.
    """
    raise_if_interrupted()
    out.mkdir(exist_ok=True)
    try:
        for p in sorted(stage.iterdir(), key=lambda p: (p.name == last, p.name)):
            os.replace(p, out / p.name)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def json_ready(v: Any) -> Any:
    """``v`` with numpy scalars and arrays turned into Python numbers and lists, tuples into
    lists, and NaN/inf into None (strict JSON has neither)."""
    import math

    import numpy as np

    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_ready(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_ready(v.tolist())
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return json_ready(v.item())
    return v


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def remove_pending() -> None:
    """Remove every registered temporary (the CLI calls this when a command fails)."""
    with _lock:
        paths = list(_pending)
        _pending.clear()
    for p in paths:
        _remove(p)


def reset() -> None:
    """Forget claimed outputs and a past interrupt (start of a command)."""
    with _lock:
        _claimed.clear()
    _interrupt.clear()
    _signum.clear()


# ------------------------------------------------------------------ signals


def interrupt_signal() -> int:
    """The first signal received under :func:`handle_signals` (SIGINT if none)."""
    return _signum[0] if _signum else int(signal.SIGINT)


def request_hard_exit() -> None:
    """Ask the CLI to leave with ``os._exit``: HDF5 failed on a full disk, and its
    handles must not be flushed again at interpreter shutdown."""
    _hard_exit.set()
    quiet_disk_full_errors()


def hard_exit_requested() -> bool:
    """True after :func:`request_hard_exit`."""
    return _hard_exit.is_set()


def quiet_disk_full_errors() -> None:
    """Silence the full-disk errors that HDF5 objects raise while being deallocated.

    HDF5 retries a failed flush whenever one of its objects is freed; the error is
    already reported once (as :class:`DiskFullError`), so these copies are dropped.
    Every other unraisable error still reaches the previous hook.
    """
    if sys.unraisablehook is _quiet_unraisable:
        return
    _previous_hook.append(sys.unraisablehook)
    sys.unraisablehook = _quiet_unraisable


def _quiet_unraisable(unraisable: Any) -> None:
    exc = getattr(unraisable, "exc_value", None)
    if exc is not None and is_disk_full(exc):
        return
    (_previous_hook[-1] if _previous_hook else sys.__unraisablehook__)(unraisable)


def interrupt_requested() -> bool:
    """True once SIGINT/SIGTERM arrived under :func:`handle_signals`."""
    return _interrupt.is_set()


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` if a signal arrived (even one swallowed elsewhere)."""
    if _interrupt.is_set():
        raise Interrupted(_signum[0] if _signum else signal.SIGINT)


def _handler(signum: int, frame: object) -> None:
    if not _interrupt.is_set():
        _signum.append(signum)
    _interrupt.set()
    raise Interrupted(signum)


def _deferring_handler(signum: int, frame: object) -> None:
    first = not _interrupt.is_set()
    if first:
        _signum.append(signum)
    _interrupt.set()
    if not first:  # a second signal stops at once
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred_signals() -> Iterator[threading.Event]:
    """Inside the block, a first SIGINT or SIGTERM only sets the flag; a second raises.

    For loops that check :func:`raise_if_interrupted` often (the simulation driver, every
    0.25 s at most) and that run code where an exception raised at an arbitrary point
    would be swallowed or leave a lock held (multiprocessing's pool machinery, weakref
    callbacks): the interrupt then surfaces at a point the loop chose. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _interrupt
        return
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in sigs}
    outermost = all(h in (signal.default_int_handler, signal.SIG_DFL) for h in previous.values())
    if outermost:
        _interrupt.clear()
        _signum.clear()
    for sig in sigs:
        signal.signal(sig, _deferring_handler)
    try:
        yield _interrupt
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        if outermost:
            _interrupt.clear()
            _signum.clear()


@contextlib.contextmanager
def handle_signals() -> Iterator[threading.Event]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` and a flag, inside the block.

    Installed only in the main thread, and only over the default handlers (a
    nested call, or a host program with handlers of its own, leaves them alone).
    Yields the flag that is set on a signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield _interrupt
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if current in (signal.default_int_handler, signal.SIG_DFL):
            previous[sig] = current
            signal.signal(sig, _handler)
    if previous:  # the outermost scope: a fresh flag, and none left behind
        _interrupt.clear()
        _signum.clear()
    try:
        yield _interrupt
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        if previous:
            _interrupt.clear()
            _signum.clear()
