"""The entity's rule, without Temporal: every phase meets every event, and the step each
combination leads to is written out; then the issue's stories as sequences of events."""

from __future__ import annotations

import pytest

from dsp_integration.contracts import (
    DependencyOutcome,
    DependencySnapshot,
    EntitySnapshot,
    EntityStatus,
    EntityType,
    PollCarry,
)
from dsp_integration.workflows.entity_machine import (
    Announce,
    Announced,
    Archive,
    Archived,
    ArchiveRefused,
    CancelAsked,
    DependencyHeard,
    Done,
    Ending,
    EntityFacts,
    Event,
    FindOut,
    Finish,
    FoundOut,
    Load,
    Loaded,
    Phase,
    Poll,
    Polled,
    PostAttempt,
    Recorded,
    Refused,
    ResubmitAsked,
    Send,
    Sent,
    Step,
    Wait,
    Withdrawn,
    apply,
    decide,
    next_step,
    still_wanted,
)

KEY = "cmp"
PARENT = "adv"
ATTEMPT = PostAttempt(1, {"name": "cmp"})


def snapshot(
    version: int = 1,
    status: EntityStatus = EntityStatus.WAITING,
    parent: EntityStatus = EntityStatus.WAITING,
    dsp_id: str | None = None,
    dsp_status: str | None = None,
) -> EntitySnapshot:
    return EntitySnapshot(
        key=KEY,
        batch="b",
        entity_type=EntityType.CAMPAIGNS,
        payload={"name": "cmp", "advertiser_id": {"$ref": PARENT}},
        payload_version=version,
        status=status,
        dsp_id=dsp_id,
        dsp_status=dsp_status,
        dependencies=[
            DependencySnapshot(
                key=PARENT,
                status=parent,
                dsp_id="adv_1" if parent is EntityStatus.SUCCEEDED else None,
                payload_version=1,
            )
        ],
    )


def parent(status: EntityStatus, version: int = 1) -> DependencyHeard:
    dsp_id = "adv_1" if status is EntityStatus.SUCCEEDED else None
    return DependencyHeard(
        DependencyOutcome(key=PARENT, status=status, dsp_id=dsp_id, payload_version=version)
    )


def facts_after(*events: Event) -> EntityFacts:
    facts = EntityFacts(key=KEY)
    for event in events:
        facts = apply(facts, event)
    return facts


PHASES: dict[str, EntityFacts] = {
    "loading": facts_after(),
    "waiting": facts_after(Loaded(snapshot())),
    "ready": facts_after(Loaded(snapshot(parent=EntityStatus.SUCCEEDED))),
    "review": facts_after(
        Loaded(snapshot(parent=EntityStatus.SUCCEEDED)), Sent("cmp_1", "pending")
    ),
    "archiving": facts_after(
        Loaded(snapshot(parent=EntityStatus.SUCCEEDED)),
        Sent("cmp_1", "pending"),
        CancelAsked("no"),
    ),
    "ended": facts_after(
        Loaded(snapshot(parent=EntityStatus.SUCCEEDED)),
        Sent("cmp_1", "active"),
        Recorded(Ending(EntityStatus.SUCCEEDED)),
    ),
}

EVENTS: dict[str, Event] = {
    "cancel": CancelAsked("no"),
    "resubmit": ResubmitAsked(2),
    "parent succeeded": parent(EntityStatus.SUCCEEDED),
    "parent failed": parent(EntityStatus.FAILED),
    "parent at a new version": parent(EntityStatus.WAITING, version=2),
    "POST/PUT answered pending": Sent("cmp_1", "pending"),
    "POST/PUT answered active": Sent("cmp_1", "active"),
    "call withdrawn": Withdrawn(),
    "POST withdrawn, may have landed": Withdrawn(ATTEMPT),
    "DSP refused": Refused("422 bad budget"),
    "found an entity": FoundOut("cmp_9", "pending"),
    "found nothing": FoundOut(None),
    "poll answered pending": Polled("pending"),
    "poll answered active": Polled("active"),
    "archived": Archived("archived"),
    "archive refused": ArchiveRefused("422 cannot archive"),
    "ending recorded": Recorded(Ending(EntityStatus.SUCCEEDED)),
}

