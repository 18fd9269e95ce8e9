"""Running a job as K independent tasks on a Dask cluster, each writing one part file.

The driver (:class:`PartsJob`) keeps the parts in a folder next to the output,
``<out>.parts/``, with ``plan.json`` recording the job's settings. Each task writes its
part atomically (a temporary name renamed when complete), so a part file that exists is
whole. The driver yields the parts *in task order* as they become available (any task may
finish first), so that the caller writes the output exactly as a single process would,
and removes the folder only after the output has been written (:meth:`PartsJob.cleanup`).

Failures:

* a worker that dies mid-task (killed, out of memory, its node lost) is noticed by the
  scheduler, which runs the task again elsewhere; the killed attempt left at most a
  temporary file, never a part;
* a driver that dies leaves the parts: the same command again finds ``plan.json`` equal
  to its own settings and submits only the missing parts (it logs how many it reuses);
  a folder from other settings is removed, with a warning that the job starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from physgen import outputs
from physgen.errors import ConfigError, PhysgenError

__all__ = ["PartsJob", "parts_dir"]

log = logging.getLogger(__name__)

_PLAN = "plan.json"


def parts_dir(out: str | Path) -> Path:
    """The folder of a job's part files: ``<out>.parts`` beside the output."""
    p = Path(out)
    return p.with_name(p.name + ".parts")


