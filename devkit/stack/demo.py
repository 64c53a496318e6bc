"""`python dev.py demo`: bring the stack up, submit a file and wait for it, stop the stack.

A stack that another `dev.py up` already runs is used as it is and left running.
Otherwise `dev.py up` runs in the background on a fresh state directory (so a previous
demo's workflows and rows cannot change the outcome), with its output in a log file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit.stack.postgres import EmbeddedPostgres
from devkit.stack.up import STACK_FILE, read_stack_file
from dsp_integration.config.settings import DEV_DIR, PROJECT_ROOT

DEMO_STATE_DIR = DEV_DIR / "demo"
DEMO_LOG = DEV_DIR / "demo-stack.log"
DEMO_REVIEW_SECONDS = "8"


class DemoError(RuntimeError):
    pass


def wait_for_stack(
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    stack_file: Path = STACK_FILE,
) -> dict[str, Any]:
    """Wait until `.dev/stack.json` describes a ready stack (of `process`, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack = read_stack_file(stack_file)
        if stack and stack.get("ready") and (process is None or stack["pid"] == process.pid):
            return stack
        if process is not None and process.poll() is not None:
            raise DemoError(f"`dev.py up` exited with code {process.returncode}")
        time.sleep(0.2)
    raise DemoError(f"the dev stack was not ready within {timeout:.0f} s")


def run_demo(
    file: Path,
    *,
    workers: int = 2,
    ready_timeout: float = 120.0,
    run_timeout: float = 600.0,
    out: Callable[[str], None] = print,
) -> int:
    stack = read_stack_file()
    if stack is not None:
        out(f"using the dev stack already running (pid {stack['pid']})")
        return _submit(file, stack, run_timeout, out)
    up = _start_stack(workers, out)
    try:
        stack = wait_for_stack(ready_timeout, process=up)
    except DemoError as error:
        out(f"error: {error}")
        _stop_stack(up, out, show_log=True)
        return 1
    except BaseException:
        _stop_stack(up, out)
        raise
    try:
        out(f"dev stack ready (Temporal {stack['temporal_address']}, log {DEMO_LOG})")
        return _submit(file, stack, run_timeout, out)
    finally:
        _stop_stack(up, out)


def _start_stack(workers: int, out: Callable[[str], None]) -> subprocess.Popen[bytes]:
    _wipe_state_dir(DEMO_STATE_DIR)
    DEV_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("MOCK_REVIEW_SECONDS", DEMO_REVIEW_SECONDS)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "dev.py"),
        "up",
        "--workers",
        str(workers),
        "--state-dir",
        str(DEMO_STATE_DIR),
    ]
    out(f"starting the dev stack with {workers} workers (output in {DEMO_LOG}) ...")
    with DEMO_LOG.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _submit(file: Path, stack: dict[str, Any], timeout: float, out: Callable[[str], None]) -> int:
    env = {**os.environ, "TEMPORAL_ADDRESS": stack["temporal_address"]}
    command = [sys.executable, str(PROJECT_ROOT / "starter.py"), "submit", str(file), "--wait"]
    out(f"$ python starter.py submit {file} --wait")
    began = time.monotonic()
    starter = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    try:
        code = starter.wait(timeout)
    except subprocess.TimeoutExpired:
        starter.terminate()
        starter.wait(10)
        out(f"error: the starter did not finish within {timeout:.0f} s")
        code = 1
    except KeyboardInterrupt:
        starter.terminate()
        starter.wait(10)
        raise
    out(f"starter exited with code {code} after {time.monotonic() - began:.0f} s")
    if code == 1:
        code = _compare_with_expected(file, env, out)
    return code


def _compare_with_expected(file: Path, env: dict[str, str], out: Callable[[str], None]) -> int:
    """Some entities of a demo file end otherwise on purpose; `<file>.expected.json` says
    which. The demo succeeds when every entity ended as expected."""
    expected_file = file.with_suffix(".expected.json")
    if not expected_file.is_file():
        return 1
    expected: dict[str, str] = json.loads(expected_file.read_text())
    status = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), "status", "--json", *expected],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if status.returncode != 0:
        out(f"error: starter.py status failed: {status.stderr.strip()}")
        return 1
    ended = {row["key"]: row["status"] for row in json.loads(status.stdout)}
    wrong = {key: ended.get(key) for key, want in expected.items() if ended.get(key) != want}
    if wrong:
        out(f"error: unexpected outcome (see {expected_file.name}): {wrong}")
        return 1
    out(f"every entity ended as {expected_file.name} expects (the rejection is on purpose)")
    return 0


def _stop_stack(
    up: subprocess.Popen[bytes], out: Callable[[str], None], *, show_log: bool = False
) -> None:
    if up.poll() is None:
        out("stopping the dev stack ...")
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    if show_log or up.returncode not in (0, -signal.SIGTERM):
        out(f"`dev.py up` exited with code {up.returncode}; the end of {DEMO_LOG}:")
        out(_tail(DEMO_LOG))


def _wipe_state_dir(path: Path) -> None:
    postgres = EmbeddedPostgres(path / "postgres")
    if postgres.running:
        postgres.stop()
    shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