CANCELLED = Finish(Ending(EntityStatus.CANCELLED, "no"))
SUCCEEDED = Finish(Ending(EntityStatus.SUCCEEDED))
FAILED = Finish(Ending(EntityStatus.FAILED, "422 bad budget"))
BLOCKED = Finish(
    Ending(EntityStatus.BLOCKED, f"dependency '{PARENT}' ended failed", blocked_by=PARENT)
)
REFUSED_ARCHIVE = Finish(
    Ending(
        EntityStatus.FAILED,
        "no, but the DSP refused to archive cmp_1, which stays live: 422 cannot archive",
    )
)
WAIT = Wait((PARENT,))
SEND = Send(1, None, ((PARENT, "adv_1"),))
POLL = Poll("cmp_1")
ARCHIVE = Archive("cmp_1")
FIND_OUT = FindOut(ATTEMPT)

# What every phase does next after every event: the whole rule, as a table.
EXPECTED: dict[str, dict[str, Step]] = {
    "loading": dict.fromkeys(EVENTS, Load()),
    "waiting": {
        "cancel": CANCELLED,
        "resubmit": Load(),
        "parent succeeded": SEND,
        "parent failed": BLOCKED,
        "parent at a new version": WAIT,
        "POST/PUT answered pending": POLL,  # it had left before a dependency moved
        "POST/PUT answered active": SUCCEEDED,
        "call withdrawn": WAIT,
        "POST withdrawn, may have landed": FIND_OUT,
        "DSP refused": FAILED,
        "found an entity": WAIT,
        "found nothing": WAIT,
        "poll answered pending": WAIT,
        "poll answered active": WAIT,
        "archived": WAIT,
        "archive refused": WAIT,
        "ending recorded": Done(),
    },
    "ready": {
        "cancel": CANCELLED,
        "resubmit": Load(),
        "parent succeeded": SEND,
        "parent failed": BLOCKED,
        "parent at a new version": WAIT,
        "POST/PUT answered pending": POLL,
        "POST/PUT answered active": SUCCEEDED,
        "call withdrawn": SEND,
        "POST withdrawn, may have landed": FIND_OUT,
        "DSP refused": FAILED,
        "found an entity": Send(1, "cmp_9", ((PARENT, "adv_1"),)),  # PUT over what landed
        "found nothing": SEND,
        "poll answered pending": SEND,
        "poll answered active": SEND,
        "archived": SEND,
        "archive refused": SEND,
        "ending recorded": Done(),
    },
    "review": {
        "cancel": ARCHIVE,
        "resubmit": Load(),
        "parent succeeded": POLL,
        "parent failed": POLL,  # submitted already: the DSP decides now
        "parent at a new version": POLL,
        "POST/PUT answered pending": POLL,
        "POST/PUT answered active": SUCCEEDED,
        "call withdrawn": POLL,
        "POST withdrawn, may have landed": FIND_OUT,
        "DSP refused": FAILED,
        "found an entity": Poll("cmp_9"),
        "found nothing": POLL,
        "poll answered pending": POLL,
        "poll answered active": SUCCEEDED,
        "archived": Finish(Ending(EntityStatus.CANCELLED)),  # archived by someone else
        "archive refused": POLL,
        "ending recorded": Done(),
    },
    "archiving": {
        "cancel": ARCHIVE,
        "resubmit": Load(),  # the last word: the new version is PUT over cmp_1
        "parent succeeded": ARCHIVE,
        "parent failed": ARCHIVE,
        "parent at a new version": ARCHIVE,
        "POST/PUT answered pending": ARCHIVE,
        "POST/PUT answered active": ARCHIVE,  # whatever the answer on its way says
        "call withdrawn": ARCHIVE,
        "POST withdrawn, may have landed": FIND_OUT,
        "DSP refused": ARCHIVE,
        "found an entity": Archive("cmp_9"),
        "found nothing": ARCHIVE,
        "poll answered pending": ARCHIVE,
        "poll answered active": ARCHIVE,
        "archived": CANCELLED,
        "archive refused": REFUSED_ARCHIVE,
        "ending recorded": Done(),
    },
    "ended": {
        **dict.fromkeys(EVENTS, Done()),
        "resubmit": Load(),
        "POST withdrawn, may have landed": FIND_OUT,
    },
}


