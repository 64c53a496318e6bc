"""`python -m devkit.mock_dsp`: the mock DSP on a port, one log line per request on stdout."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import typing
from collections.abc import Sequence
from types import FrameType

from pydantic.fields import FieldInfo

from devkit.mock_dsp.app import create_app
from devkit.mock_dsp.config import ALL_FAULT_KINDS, MockDspConfig
from devkit.mock_dsp.credentials import TokenRequestRecord
from devkit.mock_dsp.entities import iso
from devkit.mock_dsp.request_log import RequestRecord
from devkit.mock_dsp.server import uvicorn_server
from dsp_integration.config.settings import DEV_API_TOKEN, MOCK_DSP_PORT


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`--host`, `--port`, and one option per MockDspConfig field (`--rate-limit` for
    `rate_limit`, ...), derived from the model: a new knob is an option without a line here.
    Values are validated by the model (`config_from`), not by argparse."""
    parser = argparse.ArgumentParser(prog="python -m mock_dsp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=MOCK_DSP_PORT)
    for name, field in MockDspConfig.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar=name.upper(),
            help=_help(name, field),
        )
    return parser.parse_args(argv)


def _help(name: str, field: FieldInfo) -> str:
    if name == "token":
        return "the bearer token to accept (default: $DSP_API_TOKEN, else dev-token)"
    if name == "seats":
        return (
            'JSON, or @FILE holding it: {"<seat>": {"token": ..., "client_id": ..., '
            '"client_secret": ..., "rate_limit": 40, "rate_window": 60}, ...} '
            "(default: one seat, default, of --token, --rate-limit, --rate-window)"
        )
    if _is_list(field):
        return f"comma-separated, from: {', '.join(ALL_FAULT_KINDS)} (default: all but drop)"
    default = field.get_default(call_default_factory=True)
    return f"default: {default}" if default is not None else "default: none"


def _is_list(field: FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is list


def _is_dict(field: FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is dict


def _json_option(value: str) -> object:
    """The option's JSON, or with `@path` the file's: a seat's secrets need not be in the
    command line that `ps` shows."""
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as file:
            return json.load(file)
    return json.loads(value)


def _is_int_choice(field: FieldInfo) -> bool:
    """A `Literal` of ints (`api_version`), which the model does not accept as a string."""
    choices = typing.get_args(field.annotation)
    return typing.get_origin(field.annotation) is typing.Literal and all(
        isinstance(choice, int) for choice in choices
    )


def config_from(args: argparse.Namespace) -> MockDspConfig:
    """The options given, over the model's defaults (the token's: $DSP_API_TOKEN first)."""
    values: dict[str, object] = {"token": os.environ.get("DSP_API_TOKEN") or DEV_API_TOKEN}
    for name, field in MockDspConfig.model_fields.items():
        value = getattr(args, name)
        if value is None:
            continue
        if _is_list(field):
            value = [item.strip() for item in value.split(",") if item.strip()]
        elif _is_dict(field):
            value = _json_option(value)
        elif _is_int_choice(field) and value.strip().lstrip("-").isdigit():
            value = int(value)
        values[name] = value
    return MockDspConfig.model_validate(values)


def log_line(record: RequestRecord) -> None:
    """One line per request; the token never appears, only its seat and whether it was valid."""
    parts = [iso(record.wall_time), record.method, record.path, str(record.status)]
    if record.token_expired:
        parts.append("token=expired")
    elif not record.token_valid:
        parts.append("token=invalid")
    if record.idempotency_key is not None:
        parts.append(f"idempotency_key={record.idempotency_key}")
    if record.created_id:
        parts.append(f"created={record.created_id}")
    if record.replayed:
        parts.append("replayed")
    if record.fault:
        parts.append(f"fault={record.fault}")
    if record.seat is not None:
        parts.append(f"seat={record.seat}")
    print(" ".join(parts), flush=True)


def token_log_line(record: TokenRequestRecord) -> None:
    """One line per token request: the client_id and seat, never the secret or the token."""
    parts = [iso(record.wall_time), "POST", "/v1/oauth/token", str(record.status)]
    if record.client_id is not None:
        parts.append(f"client_id={record.client_id}")
    if record.seat is not None:
        parts.append(f"seat={record.seat}")
    print(" ".join(parts), flush=True)


def describe_seats(config: MockDspConfig) -> str:
    return ", ".join(
        f"{name} {seat.rate_limit} per {seat.rate_window:g} s"
        + (" (client credentials)" if seat.client_id is not None else "")
        for name, seat in config.seat_table().items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from(args)
    except (OSError, ValueError) as error:
        print(f"mock DSP: bad option: {error}", file=sys.stderr)
        return 2
    app = create_app(config, on_request=log_line, on_token_request=token_log_line)
    server = uvicorn_server(app, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        f"mock DSP on http://{args.host}:{args.port} (seats: {describe_seats(config)})",
        flush=True,
    )
    server.run()
    print("mock DSP stopped", flush=True)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
