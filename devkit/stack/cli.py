"""`python dev.py COMMAND`: the local development stack."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from devkit.stack.demo import DemoError, run_demo, wait_for_stack
from devkit.stack.up import UpOptions, read_stack_file, run_up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dev.py", description="Run the local dev stack.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start Temporal, PostgreSQL, the mock DSP and workers; Ctrl-C stops them",
        description="Starts what is not already running, migrates, runs workers until Ctrl-C.",
    )
    up.add_argument("--workers", type=_non_negative, default=1, help="worker processes (1)")
    up.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the Temporal db file, PostgreSQL data and logs live (.dev)",
    )
    up.add_argument("--stack-file", type=Path, default=None, help=argparse.SUPPRESS)
    wait = commands.add_parser("wait", help="wait until a `dev.py up` is ready")
    wait.add_argument("--timeout", type=float, default=120.0)
    commands.add_parser("status", help="print the running stack's .dev/stack.json")
    demo = commands.add_parser(
        "demo", help="bring the stack up, submit a file and wait, stop the stack"
    )
    demo.add_argument("file", type=Path, nargs="?", default=Path("examples/demo.json"))
    demo.add_argument("--workers", type=_non_negative, default=2)
    demo.add_argument("--timeout", type=float, default=600.0, help="limit for the starter (s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    match args.command:
        case "up":
            options = UpOptions(workers=args.workers)
            if args.state_dir is not None:
                options.state_dir = args.state_dir.resolve()
            if args.stack_file is not None:
                options.stack_file = args.stack_file.resolve()
            return run_up(options, out=_print)
        case "wait":
            try:
                stack = wait_for_stack(args.timeout)
            except DemoError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            print(f"ready: Temporal {stack['temporal_address']}, web UI {stack['ui_url']}")
            return 0
        case "status":
            running = read_stack_file()
            if running is None:
                print("no dev stack is running")
                return 1
            print(json.dumps(running, indent=2))
            return 0
        case "demo":
            return run_demo(args.file.resolve(), workers=args.workers, run_timeout=args.timeout)
    return 2


def _print(line: str) -> None:
    print(line, flush=True)


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number
