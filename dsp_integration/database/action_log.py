"""The action log: who asked for what, when (the database's clock), from where, and
whether it was accepted or refused and why. Written by the client API for every submit,
cancel, resubmit and prioritise, and by account management for every account change;
read by the console, the API and `starter.py actions`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dsp_integration.client.actors import Actor
from dsp_integration.database.models import ActionRecord

MAX_ACTIONS = 1000


class Action(StrEnum):
    """The entity actions; account changes are named `account.<change>` by account
    management (`account.add`, `account.set_role`, `account.disable`, `token.create`, ...)."""

    SUBMIT = "submit"
    CANCEL = "cancel"
    RESUBMIT = "resubmit"
    PRIORITISE = "prioritise"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    """Bad input, an unknown key or batch, an entity that has ended: nothing was changed."""
    FAILED = "failed"
    """The service could not carry it out (Temporal or the database did not answer)."""


@dataclass(frozen=True)
class ActionView:
    """One row of the log, as the console, the API and the CLI show it."""

    id: int
    at: datetime
    actor_name: str
    actor_role: str
    via: str
    address: str | None
    os_user: str | None
    action: str
    batch: str | None
    entity_key: str | None
    account: str | None
    old_version: int | None
    new_version: int | None
    old_level: str | None
    new_level: str | None
    old_weight: float | None
    new_weight: float | None
    outcome: str
    reason: str | None
    detail: dict[str, Any] | None

    @property
    def where(self) -> str:
        """`console (10.0.0.5)`, `cli (alice)`: the channel and the address or OS user."""
        place = self.address or self.os_user
        return self.via + (f" ({place})" if place else "")

    @property
    def change(self) -> str:
        """The change asked for, in a few words: `v1 → v2`, `normal → high`, `w1 → w2.5`."""
        parts = []
        if self.new_version is not None:
            old = f"v{self.old_version} → " if self.old_version is not None else ""
            parts.append(f"{old}v{self.new_version}")
        if self.new_level is not None:
            old = f"{self.old_level} → " if self.old_level else ""
            parts.append(f"{old}{self.new_level}")
        if self.new_weight is not None:
            old = f"w{self.old_weight:g} → " if self.old_weight is not None else ""
            parts.append(f"{old}w{self.new_weight:g}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": {
                "name": self.actor_name,
                "role": self.actor_role,
                "via": self.via,
                "address": self.address,
                "os_user": self.os_user,
            },
            "action": self.action,
            "batch": self.batch,
            "key": self.entity_key,
            "account": self.account,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "old_level": self.old_level,
            "new_level": self.new_level,
            "old_weight": self.old_weight,
            "new_weight": self.new_weight,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
        }


async def record_action(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    outcome: Outcome = Outcome.ACCEPTED,
    reason: str | None = None,
    batch: str | None = None,
    entity_key: str | None = None,
    account: str | None = None,
    old_version: int | None = None,
    new_version: int | None = None,
    old_level: str | None = None,
    new_level: str | None = None,
    old_weight: float | None = None,
    new_weight: float | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Add a row to the log in `session`'s transaction (committed with it); returns its id.
    An accepted action is recorded in the transaction of its change, so the two stand or
    fall together; a refused one in a transaction of its own, after the refusal."""
    record = ActionRecord(
        actor_name=actor.name,
        actor_role=actor.role.value,
        via=actor.via,
        address=actor.address,
        os_user=actor.os_user,
        action=str(action),
        batch=batch,
        entity_key=entity_key,
        account=account,
        old_version=old_version,
        new_version=new_version,
        old_level=old_level,
        new_level=new_level,
        old_weight=old_weight,
        new_weight=new_weight,
        outcome=outcome.value,
        reason=reason,
        detail=detail,
    )
    session.add(record)
    await session.flush()
    return record.id


async def recent_actions(
    session: AsyncSession,
    *,
    batch: str | None = None,
    entity_key: str | None = None,
    actor_name: str | None = None,
    with_batch_wide: bool = False,
    limit: int = 100,
) -> list[ActionView]:
    """The log, newest first, at most `limit` rows (capped at `MAX_ACTIONS`). Filters are
    exact and combine; `with_batch_wide` (with both `batch` and `entity_key`) adds the
    actions on the whole batch (a submit, a prioritise), which concern the entity too."""
    conditions = []
    if entity_key is not None and with_batch_wide and batch is not None:
        conditions.append(
            or_(
                ActionRecord.entity_key == entity_key,
                and_(ActionRecord.batch == batch, ActionRecord.entity_key.is_(None)),
            )
        )
    else:
        if entity_key is not None:
            conditions.append(ActionRecord.entity_key == entity_key)
        if batch is not None:
            conditions.append(ActionRecord.batch == batch)
    if actor_name is not None:
        conditions.append(ActionRecord.actor_name == actor_name)
    rows = await session.scalars(
        select(ActionRecord)
        .where(*conditions)
        .order_by(ActionRecord.id.desc())
        .limit(max(1, min(limit, MAX_ACTIONS)))
    )
    return [_view(row) for row in rows]


def _view(row: ActionRecord) -> ActionView:
    return ActionView(
        id=row.id,
        at=row.at,
        actor_name=row.actor_name,
        actor_role=row.actor_role,
        via=row.via,
        address=row.address,
        os_user=row.os_user,
        action=row.action,
        batch=row.batch,
        entity_key=row.entity_key,
        account=row.account,
        old_version=row.old_version,
        new_version=row.new_version,
        old_level=row.old_level,
        new_level=row.new_level,
        old_weight=row.old_weight,
        new_weight=row.new_weight,
        outcome=row.outcome,
        reason=row.reason,
        detail=row.detail,
    )
