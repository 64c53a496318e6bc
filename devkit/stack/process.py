"""A child process that is started in its own session and always stopped.

Children get their own session so that a Ctrl-C in the terminal reaches only the
parent (`dev.py up`, pytest), which then stops them in order; an `atexit` hook stops
whatever is still running if the parent exits without doing so.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_RUNNING: set[ManagedProcess] = set()


class ManagedProcess:
    """One server or worker process: start, stop (SIGTERM then SIGKILL), kill, restart.

    Output goes to `log_file` (appended, so a restart keeps the history), to a temporary
    file when none is given, or to the parent's own stdout/stderr with `inherit_output`.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        log_file: Path | str | None = None,
        inherit_output: bool = False,
    ) -> None:
        self.name = name
        self.args = [str(arg) for arg in args]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.inherit_output = inherit_output
        self._log_path = Path(log_file) if log_file else None
        self._temporary_log = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    @property
    def popen(self) -> subprocess.Popen[bytes] | None:
        return self._popen

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> None:
        if self.running:
            return
        stdout: IO[bytes] | None = None
        if not self.inherit_output:
            if self._log_path is None:
                handle, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
                os.close(handle)
                self._log_path, self._temporary_log = Path(path), True
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = stdout = self._log_path.open("ab")
        self._popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None,
            start_new_session=True,
        )
        _RUNNING.add(self)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if still alive after `timeout` seconds. Returns the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait()
        return self._finish()

    def terminate(self) -> None:
        """SIGTERM without waiting (see `stop`)."""
        if self.running:
            self._signal(signal.SIGTERM)

    def kill(self) -> int | None:
        """SIGKILL at once, as a crash would."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGKILL)
            self._popen.wait()
        return self._finish()

    def restart(self, timeout: float = 10.0) -> None:
        self.stop(timeout)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        with self._log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def discard_log(self) -> None:
        """Remove the log if it was a temporary file of ours."""
        if self._temporary_log and self._log_path and not self.running:
            self._log_path.unlink(missing_ok=True)
            self._log_path, self._temporary_log = None, False

    def _signal(self, signum: int) -> None:
        assert self._popen is not None
        # The child leads its own process group: signal the group so helpers it spawned go too.
        try:
            os.killpg(self._popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signum)

    def _finish(self) -> int | None:
        _RUNNING.discard(self)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        return self._popen.returncode if self._popen else None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, running={self.running})"


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_RUNNING):
        process.stop(timeout=5.0)