@pytest.mark.parametrize("event_name", list(EVENTS))
@pytest.mark.parametrize("phase_name", list(PHASES))
def test_every_phase_meets_every_event(phase_name: str, event_name: str) -> None:
    _, step = decide(PHASES[phase_name], EVENTS[event_name])
    assert step == EXPECTED[phase_name][event_name]


def test_the_phases_are_named_as_the_readme_draws_them() -> None:
    assert {name: facts.phase for name, facts in PHASES.items()} == {
        "loading": Phase.LOADING,
        "waiting": Phase.WAITING,
        "ready": Phase.WAITING,
        "review": Phase.REVIEW,
        "archiving": Phase.ARCHIVING,
        "ended": Phase.ENDED,
    }


def test_a_resubmit_while_the_posts_answer_is_on_its_way_puts_over_the_entity_it_names() -> None:
    facts = facts_after(Loaded(snapshot(parent=EntityStatus.SUCCEEDED)))
    sending = next_step(facts)
    facts = apply(facts, ResubmitAsked(2))
    assert not still_wanted(facts, sending)  # a held POST is withdrawn
    facts, step = decide(facts, Sent("cmp_1", "active"))  # but it had left
    assert step == Load()
    facts, step = decide(facts, Loaded(snapshot(version=2, parent=EntityStatus.SUCCEEDED)))
    assert step == Announce(2)
    facts, step = decide(facts, Announced())
    assert step == Send(2, "cmp_1", ((PARENT, "adv_1"),))


def test_a_cancel_wins_over_a_status_read_that_answers_approved() -> None:
    facts = apply(PHASES["review"], CancelAsked("no"))
    assert not still_wanted(facts, POLL)
    _, step = decide(facts, Polled("active"))
    assert step == ARCHIVE


def test_a_cancel_while_a_new_version_waits_archives_the_earlier_versions_entity() -> None:
    v2 = snapshot(version=2, status=EntityStatus.WAITING, dsp_id="cmp_1", dsp_status="active")
    facts = facts_after(Loaded(v2), Announced())
    assert next_step(facts) == WAIT
    _, step = decide(facts, CancelAsked("no"))
    assert step == ARCHIVE


def test_what_a_lost_post_created_is_found_out_before_any_word_is_carried_out() -> None:
    facts = facts_after(
        Loaded(snapshot(parent=EntityStatus.SUCCEEDED)), CancelAsked("no"), Withdrawn(ATTEMPT)
    )
    assert next_step(facts) == FIND_OUT
    assert still_wanted(apply(facts, ResubmitAsked(3)), FIND_OUT)  # never withdrawn
    facts, step = decide(facts, FoundOut("cmp_7", "pending"))
    assert step == Archive("cmp_7")
    facts, step = decide(facts, Archived("archived"))
    assert step == CANCELLED


def test_a_resubmit_after_the_archive_was_asked_posts_a_new_entity() -> None:
    facts = apply(PHASES["archiving"], ResubmitAsked(2))
    assert still_wanted(facts, ARCHIVE)  # once asked, the archive happens
    facts, step = decide(facts, Archived("archived"))
    assert step == Load()
    facts, step = decide(facts, Loaded(snapshot(version=2, parent=EntityStatus.SUCCEEDED)))
    facts, step = decide(facts, Announced())
    assert step == Send(2, None, ((PARENT, "adv_1"),))  # an archived entity takes no PUT


def test_a_cancel_after_the_ending_is_recorded_is_too_late() -> None:
    _, step = decide(PHASES["ended"], CancelAsked("no"))
    assert step == Done()


