"""The rule of an entity's life, stated once: where it stands, and what it does next.

Pure and deterministic (no Temporal, no I/O), so every phase and every event is unit-tested
without a server. `decide(facts, event)` folds one event into the facts and names the one
step to take next; the entity workflow (`entity.py`) performs the steps and turns their
results into events. Users' words, DSP answers (also those that arrive after a word) and
dependencies' outcomes all go through here, so the last word wins in every phase by
construction:

- a **cancel** withdraws the request still waiting for its turn (nothing leaves); once
  something exists at the DSP for the key, whatever an answer on its way says, it is
  archived; a DSP that refuses the archive leaves the entity `failed`, saying so;
- a **resubmit** supersedes the version in hand wherever it stands; the DSP entity an answer
  on its way names is kept and the new version PUT over it (or a new one POSTed if it was
  archived), so at most one live DSP entity exists per key;
- before anything else, a POST whose answer was lost and that may have created an entity is
  found out, so no entity is ever forgotten;
- once the ending is recorded in the queue row the entity has ended: a later cancel is too
  late (the client refuses it too), a resubmit starts the next version.

A step in progress is withdrawn when the facts no longer lead to it (`still_wanted`): the
workflow cancels a DSP call that has not left, and wakes from a sleep or a wait."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dsp_integration.contracts import (
    TERMINAL_STATUSES,
    DependencyOutcome,
    EntitySnapshot,
    EntityStatus,
    EntityType,
    PollCarry,
    service_status_for,
)
from dsp_integration.contracts.entity_types import ARCHIVED

JsonObject = dict[str, Any]


class Phase(StrEnum):
    """Where an entity stands, as the state diagram of docs/explanation/last-word.md names it."""

    LOADING = "loading"  # reading the row: at the start, and for every newer version
    WAITING = "waiting"  # for its dependencies, then until its request leaves
    REVIEW = "review"  # the DSP holds this version: sleep and poll until it decides
    ARCHIVING = "archiving"  # the last word is a cancel and an entity is live at the DSP
    ENDED = "ended"  # the ending is recorded


@dataclass(frozen=True)
class Ending:
    status: EntityStatus
    reason: str | None = None
    blocked_by: str | None = None  # the root cause, stored for users


@dataclass(frozen=True)
class PostAttempt:
    """A POST as it was sent: the same key and body replay it at a version-1 DSP."""

    version: int
    body: JsonObject = field(compare=False)


@dataclass(frozen=True)
class EntityFacts:
    """What the workflow knows of its entity; changed only by `decide`."""

    key: str
    entity_type: EntityType | None = None
    loaded: bool = False
    version: int = 0  # the payload version in hand
    newest: int = 0  # the newest version users asked for
    cancel: str | None = None  # the cancel's reason, while a cancel is the last word
    dsp_id: str | None = None  # the key's DSP entity, the newest known
    dsp_status: str | None = None
    dsp_reason: str | None = None  # the DSP's reason with its last status
    sent: bool = False  # the DSP holds the version in hand
    polls: int = 0
    # Whether dependants must hear that the key is `waiting` again before it goes on: at a
    # new version, and when a blocked entity looks again (its dependants ended blocked).
    announce: bool = False
    unanswered_post: PostAttempt | None = None  # may have created an entity nobody knows
    failure: str | None = None  # the DSP refused the version in hand
    archive_refused: str | None = None
    loaded_dependencies: Mapping[str, DependencyOutcome] = field(
        default_factory=lambda: MappingProxyType({})
    )
    heard: Mapping[str, DependencyOutcome] = field(default_factory=lambda: MappingProxyType({}))
    ending: Ending | None = None  # recorded

    @property
    def live(self) -> bool:
        """Whether a DSP entity exists for the key and is not archived."""
        return bool(self.dsp_id) and self.dsp_status != ARCHIVED

    @property
    def dependencies(self) -> list[DependencyOutcome]:
        """Each dependency as last heard of: the loaded row, or a signal of the same or a
        newer payload version."""
        view = []
        for key, loaded in self.loaded_dependencies.items():
            heard = self.heard.get(key)
            newer = heard is not None and heard.payload_version >= loaded.payload_version
            view.append(heard if newer and heard is not None else loaded)
        return view

    @property
    def phase(self) -> Phase:
        step = next_step(self)
        if isinstance(step, Load):
            return Phase.LOADING
        if isinstance(step, Done):
            return Phase.ENDED
        if isinstance(step, Archive) or (self.cancel is not None and self.live):
            return Phase.ARCHIVING
        return Phase.REVIEW if self.sent else Phase.WAITING


# --- events: what happened -----------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    snapshot: EntitySnapshot
    carry: PollCarry | None = None  # a review continued from an earlier run


@dataclass(frozen=True)
class CancelAsked:
    reason: str


@dataclass(frozen=True)
class ResubmitAsked:
    version: int


@dataclass(frozen=True)
class DependencyHeard:
    outcome: DependencyOutcome


@dataclass(frozen=True)
class Announced:
    pass


@dataclass(frozen=True)
class Sent:
    """A POST or PUT answered: the entity the DSP names holds the version in hand."""

    dsp_id: str
    dsp_status: str
    reason: str | None = None


@dataclass(frozen=True)
class Withdrawn:
    """A DSP call withdrawn before its request left, or whose failed answer no longer
    matters; `unanswered` is a POST that may have reached the DSP all the same."""

    unanswered: PostAttempt | None = None


@dataclass(frozen=True)
class Refused:
    """The DSP refused the version in hand (422, or 404 for the id we hold)."""

    reason: str


@dataclass(frozen=True)
class FoundOut:
    """What an unanswered POST created: an entity, or (None) nothing; `holds_attempt`: the
    entity holds what that POST sent, so it needs no PUT if the POST was of this version."""

    dsp_id: str | None
    dsp_status: str | None = None
    holds_attempt: bool = False


@dataclass(frozen=True)
class Polled:
    dsp_status: str
    reason: str | None = None


@dataclass(frozen=True)
class Archived:
    dsp_status: str


@dataclass(frozen=True)
class ArchiveRefused:
    reason: str


@dataclass(frozen=True)
class Recorded:
    """The ending went into the queue row (or a newer version was stored there first)."""

    ending: Ending


Event = (
    Loaded
    | CancelAsked
    | ResubmitAsked
    | DependencyHeard
    | Announced
    | Sent
    | Withdrawn
    | Refused
    | FoundOut
    | Polled
    | Archived
    | ArchiveRefused
    | Recorded
)


# --- steps: what to do next ----------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Read the row: the version to work on, its dependencies, what the DSP holds."""


