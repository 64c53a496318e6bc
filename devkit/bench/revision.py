"""Which service code a benchmark's workers run: this checkout, or an earlier revision.

The service has one poll planner and one call order (issue 21); the ones it had before live
in their revisions, and a benchmark compares against them by running its workers from a git
worktree of the revision. A spec is `current` (this checkout) or `REV[:NAME=VALUE,...]`:

- REV is any git revision of this repository (a hash, a tag, `main~3`); its commit is checked
  out once, detached, in `<temp>/dsp-bench-revisions/<hash>` and reused by later runs;
- NAME=VALUE pairs are laid over the workers' environment: the switches that revision still
  read, e.g. `b8ed4d7:DSP_POLL_STRATEGY=adaptive` or `b8ed4d7:DSP_CALL_ORDER=tiers`.

Only the workers (`worker.py` of the revision, on this venv) change: Temporal, the database and
its schema, the mock DSP, the client that submits and the measurements stay this checkout's,
so both sides meet the same workload and are measured alike. The revision must therefore
read the same database schema and workflow inputs as this checkout; for an older one, run the
whole bench from its worktree (devkit/bench/RESULTS.md, "Running the benchmarks").
`git worktree remove <path>` (or deleting the folder and `git worktree prune`) drops one."""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dsp_integration.config.settings import PROJECT_ROOT

CURRENT = "current"
REVISIONS_DIR = Path(tempfile.gettempdir()) / "dsp-bench-revisions"
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass(frozen=True)
class WorkerCode:
    """The code the workers run: `revision` None is this checkout."""

    revision: str | None = None
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> WorkerCode:
        """`current`, or `REV` with optional `:NAME=VALUE,...` (refused for `current`: this
        checkout reads no switches)."""
        revision, _, settings = spec.partition(":")
        if not revision:
            raise ValueError(f"{spec!r}: no revision before ':'")
        pairs = [pair.partition("=") for pair in settings.split(",") if pair]
        if any(not name or not sep for name, sep, _ in pairs):
            raise ValueError(f"{spec!r}: write the switches as NAME=VALUE,NAME=VALUE")
        env = tuple((name, value) for name, _, value in pairs)
        if revision == CURRENT:
            if env:
                raise ValueError(f"{spec!r}: the current code has no switches to set")
            return cls()
        return cls(revision, env)

    @property
    def label(self) -> str:
        """A name for file names and tables: `current`, or the revision and the switches set
        (`b8ed4d7-poll_strategy=adaptive`)."""
        if self.revision is None:
            return CURRENT
        switches = [f"{name.lower().removeprefix('dsp_')}={value}" for name, value in self.env]
        return _LABEL_UNSAFE.sub("_", "-".join([self.revision, *switches]))

    def root(self) -> Path:
        """The folder whose `worker.py` the workers run, checked out first if need be."""
        if self.revision is None:
            return PROJECT_ROOT
        commit = _git("rev-parse", "--verify", f"{self.revision}^{{commit}}")
        path = REVISIONS_DIR / commit[:12]
        if not (path / "worker.py").exists():
            REVISIONS_DIR.mkdir(parents=True, exist_ok=True)
            _git("worktree", "add", "--detach", str(path), commit)
        return path


def worker_code_argument(spec: str) -> WorkerCode:
    """`WorkerCode.parse` for argparse's `type=`: a bad spec is a usage error with its reason."""
    try:
        return WorkerCode.parse(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()