def test_a_cancel_then_a_resubmit_ends_in_the_new_version_and_the_reverse_cancels() -> None:
    review = PHASES["review"]
    assert next_step(facts_after_from(review, CancelAsked("no"), ResubmitAsked(2))) == Load()
    both = facts_after_from(review, ResubmitAsked(2), CancelAsked("no"))
    assert next_step(both) == Load()  # the newest version first, then its cancel
    _, step = decide(both, Loaded(snapshot(version=2, dsp_id="cmp_1", dsp_status="pending")))
    assert step == ARCHIVE


def facts_after_from(facts: EntityFacts, *events: Event) -> EntityFacts:
    for event in events:
        facts = apply(facts, event)
    return facts


def test_an_older_versions_outcome_of_a_dependency_is_ignored() -> None:
    facts = facts_after(
        Loaded(snapshot()), parent(EntityStatus.WAITING, version=2), parent(EntityStatus.FAILED)
    )
    assert next_step(facts) == WAIT


def test_a_blocked_entity_looks_again_and_tells_its_dependants_first() -> None:
    blocked = snapshot(status=EntityStatus.BLOCKED, parent=EntityStatus.WAITING)
    facts = facts_after(Loaded(blocked))
    assert next_step(facts) == Announce(1)  # its dependency is no longer failed
    still_blocked = snapshot(status=EntityStatus.BLOCKED, parent=EntityStatus.FAILED)
    assert next_step(facts_after(Loaded(still_blocked))) == Done()


def test_a_blocked_ending_that_a_dependencys_new_version_reopens_looks_again() -> None:
    facts = facts_after(Loaded(snapshot()), parent(EntityStatus.FAILED))
    facts, step = decide(facts, Recorded(BLOCKED.ending))
    assert step == Done()
    _, step = decide(facts, parent(EntityStatus.WAITING, version=2))
    assert step == Announce(1)


def test_a_review_continued_in_a_new_run_polls_the_carried_entity() -> None:
    carry = PollCarry(
        dsp_id="cmp_1", dsp_status="pending", payload_version=1, polls=100, next_interval=0
    )
    facts, step = decide(
        EntityFacts(key=KEY),
        Loaded(snapshot(status=EntityStatus.POLLING, parent=EntityStatus.SUCCEEDED), carry),
    )
    assert step == POLL
    assert facts.polls == 100


def test_a_send_is_withdrawn_when_a_dependency_gets_a_new_version_and_a_poll_is_not() -> None:
    ready = PHASES["ready"]
    assert not still_wanted(apply(ready, parent(EntityStatus.WAITING, version=2)), SEND)
    review = PHASES["review"]
    assert still_wanted(apply(review, parent(EntityStatus.WAITING, version=2)), POLL)


def test_a_lost_post_found_holding_what_it_sent_is_reviewed_without_a_put() -> None:
    facts = facts_after(Loaded(snapshot(parent=EntityStatus.SUCCEEDED)), Withdrawn(ATTEMPT))
    _, step = decide(facts, FoundOut("cmp_7", "pending", holds_attempt=True))
    assert step == Poll("cmp_7")
    _, step = decide(facts, FoundOut("cmp_7", "pending", holds_attempt=False))
    assert step == Send(1, "cmp_7", ((PARENT, "adv_1"),))  # its fields differ: a PUT


def test_a_found_entity_of_an_older_version_takes_the_new_one_as_a_put() -> None:
    facts = facts_after(
        Loaded(snapshot(parent=EntityStatus.SUCCEEDED)), Withdrawn(ATTEMPT), ResubmitAsked(2)
    )
    facts, step = decide(facts, FoundOut("cmp_7", "pending", holds_attempt=True))
    assert step == Load()
    facts, step = decide(facts, Loaded(snapshot(version=2, parent=EntityStatus.SUCCEEDED)))
    facts, step = decide(facts, Announced())
    assert step == Send(2, "cmp_7", ((PARENT, "adv_1"),))