@dataclass(frozen=True)
class FindOut:
    """Learn what an unanswered POST created (replay it with the same Idempotency-Key)."""

    attempt: PostAttempt


@dataclass(frozen=True)
class Announce:
    """Tell dependants this key is `waiting` at `version`: what an older version released
    must wait again, and what an ending blocked looks again."""

    version: int


@dataclass(frozen=True)
class Wait:
    """Wait for dependencies (the workflow wakes when the next step changes)."""

    waiting_on: tuple[str, ...]


@dataclass(frozen=True)
class Send:
    """POST the version in hand, or PUT it over the live entity `put_over`; `refs` are the
    dependencies' DSP ids its `$ref`s resolve to."""

    version: int
    put_over: str | None
    refs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Poll:
    """Sleep as the planner says, then read the DSP status."""

    dsp_id: str


@dataclass(frozen=True)
class Archive:
    """DELETE the live entity. Never withdrawn: once asked, the archive happens."""

    dsp_id: str


@dataclass(frozen=True)
class Finish:
    """Record the ending and tell the dependants."""

    ending: Ending


@dataclass(frozen=True)
class Done:
    """The run is over."""


Step = Load | FindOut | Announce | Wait | Send | Poll | Archive | Finish | Done

# Steps whose work stands once begun: withdrawing them would lose what the DSP did.
NEVER_WITHDRAWN = (Load, FindOut, Archive, Finish, Done)


