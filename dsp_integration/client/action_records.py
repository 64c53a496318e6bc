"""How the client API writes the action log around each action.

An accepted action is recorded by the action itself, in the transaction of its change
(`record_action`), so a change is never stored without its row nor a row kept for a change
rolled back. A cancel changes no row: it is recorded once its signal is delivered. A refused
action (bad input, an unknown key or batch, an entity that has ended) is recorded by
`refusals_recorded` in a transaction of its own, after the refusing transaction has rolled
back: the row is then all that is stored of it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc

from dsp_integration.client.actors import Actor
from dsp_integration.client.errors import ServiceError
from dsp_integration.database.action_log import Action, Outcome, record_action
from dsp_integration.database.engine import SessionFactory
from dsp_integration.entities import SubmissionRefused

log = logging.getLogger(__name__)

MAX_REASON_PROBLEMS = 5
MAX_FAILURE_CHARS = 300


@dataclass
class ActionScope:
    """What the action is about, filled in as the action learns it (a cancel learns its
    batch from the stored row), and whether its accepted row was written."""

    actor: Actor
    action: Action
    batch: str | None = None
    entity_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False


def refusal_reason(refused: SubmissionRefused) -> str:
    shown = "; ".join(str(problem) for problem in refused.problems[:MAX_REASON_PROBLEMS])
    more = len(refused.problems) - MAX_REASON_PROBLEMS
    return shown + (f"; and {more} more problem(s)" if more > 0 else "")


def _failure(error: Exception) -> str:
    """The kind of error and its first line: enough to tell Temporal from the database."""
    first = (str(error).splitlines() or [""])[0][:MAX_FAILURE_CHARS]
    return f"{type(error).__name__}: {first}".rstrip(": ")


async def record_separately(
    sessions: SessionFactory,
    scope: ActionScope,
    outcome: Outcome,
    reason: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """A row in a transaction of its own. Best effort: the refusal or error being reported
    is what the caller must see, not a second error of the log's (the database may be the
    very thing that failed)."""
    try:
        async with sessions.begin() as session:
            await record_action(
                session,
                scope.actor,
                scope.action,
                outcome=outcome,
                reason=reason,
                batch=scope.batch,
                entity_key=scope.entity_key,
                detail=detail or None,
                **scope.extra,
            )
    except Exception:
        log.warning("could not record a %s %s in the action log", outcome, scope.action)


@asynccontextmanager
async def refusals_recorded(
    sessions: SessionFactory, scope: ActionScope
) -> AsyncIterator[ActionScope]:
    """Record a refusal (a `ServiceError` or `SubmissionRefused`) or a failure raised in the
    block, then let it go on up."""
    try:
        yield scope
    except SubmissionRefused as refused:
        problems = [str(problem) for problem in refused.problems]
        await record_separately(
            sessions, scope, Outcome.REFUSED, refusal_reason(refused), {"problems": problems}
        )
        raise
    except ServiceError as refused:
        await record_separately(sessions, scope, Outcome.REFUSED, str(refused))
        raise
    except Exception as error:
        if not _database_unreachable(error):  # else there is nowhere to record it
            prefix = "stored, then " if scope.accepted else ""
            await record_separately(sessions, scope, Outcome.FAILED, prefix + _failure(error))
        raise


def _database_unreachable(error: BaseException) -> bool:
    """The database could not be reached (the error the caller reports in its one line)."""
    return isinstance(error, OSError | sqlalchemy.exc.InterfaceError) or (
        isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated
    )