class PartsJob:
    """K tasks on a cluster, each writing part ``i`` of a job whose output is ``out``.

    Args:
        client: A ``distributed.Client``.
        out: The job's final output (the parts folder is :func:`parts_dir` of it).
        plan: Everything that determines the parts' content (JSON-serialisable); a parts
            folder with another plan is not reused.
        rows: ``[start, stop)`` of each part among the job's rows (the progress bar counts
            rows).
        task: Picklable ``task(*args, index, (start, stop), path)`` that writes part
            ``index``, rows ``[start, stop)``, to ``path`` atomically (run on the workers; a
            module-level function).
        args: Leading arguments of every task call; Dask futures among them (scattered
            data: scatter with ``broadcast=True``, so that a dying worker takes no only copy
            with it) are resolved on the workers.
        check_part: ``check_part(index, path) -> bool``: whether an existing part of a
            previous run is complete and belongs to this job (on the driver).
        desc: Progress-bar label.
        unit: Progress-bar unit.
        progress: Show the bar (None: only on a terminal).
        retries: Times a task that *raised* is tried again (a task whose worker died is
            always rescheduled by the scheduler, up to its ``allowed-failures``).
    """

    def __init__(
        self,
        client: Any,
        out: str | Path,
        plan: Mapping[str, Any],
        rows: Sequence[tuple[int, int]],
        task: Callable[..., Any],
        args: Sequence[Any] = (),
        *,
        check_part: Callable[[int, Path], bool] | None = None,
        desc: str = "tasks",
        unit: str = "row",
        progress: bool | None = None,
        retries: int = 1,
    ) -> None:
        self.client = client
        self.out = Path(out).resolve()  # workers elsewhere resolve paths against their own cwd
        self.dir = parts_dir(self.out)
        self.plan = json.loads(json.dumps(dict(plan), sort_keys=True, default=str))
        self.rows = [(int(a), int(b)) for a, b in rows]
        self.task, self.args = task, tuple(args)
        self.check_part = check_part
        self.desc, self.unit, self.progress, self.retries = desc, unit, progress, retries
        # the output path is part of the task keys: runs of the same settings into other files
        # on one scheduler must not share tasks
        token = json.dumps([self.plan, self.rows, str(self.out)], sort_keys=True)
        self.token = hashlib.sha256(token.encode()).hexdigest()[:12]
        self.reused = 0

    def path(self, index: int) -> Path:
        """Part file ``index`` (0-based)."""
        return self.dir / f"part-{index:06d}-of-{len(self.rows):06d}.h5"

    def _prepare(self) -> list[int]:
        """Create or reuse the parts folder; the indices still to run."""
        record = {"plan": self.plan, "rows": [list(r) for r in self.rows], "token": self.token}
        plan_file = self.dir / _PLAN
        done: list[int] = []
        if self.dir.exists() or self.dir.is_symlink():
            try:
                recorded = json.loads(plan_file.read_text())
            except (OSError, ValueError):
                recorded = None
            if not self.dir.is_dir() or self.dir.is_symlink() or not isinstance(recorded, dict):
                raise ConfigError(
                    f"{self.dir} exists and is not a physgen parts folder (no readable "
                    "plan.json): move it away, a --cluster run keeps its parts there"
                )
            same = recorded == record
            if same:
                for i in range(len(self.rows)):
                    p = self.path(i)
                    if p.is_file() and (self.check_part is None or self.check_part(i, p)):
                        done.append(i)
                    elif p.exists():
                        p.unlink()
                log.warning(
                    "%s: resuming: %d of %d parts already written by an earlier run with the "
                    "same settings",
                    self.dir,
                    len(done),
                    len(self.rows),
                )
            else:
                log.warning(
                    "%s holds parts of a run with other settings: removing it and starting over",
                    self.dir,
                )
                shutil.rmtree(self.dir)
        if not self.dir.exists():
            self.dir.mkdir()
            outputs.atomic_write_text(plan_file, json.dumps(record, indent=1, sort_keys=True))
        self.reused = len(done)
        have = set(done)
        return [i for i in range(len(self.rows)) if i not in have]

    def run(self) -> Iterator[tuple[int, Path]]:
        """Submit the missing parts; yield ``(index, path)`` of every part in index order as
        soon as it and all before it exist.

        Raises:
            PhysgenError: A task failed (its error, with the part named), or its workers kept
                dying (``KilledWorker``).
        """
        from distributed import as_completed
        from tqdm.auto import tqdm

        todo = self._prepare()
        if not self.client.nthreads():
            log.warning("%s: no Dask worker is connected yet: waiting for one", self.desc)
        n_rows = sum(b - a for a, b in self.rows)
        futures: dict[Any, int] = {}
        for i in todo:
            fut = self.client.submit(
                self.task,
                *self.args,
                i,
                self.rows[i],
                str(self.path(i)),
                key=f"physgen-{self.desc}-{self.token}-part-{i}",
                pure=False,
                retries=self.retries,
            )
            futures[fut] = i
        ready = set(range(len(self.rows))) - set(todo)
        done_rows = sum(b - a for i, (a, b) in enumerate(self.rows) if i in ready)
        nxt = 0
        t0 = time.perf_counter()
        finished = as_completed(list(futures))
        complete = False
        with tqdm(
            total=n_rows,
            initial=done_rows,
            unit=self.unit,
            desc=self.desc,
            disable=True if self.progress is False else None,
            smoothing=0.05,
        ) as bar:
            try:
                while True:
                    while nxt < len(self.rows) and nxt in ready:
                        yield nxt, self.path(nxt)
                        nxt += 1
                    if nxt == len(self.rows):
                        break
                    batch = finished.next_batch(block=False)
                    if not batch:
                        outputs.raise_if_interrupted()
                        time.sleep(0.1)
                        continue
                    for fut in batch:
                        i = futures[fut]
                        self._result(fut, i)
                        ready.add(i)
                        bar.update(self.rows[i][1] - self.rows[i][0])
                complete = True
            finally:
                if not complete:
                    for fut in futures:
                        fut.cancel()
                    log.warning("%s: the parts written so far stay in %s: the same command "
                                "resumes from them", self.desc, self.dir)  # fmt: skip
        log.info(
            "%s: %d parts (%d reused) in %.1f s", self.desc, len(self.rows), self.reused,
            time.perf_counter() - t0,
        )  # fmt: skip

    def _result(self, fut: Any, index: int) -> None:
        from distributed import CancelledError, KilledWorker

        try:
            fut.result()
        except CancelledError:
            raise PhysgenError(
                f"part {index + 1}/{len(self.rows)} was cancelled by the scheduler (lost "
                f"connection?); parts written so far are kept in {self.dir} for a re-run"
            ) from None
        except KilledWorker as exc:
            raise PhysgenError(
                f"part {index + 1}/{len(self.rows)}: the workers running it kept dying "
                f"({exc}); parts written so far are kept in {self.dir} for a re-run"
            ) from None
        except PhysgenError:
            raise
        except Exception as exc:
            raise PhysgenError(
                f"part {index + 1}/{len(self.rows)} failed on a worker: {type(exc).__name__}: {exc}"
            ) from exc
        if not self.path(index).is_file():
            raise PhysgenError(
                f"part {index + 1}/{len(self.rows)}: the task finished but {self.path(index)} "
                "does not exist: do the workers share this file system with the driver?"
            )

    def cleanup(self) -> None:
        """Remove the parts folder (after the output was written)."""
        shutil.rmtree(self.dir, ignore_errors=True)