def decide(facts: EntityFacts, event: Event) -> tuple[EntityFacts, Step]:
    """Fold `event` into the facts; the new facts and the step they lead to."""
    facts = apply(facts, event)
    return facts, next_step(facts)


def still_wanted(facts: EntityFacts, step: Step) -> bool:
    """Whether a step in progress is still what the facts lead to; if not, the workflow
    withdraws it (a DSP call that has not left sends nothing)."""
    return isinstance(step, NEVER_WITHDRAWN) or next_step(facts) == step


def apply(facts: EntityFacts, event: Event) -> EntityFacts:
    match event:
        case Loaded(snapshot, carry):
            return _loaded(facts, snapshot, carry)
        case CancelAsked(reason):
            return replace(facts, cancel=reason)
        case ResubmitAsked(version):
            return replace(
                facts, newest=max(facts.newest, version), cancel=None, archive_refused=None
            )
        case DependencyHeard(outcome):
            return _heard(facts, outcome)
        case Announced():
            return replace(facts, announce=False)
        case Sent(dsp_id, dsp_status, reason):
            return replace(
                facts, dsp_id=dsp_id, dsp_status=dsp_status, dsp_reason=reason, sent=True
            )
        case Withdrawn(unanswered):
            return replace(facts, unanswered_post=unanswered or facts.unanswered_post)
        case Refused(reason):
            return replace(facts, failure=reason)
        case FoundOut(dsp_id, dsp_status, holds_attempt):
            if dsp_id is None:
                return replace(facts, unanswered_post=None)
            attempt = facts.unanswered_post
            sent = holds_attempt and attempt is not None and attempt.version == facts.version
            return replace(
                facts,
                unanswered_post=None,
                dsp_id=dsp_id,
                dsp_status=dsp_status,
                sent=facts.sent or sent,
            )
        case Polled(dsp_status, reason):
            return replace(facts, dsp_status=dsp_status, dsp_reason=reason, polls=facts.polls + 1)
        case Archived(dsp_status):
            return replace(facts, dsp_status=dsp_status)
        case ArchiveRefused(reason):
            return replace(facts, archive_refused=reason)
        case Recorded(ending):
            return _looked_again(replace(facts, ending=ending))
    raise AssertionError(f"unknown event {event!r}")


def next_step(facts: EntityFacts) -> Step:
    """The one place that says what the entity does next. The order is the rule's: know
    what exists at the DSP, then the newest version, then the last word, then the DSP's
    verdict, then the dependencies."""
    if not facts.loaded:
        return Load()
    if facts.unanswered_post is not None:
        return FindOut(facts.unanswered_post)
    if facts.newest > facts.version:
        return Load()
    if facts.ending is not None:
        return Done()
    if facts.cancel is not None:
        return _carry_out_cancel(facts)
    if facts.failure is not None:
        return Finish(Ending(EntityStatus.FAILED, facts.failure))
    if facts.announce:
        return Announce(facts.version)
    if facts.sent:
        assert facts.entity_type is not None and facts.dsp_id is not None
        decided = service_status_for(facts.entity_type, facts.dsp_status or "")
        if decided is not None:
            return Finish(Ending(decided, facts.dsp_reason))
        return Poll(facts.dsp_id)
    dependencies = facts.dependencies
    blocking = blocking_dependency(dependencies)
    if blocking is not None:
        return Finish(blocked_by(blocking))
    waiting_on = tuple(d.key for d in dependencies if d.status is not EntityStatus.SUCCEEDED)
    if waiting_on:
        return Wait(waiting_on)
    refs = tuple(sorted((d.key, d.dsp_id or "") for d in dependencies))
    return Send(facts.version, facts.dsp_id if facts.live else None, refs)


