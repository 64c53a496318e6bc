"""`starter.py serve`: the console under uvicorn, refusing to listen beyond loopback
while it would be open to anyone (no account, no CONSOLE_TOKEN)."""

from __future__ import annotations

import ipaddress
import logging

import sqlalchemy.exc
import uvicorn

from dsp_integration.client.errors import ServiceError
from dsp_integration.client.logins import accounts_exist
from dsp_integration.config import Settings
from dsp_integration.console.app import console_token, create_app
from dsp_integration.database.engine import open_database

LOOPBACK_NAMES = {"localhost"}


class ConsoleRefused(ServiceError):
    """The console must not start as configured."""


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str, *, has_accounts: bool = False) -> None:
    """Beyond loopback, the console must ask who is there: accounts exist, or CONSOLE_TOKEN
    is set (the bootstrap admin)."""
    if console_token(settings) is None and not has_accounts and not is_loopback(host):
        raise ConsoleRefused(
            f"refusing to serve the console on {host} without CONSOLE_TOKEN or accounts: add "
            "an account (starter.py users add NAME --role admin), set CONSOLE_TOKEN, "
            "or listen on a loopback address (127.0.0.1, ::1, localhost)"
        )


async def _has_accounts(settings: Settings) -> bool:
    """False too when the database cannot say (unreachable, not migrated): then the console
    refuses to listen beyond loopback, as it would without accounts."""
    try:
        async with open_database(settings.effective_database_url, pool_size=1) as sessions:
            return await accounts_exist(sessions)
    except (OSError, sqlalchemy.exc.SQLAlchemyError):
        return False


def console_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


async def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Serve until interrupted; returns uvicorn's exit state (0, or 1 when it could not
    start, e.g. the port is taken)."""
    host = host or settings.console_host
    port = settings.console_port if port is None else port
    needs_look = console_token(settings) is None and not is_loopback(host)
    check_bind(settings, host, has_accounts=needs_look and await _has_accounts(settings))
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=logging.INFO,
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    print(f"console: {console_url(host, port)} (API docs at /docs)", flush=True)
    try:
        await server.serve()
    except SystemExit as exit_:  # uvicorn exits when it cannot bind
        return int(exit_.code or 1)
    return 0 if server.started else 1
