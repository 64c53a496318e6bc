"""`python -m mock_dsp`: the mock DSP on a port, one log line per request on stdout."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from config.settings import DEV_API_TOKEN, MOCK_DSP_PORT
from mock_dsp.app import create_app
from mock_dsp.config import FAULT_KINDS, MockDspConfig
from mock_dsp.entities import iso
from mock_dsp.request_log import RequestRecord
from mock_dsp.server import uvicorn_server


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = MockDspConfig()
    parser = argparse.ArgumentParser(prog="python -m mock_dsp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=MOCK_DSP_PORT)
    parser.add_argument(
        "--token",
        default=os.environ.get("DSP_API_TOKEN") or DEV_API_TOKEN,
        help="the bearer token to accept (default: $DSP_API_TOKEN, else dev-token)",
    )
    parser.add_argument("--rate-limit", type=int, default=defaults.rate_limit)
    parser.add_argument("--rate-window", type=float, default=defaults.rate_window)
    parser.add_argument("--pending-seconds", type=float, default=defaults.pending_seconds)
    parser.add_argument("--review-seconds", type=float, default=defaults.review_seconds)
    parser.add_argument("--review-jitter", type=float, default=defaults.review_jitter)
    parser.add_argument("--propagation-delay", type=float, default=defaults.propagation_delay)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument(
        "--fault-kinds",
        default=",".join(defaults.fault_kinds),
        help=f"comma-separated, from: {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds)
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> MockDspConfig:
    return MockDspConfig(
        token=args.token,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        pending_seconds=args.pending_seconds,
        review_seconds=args.review_seconds,
        review_jitter=args.review_jitter,
        propagation_delay=args.propagation_delay,
        fault_rate=args.fault_rate,
        fault_kinds=[kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()],
        slow_seconds=args.slow_seconds,
        seed=args.seed,
    )


def log_line(record: RequestRecord) -> None:
    """One line per request; the token never appears, only whether it was valid."""
    parts = [iso(record.wall_time), record.method, record.path, str(record.status)]
    if not record.token_valid:
        parts.append("token=invalid")
    if record.idempotency_key is not None:
        parts.append(f"idempotency_key={record.idempotency_key}")
    if record.created_id:
        parts.append(f"created={record.created_id}")
    if record.replayed:
        parts.append("replayed")
    if record.fault:
        parts.append(f"fault={record.fault}")
    print(" ".join(parts), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as error:
        print(f"mock DSP: bad option: {error}", file=sys.stderr)
        return 2
    server = uvicorn_server(create_app(config, on_request=log_line), args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        f"mock DSP on http://{args.host}:{args.port} "
        f"(rate limit {config.rate_limit} per {config.rate_window:g} s)",
        flush=True,
    )
    server.run()
    print("mock DSP stopped", flush=True)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
