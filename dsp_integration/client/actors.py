"""Who asked for an action: the person (or process) behind every submit, cancel, resubmit,
prioritise and account change, as the action log records it and the workflow's signal
carries it."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Via = Literal["console", "api", "cli"]


class Role(StrEnum):
    """`viewer` reads everything; `operator` also submits, cancels, resubmits and
    prioritises; `admin` also manages accounts."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def may(self, needed: Role) -> bool:
        order = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Actor:
    """`name`: the account's name (the console and the API), or the OS user for the CLI;
    `address`: the client's address (console, API); `os_user`: the OS user (CLI)."""

    name: str
    role: Role
    via: Via
    address: str | None = None
    os_user: str | None = None

    def label(self) -> str:
        """One line for a workflow signal and a log: `alice via console (10.0.0.5)`."""
        where = self.address or self.os_user
        return f"{self.name} via {self.via}" + (f" ({where})" if where else "")


def cli_actor() -> Actor:
    """The CLI runs with the database's and Temporal's own credentials: whoever can run it
    may act, and is recorded by OS user."""
    user = getpass.getuser()
    return Actor(name=user, role=Role.ADMIN, via="cli", os_user=user)
