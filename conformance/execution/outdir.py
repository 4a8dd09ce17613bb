"""The output folder of a run: one run at a time, nothing of the previous run lost.

- `.lock` is held (flock) for the whole run; a second run into the folder is an
  input error naming the holder.  The kernel drops the lock however the holder dies.
- A run appends to `results.partial.jsonl`; only when it ends (finished or
  interrupted) does that file replace `results.jsonl`, and the reports are
  written under temporary names and renamed.  A run killed outright leaves the
  previous `results.jsonl` in place beside its own partial file, which
  `--resume` continues.
- Reports are pure functions of `results.jsonl`, so a new run deletes the old
  ones at its start: a report on disk never describes other results than the
  `results.jsonl` beside it.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from pathlib import Path

from conformance.errors import UsageError

RESULTS = "results.jsonl"
PARTIAL = "results.partial.jsonl"
LOCK = ".lock"
LOGS = "logs"
REPORTS = ("report.json", "report.md", "report.html", "junit.xml")
STALE_PREFIX = ".cases-"  # the runner's temporary folders, under logs/


class OutputFolder:
    """Opened with `acquire()`, which validates the folder before anything in it changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_file = None

    # -- paths -----------------------------------------------------------------------
    @property
    def results(self) -> Path:
        return self.path / RESULTS

    @property
    def partial(self) -> Path:
        return self.path / PARTIAL

    @property
    def logs(self) -> Path:
        return self.path / LOGS

    def previous_run(self) -> Path | None:
        """The results a --resume continues: an unfinished run's partial file first."""
        for p in (self.partial, self.results):
            if p.is_file():
                return p
        return None

    def _held_by_previous_run(self) -> list[str]:
        names = [RESULTS, PARTIAL, *REPORTS]
        found = [n for n in names if (self.path / n).exists()]
        if self.logs.is_dir() and any(self.logs.iterdir()):
            found.append(LOGS + "/")
        return found

    # -- opening -----------------------------------------------------------------------
    def acquire(self, mode: str, beside: Path | None = None) -> None:
        """Lock the folder; `mode` is "new", "overwrite" or "resume" (a run, fuzz or merge
        writing results) or "render" (report or diff writing beside results).

        UsageError (nothing changed) if the folder is not writable, in use, is not
        empty and mode is "new", has a folder where a file goes, or (with `beside`,
        the results file reports will describe) holds other results."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            created = not (self.path / LOCK).exists()
            self._lock_file = open(self.path / LOCK, "a+")
        except OSError as exc:
            raise UsageError(f"output folder {self.path} is not writable ({exc.strerror or exc}); choose another with --out") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            holder = " ".join(self._lock_file.read().split())[:300] or "another process"
            self._lock_file.close()
            self._lock_file = None
            raise UsageError(f"output folder {self.path} is in use by another run ({holder}); "
                             "wait for it to end or choose another --out") from None
        try:
            self._check_layout()
            if beside is not None:
                self._check_beside(beside)
            previous = self._held_by_previous_run()
            if previous and mode == "new":
                command = os.path.basename(sys.argv[1]) if len(sys.argv) > 1 else "run"
                if command == "run":
                    hint = " (an unfinished run: --resume continues it)" if self.partial.exists() else ""
                    choices = "use --resume to continue it, --overwrite to replace it"
                else:
                    hint, choices = "", "use --overwrite to replace it"
                raise UsageError(f"output folder {self.path} already holds a run ({', '.join(previous)}){hint}; "
                                 f"{choices}, or another --out")
            ours = {RESULTS, PARTIAL, LOCK, LOGS, *REPORTS}
            foreign = sorted(p.name for p in self.path.iterdir() if p.name not in ours)
            if foreign and mode == "new":
                raise UsageError(f"output folder {self.path} is not empty ({', '.join(foreign[:3])}"
                                 f"{', ...' if len(foreign) > 3 else ''}); choose a new folder with --out, or "
                                 "--overwrite to write the run's files beside what is there")
            self._lock_file.seek(0)
            self._lock_file.truncate()
            command = " ".join(sys.argv)[:200].encode("utf-8", "backslashreplace").decode()  # argv may hold any bytes
            self._lock_file.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
            self._lock_file.flush()
        except OSError as exc:
            self.release()
            raise UsageError(f"output folder {self.path} is not writable ({exc.strerror or exc}); choose another with --out") from None
        except UsageError:
            if created:  # refused: leave the folder as it was
                (self.path / LOCK).unlink(missing_ok=True)
            self.release()
            raise

    def _check_layout(self) -> None:
        for name in (RESULTS, PARTIAL, *REPORTS):
            p = self.path / name
            if p.exists() and not p.is_file():
                raise UsageError(f"{p} exists and is not a file; remove it or choose another --out")
        if self.logs.exists() and not self.logs.is_dir():
            raise UsageError(f"{self.logs} exists and is not a folder; remove it or choose another --out")
        probe = self.path / ".write-test"
        probe.write_text("")
        probe.unlink()

    def _check_beside(self, results_file: Path) -> None:
        """Reports go beside the results they describe: refuse a folder holding other results."""
        mine = self.results
        if mine.exists() and not (results_file.exists() and mine.samefile(results_file)):
            raise UsageError(f"{self.path} holds other results ({mine.name}); reports of {results_file} would sit "
                             "beside results they do not describe: choose another --out")

    def start(self, mode: str) -> None:
        """Clear what the new run replaces: stale reports, and logs unless resuming."""
        for name in REPORTS:
            (self.path / name).unlink(missing_ok=True)
        if mode != "resume":
            shutil.rmtree(self.logs, ignore_errors=True)
            self.partial.unlink(missing_ok=True)
        self.logs.mkdir(exist_ok=True)
        for stale in self.logs.glob(STALE_PREFIX + "*"):  # left by a run that was killed outright
            shutil.rmtree(stale, ignore_errors=True)

    def discard(self) -> None:
        """Drop this run's partial results (it has none to keep)."""
        self.partial.unlink(missing_ok=True)

    def finish(self) -> None:
        """The partial results become the folder's results (atomically)."""
        os.replace(self.partial, self.results)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing drops the flock
            self._lock_file = None


def write_atomic(path: Path, text: str) -> None:
    """Write `path` under a temporary name and rename it: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")  # paths in reports may hold any bytes
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
