"""`starter.py users ...`: the console's accounts and API tokens from the command line,
acting as the OS user (`cli_actor()`), through client/accounts.py as the admin page does.

`users add` asks for the password twice when run on a terminal; with
`--one-time-password`, or when not on a terminal (a script), it prints a generated one that
the person must replace at their first login, since it was seen by someone else."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from dsp_integration.client import accounts
from dsp_integration.client.actors import Role, cli_actor
from dsp_integration.client.errors import ServiceError
from dsp_integration.client.passwords import generate_password
from dsp_integration.config import Settings
from dsp_integration.database.engine import SessionFactory, open_database


class PasswordsDiffer(ServiceError):
    pass


def add_users_parser(commands: Any) -> None:
    """`users` and its subcommands, under the starter's subparsers."""
    users = commands.add_parser("users", help="console accounts and API tokens")
    sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add an account")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, help="viewer, operator or admin")
    add.add_argument(
        "--one-time-password",
        action="store_true",
        help="print a generated password, to be changed at first login (the default "
        "when not on a terminal)",
    )
    listing = sub.add_parser("list", help="every account")
    listing.add_argument("--json", action="store_true")
    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("name", metavar="NAME")
    role.add_argument("role", metavar="ROLE", help="viewer, operator or admin")
    for verb, text in (
        ("disable", "disable an account: its sessions and tokens stop at once"),
        ("enable", "enable a disabled account"),
        ("reset-password", "print a new one-time password for an account"),
    ):
        sub.add_parser(verb, help=text).add_argument("name", metavar="NAME")
    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    create = tokens.add_parser("create", help="create a token for an account (shown once)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--label", default="", help="what the token is for")
    token_list = tokens.add_parser("list", help="tokens (of NAME only, when given)")
    token_list.add_argument("name", metavar="NAME", nargs="?")
    token_list.add_argument("--json", action="store_true")
    tokens.add_parser("revoke", help="revoke a token").add_argument(
        "token_id", metavar="ID", type=int
    )


def _ask_password(name: str) -> str:
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise PasswordsDiffer("the two passwords differ; nothing was changed")
    return first


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value else ""


async def run_users(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out `users ...`; returns the exit status (errors raise `ServiceError`)."""
    role = accounts.role_of(args.role) if getattr(args, "role", None) else None
    password: str | None = None
    if args.users_command == "add":
        accounts.account_name(args.name)  # a bad name is refused before the password is asked
        if not args.one_time_password and sys.stdin.isatty():
            password = _ask_password(args.name)
    async with open_database(settings.effective_database_url, pool_size=1) as sessions:
        return await _run(args, sessions, role, password)


async def _run(
    args: argparse.Namespace,
    sessions: SessionFactory,
    role: Role | None,
    password: str | None,
) -> int:
    actor = cli_actor()
    match args.users_command:
        case "add":
            assert role is not None
            generated = None if password is not None else generate_password()
            change = await accounts.add_account(
                sessions, actor, args.name, role, password or generated or "",
                one_time=generated is not None,
            )  # fmt: skip
            print(f"added {change.account} ({change.detail})")
            if generated:
                print(f"one-time password (to be changed at first login): {generated}")
        case "list":
            _print_accounts(await accounts.list_accounts(sessions), args.json)
        case "set-role":
            assert role is not None
            change = await accounts.set_role(sessions, actor, args.name, role)
            print(f"{change.account}: {change.detail}")
        case "disable" | "enable":
            disabled = args.users_command == "disable"
            change = await accounts.set_disabled(sessions, actor, args.name, disabled)
            print(f"{change.account}: {change.detail}")
        case "reset-password":
            generated = generate_password()
            change = await accounts.set_password(
                sessions, actor, args.name, generated, one_time=True
            )
            print(f"{change.account}: its sessions ended")
            print(f"one-time password (to be changed at first login): {generated}")
        case "tokens":
            await _tokens(args, sessions)
    return 0


async def _tokens(args: argparse.Namespace, sessions: SessionFactory) -> None:
    actor = cli_actor()
    match args.tokens_command:
        case "create":
            created = await accounts.create_token(sessions, actor, args.name, args.label)
            print(f"token {created.view.id} for {created.view.account} ({created.view.label})")
            print(f"copy it now, it is not shown again: {created.token}")
        case "list":
            tokens = await accounts.list_tokens(sessions, args.name)
            if args.json:
                rows = [
                    {
                        "id": t.id,
                        "account": t.account,
                        "label": t.label,
                        "prefix": t.prefix,
                        "created_at": _when(t.created_at),
                        "last_used_at": _when(t.last_used_at) or None,
                        "revoked_at": _when(t.revoked_at) or None,
                    }
                    for t in tokens
                ]
                print(json.dumps(rows, indent=2))
                return
            table = Table("id", "account", "label", "begins", "created", "last used", "state")
            for t in tokens:
                state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "active"
                table.add_row(
                    str(t.id), t.account, t.label, t.prefix + "…", _when(t.created_at),
                    _when(t.last_used_at), state,
                )  # fmt: skip
            Console(highlight=False).print(table)
        case "revoke":
            change = await accounts.revoke_token(sessions, actor, args.token_id)
            print(f"{change.account}: {change.detail} revoked")


def _print_accounts(rows: list[accounts.AccountView], as_json: bool) -> None:
    if as_json:
        data = [
            {
                "name": a.name,
                "role": a.role.value,
                "disabled": a.disabled,
                "password_change_required": a.password_change_required,
                "created_at": _when(a.created_at),
                "updated_at": _when(a.updated_at),
                "last_login_at": _when(a.last_login_at) or None,
            }
            for a in rows
        ]
        print(json.dumps(data, indent=2))
        return
    table = Table("name", "role", "state", "created", "changed", "last login")
    for a in rows:
        state = "disabled" if a.disabled else "enabled"
        if a.password_change_required:
            state += ", one-time password"
        table.add_row(
            a.name, a.role.value, state, _when(a.created_at), _when(a.updated_at),
            _when(a.last_login_at),
        )  # fmt: skip
    Console(highlight=False).print(table)
