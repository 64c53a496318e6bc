"""Decision times learned from the audit table: interval-censored rounds, Kaplan-Meier."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dsp_integration.activities.review_times import (
    ReviewObservation,
    ReviewTimes,
    observations_from,
)
from dsp_integration.contracts import EntityType
from dsp_integration.database import audit_log, queue_store
from dsp_integration.database.audit_log import RoundEvent
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_decisions_sit_mid_interval_and_the_survival_steps_down() -> None:
    times = ReviewTimes(
        [ReviewObservation(0, 10), ReviewObservation(10, 30), ReviewObservation(30, 50)]
    )
    assert times.decided == 3
    assert times.survival(4.9) == 1.0
    assert times.survival(5) == pytest.approx(2 / 3)
    assert times.survival(20) == pytest.approx(1 / 3)
    assert times.survival(40) == 0.0
    assert times.quantile(0.5) == 20
    assert times.age_when_survival_below(0.0) == 40


def test_rounds_still_pending_leave_the_risk_set_without_a_decision() -> None:
    # Two decided early, two still pending long after: half are decided, and the estimate
    # knows nothing past the last decision.
    times = ReviewTimes(
        [
            ReviewObservation(0, 2),
            ReviewObservation(0, 4),
            ReviewObservation(100),
            ReviewObservation(200),
        ]
    )
    assert times.decided == 2
    assert times.survival(1.5) == pytest.approx(0.75)
    assert times.survival(2) == pytest.approx(0.5)
    assert times.survival(300) == pytest.approx(0.5)
    assert times.quantile(0.5) == 2
    assert times.quantile(0.9) is None


def test_censoring_before_a_decision_raises_the_later_drop() -> None:
    # One round known to last more than 5 s, then 1 of the 2 still at risk decides at 10 s.
    times = ReviewTimes([ReviewObservation(0, 2), ReviewObservation(5), ReviewObservation(8, 12)])
    assert times.survival(1) == pytest.approx(2 / 3)
    assert times.survival(10) == pytest.approx(0.0)


def test_no_data_means_no_decision_seen() -> None:
    times = ReviewTimes([])
    assert times.decided == 0
    assert times.survival(10) == 1.0
    assert times.quantile(0.5) is None


def audit_row(
    key: str,
    method: str,
    path: str,
    status: int,
    at: float,
    dsp: str = "",
    *,
    dsp_at: float | None = None,
) -> AuditRecord:
    """A row `at` seconds after T0; `dsp_at` puts the DSP's own time in the answer, as
    `created_at` of a POST and `updated_at` of anything else (seconds after T0 too)."""
    answer: dict[str, str] = {"id": "x", "status": dsp} if dsp else {}
    if dsp_at is not None:
        stamp = "created_at" if method == "POST" else "updated_at"
        answer[stamp] = (T0 + timedelta(seconds=dsp_at)).isoformat().replace("+00:00", "Z")
    body = json.dumps(answer) if answer else None
    return AuditRecord(
        entity_key=key,
        method=method,
        path=path,
        response_status=status,
        response_body=body,
        attempt=1,
        started_at=T0 + timedelta(seconds=at),
    )


async def test_rounds_are_read_from_the_audit_table(clean_database: SessionFactory) -> None:
    rows = [
        audit_row("c1", "POST", "/v1/creatives", 201, 0),
        audit_row("c2", "POST", "/v1/creatives", 201, 1),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 5, "pending_review"),
        audit_row("c2", "GET", "/v1/creatives/cre_2/status", 200, 6, "pending_review"),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 20, "approved"),
        audit_row("c2", "GET", "/v1/creatives/cre_2/status", 503, 21),  # tells nothing
        audit_row("c2", "GET", "/v1/creatives/cre_2/status", 200, 31, "pending_review"),
        # Another type, and a POST the DSP refused: not creatives' rounds.
        audit_row("k", "POST", "/v1/campaigns", 201, 0),
        audit_row("k", "GET", "/v1/campaigns/cmp_1/status", 200, 1, "active"),
        audit_row("c3", "POST", "/v1/creatives", 422, 2),
        # A PUT starts a new round: c1 is pending again.
        audit_row("c1", "PUT", "/v1/creatives/cre_1", 200, 40),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 43, "rejected"),
    ]
    async with clean_database.begin() as session:
        session.add_all(rows)

    async with clean_database() as session:
        events = await audit_log.recent_round_events(session, "/v1/creatives", limit=100, scan=1000)
        last_rows = await audit_log.recent_round_events(
            session, "/v1/creatives", limit=2, scan=1000
        )
        last_scanned = await audit_log.recent_round_events(
            session, "/v1/creatives", limit=100, scan=3
        )

    assert observations_from(events, EntityType.CREATIVES) == [
        ReviewObservation(5, 20),
        ReviewObservation(0, 3),
        ReviewObservation(30),
    ]
    # Reads whose round start is beyond the rows read tell nothing.
    assert observations_from(last_rows, EntityType.CREATIVES) == [ReviewObservation(0, 3)]
    # The latest 3 rows hold the PUT and its read only (the campaign's read is not a creative's).
    assert observations_from(last_scanned, EntityType.CREATIVES) == [ReviewObservation(0, 3)]
    assert len(last_scanned) == 2


async def test_the_age_of_a_round_is_timed_by_the_database_clock(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        session.add(audit_row("c1", "POST", "/v1/creatives", 201, 0))
        session.add(
            AuditRecord(
                entity_key="c2",
                method="POST",
                path="/v1/creatives",
                response_status=201,
                attempt=1,
            )
        )
    async with clean_database() as session:
        _, recent = await queue_store.priority_and_round_age(session, "c2", "/v1/creatives")
        _, old = await queue_store.priority_and_round_age(session, "c1", "/v1/creatives")
        _, none = await queue_store.priority_and_round_age(session, "c9", "/v1/creatives")
    assert recent is not None and 0 <= recent < 5
    assert old is not None and old == pytest.approx(
        (datetime.now(UTC) - T0).total_seconds(), abs=60
    )
    assert none is None


def event(key: str, at: float, status: str | None, dsp_at: float | None) -> RoundEvent:
    dsp_time = None if dsp_at is None else T0 + timedelta(seconds=dsp_at)
    return RoundEvent(key, T0 + timedelta(seconds=at), status, dsp_time)


def test_the_dsps_times_place_a_decision_exactly_within_the_reads_interval() -> None:
    events = [
        # Read late (a poll that waited in the queue): decided 7 s into the round, by the DSP.
        event("c1", 0, None, 100.0),
        event("c1", 2, "pending_review", 100.0),
        event("c1", 40, "approved", 107.0),
        # Without the DSP's times: the middle of the interval.
        event("c2", 0, None, None),
        event("c2", 2, "pending_review", None),
        event("c2", 40, "approved", None),
        # Times that contradict our reads (another clock, another meaning): the nearest end.
        event("c3", 0, None, 100.0),
        event("c3", 10, "pending_review", 100.0),
        event("c3", 12, "approved", 101.0),
        event("c4", 0, None, 100.0),
        event("c4", 3, "approved", 500.0),
    ]
    assert observations_from(events, EntityType.CREATIVES) == [
        ReviewObservation(7, 7),
        ReviewObservation(2, 40),
        ReviewObservation(10, 10),
        ReviewObservation(3, 3),
    ]
    assert ReviewTimes(observations_from(events[:3], EntityType.CREATIVES)).quantile(0.5) == 7


async def test_the_dsps_times_are_read_from_the_answers(clean_database: SessionFactory) -> None:
    rows = [
        audit_row("c1", "POST", "/v1/creatives", 201, 0, dsp_at=50),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 30, "approved", dsp_at=56),
        audit_row("c1", "PUT", "/v1/creatives/cre_1", 200, 40, dsp_at=90),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 45, "pending_review", dsp_at=90),
        audit_row("c1", "GET", "/v1/creatives/cre_1/status", 200, 60, "rejected", dsp_at=99),
    ]
    async with clean_database.begin() as session:
        session.add_all(rows)
    async with clean_database() as session:
        events = await audit_log.recent_round_events(session, "/v1/creatives", limit=100, scan=1000)

    assert [e.dsp_at for e in events] == [T0 + timedelta(seconds=s) for s in (50, 56, 90, 90, 99)]
    assert observations_from(events, EntityType.CREATIVES) == [
        ReviewObservation(6, 6),
        ReviewObservation(9, 9),
    ]