def _carry_out_cancel(facts: EntityFacts) -> Step:
    if not facts.live:
        return Finish(Ending(EntityStatus.CANCELLED, facts.cancel))
    assert facts.dsp_id is not None
    if facts.archive_refused is None:
        return Archive(facts.dsp_id)
    return Finish(
        Ending(
            EntityStatus.FAILED,
            f"{facts.cancel}, but the DSP refused to archive {facts.dsp_id}, which stays "
            f"live: {facts.archive_refused}",
        )
    )


def _loaded(facts: EntityFacts, snapshot: EntitySnapshot, carry: PollCarry | None) -> EntityFacts:
    """A version in hand. The DSP entity this run learned of wins over the row's: an answer
    that arrived after a resubmit names an entity the row of the older version never took."""
    known = facts.dsp_id is not None
    facts = replace(
        facts,
        entity_type=snapshot.entity_type,
        loaded=True,
        version=snapshot.payload_version,
        newest=max(facts.newest, snapshot.payload_version),
        dsp_id=facts.dsp_id if known else snapshot.dsp_id,
        dsp_status=facts.dsp_status if known else snapshot.dsp_status,
        dsp_reason=None,
        sent=False,
        failure=None,
        archive_refused=None,
        loaded_dependencies=MappingProxyType(
            {
                dep.key: DependencyOutcome(
                    key=dep.key,
                    status=dep.status,
                    dsp_id=dep.dsp_id,
                    reason=dep.reason,
                    blocked_by=dep.blocked_by,
                    payload_version=dep.payload_version,
                )
                for dep in snapshot.dependencies
            }
        ),
        ending=None,
        announce=False,
    )
    if carry is not None and carry.payload_version == snapshot.payload_version:
        return replace(
            facts,
            dsp_id=carry.dsp_id,
            dsp_status=carry.dsp_status,
            sent=True,
            polls=carry.polls,
        )
    if snapshot.status in TERMINAL_STATUSES:
        ending = Ending(snapshot.status, snapshot.reason)
        return _looked_again(replace(facts, ending=ending))
    return replace(facts, announce=snapshot.payload_version > 1)


def _heard(facts: EntityFacts, outcome: DependencyOutcome) -> EntityFacts:
    """An older payload version than one already heard of is stale (outcomes of superseded
    versions may still be on their way) and ignored."""
    known = facts.heard.get(outcome.key)
    if known is not None and outcome.payload_version < known.payload_version:
        return facts
    heard = MappingProxyType({**facts.heard, outcome.key: outcome})
    return _looked_again(replace(facts, heard=heard))


def _looked_again(facts: EntityFacts) -> EntityFacts:
    """A blocked entity looks again when no dependency blocks it any more (the one that did
    has a newer version under way, or succeeded): it waits again instead of ending."""
    ending = facts.ending
    if ending is None or ending.status is not EntityStatus.BLOCKED:
        return facts
    if blocking_dependency(facts.dependencies) is not None:
        return facts
    return replace(facts, ending=None, announce=True)


def blocking_dependency(dependencies: list[DependencyOutcome]) -> DependencyOutcome | None:
    """The first dependency that ended any other way than succeeded, if one did."""
    for dep in dependencies:
        if dep.status in TERMINAL_STATUSES and dep.status is not EntityStatus.SUCCEEDED:
            return dep
    return None


def blocked_by(blocking: DependencyOutcome) -> Ending:
    """The ending a dependency's failure gives: blocked, naming it and the root cause."""
    root = blocking.blocked_by if blocking.status is EntityStatus.BLOCKED else blocking.key
    reason = f"dependency '{blocking.key}' ended {blocking.status.value}"
    if root and root != blocking.key:
        reason += f" (because of '{root}')"
    elif blocking.reason:
        reason += f": {blocking.reason}"
    return Ending(EntityStatus.BLOCKED, reason, blocked_by=root or blocking.key)
