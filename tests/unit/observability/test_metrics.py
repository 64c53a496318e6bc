"""The service's own metrics, read back through a Temporal runtime's metric buffer."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update
from temporalio import activity
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from dsp_integration.config.seats import Seat
from dsp_integration.contracts import DEFAULT_SEAT
from dsp_integration.database import queue_store
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import QueuedEntity, RateLedgerEntry, RateWaiter
from dsp_integration.observability import metrics
from dsp_integration.observability.metrics import (
    DSP_BUDGET_USED,
    DSP_CALLS_WAITING,
    DSP_ENTITIES,
    DSP_OLDEST_REVIEW,
    DSP_RATE_LIMITED,
    DSP_REQUESTS,
    DSP_REQUESTS_IN_WINDOW,
    DSP_TIME_TO_TERMINAL,
    DSP_UNKNOWN_STATUS,
    WorkerGauges,
    count_dsp_request,
    endpoint_of,
    install_runtime,
    observe_entity_finished,
)
from dsp_integration.worker.logging_setup import JsonFormatter


def buffered_runtime() -> tuple[Runtime, MetricBuffer]:
    buffer = MetricBuffer(10_000)
    return Runtime(telemetry=TelemetryConfig(metrics=buffer)), buffer


def updates(buffer: MetricBuffer, name: str) -> list[tuple[dict, float]]:
    return [
        (dict(u.attributes), u.value) for u in buffer.retrieve_updates() if u.metric.name == name
    ]


def test_endpoints_name_the_path_template_not_the_entity() -> None:
    assert endpoint_of("POST", "/v1/campaigns") == "POST /v1/campaigns"
    assert endpoint_of("GET", "/v1/creatives/cre_8f/status") == "GET /v1/creatives/{id}/status"
    assert endpoint_of("PUT", "/v1/ad_groups/agr_1") == "PUT /v1/ad_groups/{id}"
    assert endpoint_of("DELETE", "/v1/ad_groups/agr_1") == "DELETE /v1/ad_groups/{id}"


async def test_dsp_requests_are_counted_by_endpoint_and_status_429s_apart() -> None:
    runtime, buffer = buffered_runtime()
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter

    @activity.defn
    async def calls() -> None:
        count_dsp_request("GET", "/v1/creatives/cre_1/status", 200)
        count_dsp_request("GET", "/v1/creatives/cre_2/status", 429, seat="acme-eu")
        count_dsp_request("POST", "/v1/creatives", None)

    await env.run(calls)
    got = buffer.retrieve_updates()
    requests = [(dict(u.attributes), u.value) for u in got if u.metric.name == DSP_REQUESTS]
    assert [(a["endpoint"], a["status"], a["seat"], v) for a, v in requests] == [
        ("GET /v1/creatives/{id}/status", "200", DEFAULT_SEAT, 1),
        ("GET /v1/creatives/{id}/status", "429", "acme-eu", 1),
        ("POST /v1/creatives", "none", DEFAULT_SEAT, 1),
    ]
    limited = [dict(u.attributes) for u in got if u.metric.name == DSP_RATE_LIMITED]
    assert [(a["endpoint"], a["seat"]) for a in limited] == [
        ("GET /v1/creatives/{id}/status", "acme-eu")
    ]


def test_outside_an_activity_metrics_go_to_the_no_op_meter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside an activity there is no activity meter to ask (asking raises): the records go
    to `MetricMeter.noop`, stood in for here by a buffered meter to see them arrive."""
    runtime, buffer = buffered_runtime()
    monkeypatch.setattr(metrics, "MetricMeter", SimpleNamespace(noop=runtime.metric_meter))
    now = datetime.now(UTC)

    count_dsp_request("GET", "/v1/campaigns/cmp_1/status", 429)
    observe_entity_finished("campaigns", "succeeded", now - timedelta(seconds=3), now)

    got = [
        (u.metric.name, {k: v for k, v in u.attributes.items() if k != "service_name"}, u.value)
        for u in buffer.retrieve_updates()
    ]
    assert got == [
        (
            DSP_REQUESTS,
            {"endpoint": "GET /v1/campaigns/{id}/status", "status": "429", "seat": DEFAULT_SEAT},
            1,
        ),
        (DSP_RATE_LIMITED, {"endpoint": "GET /v1/campaigns/{id}/status", "seat": DEFAULT_SEAT}, 1),
        (DSP_TIME_TO_TERMINAL, {"entity_type": "campaigns", "status": "succeeded"}, 3.0),
    ]


async def test_time_to_terminal_is_recorded_in_seconds() -> None:
    runtime, buffer = buffered_runtime()
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    finished = datetime.now(UTC)

    @activity.defn
    async def finish() -> None:
        observe_entity_finished("creatives", "rejected", finished - timedelta(hours=2), finished)

    await env.run(finish)
    [(attributes, value)] = updates(buffer, DSP_TIME_TO_TERMINAL)
    assert value == 7200.0
    assert attributes["entity_type"] == "creatives" and attributes["status"] == "rejected"


def seat(name: str, limit: int) -> Seat:
    return Seat(name, "http://dsp.example", 2, 0.0, limit, 60.0, SecretStr("unused"))


async def test_gauges_report_entities_by_status_and_each_seats_budget(
    clean_database: SessionFactory,
) -> None:
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                queue_store.NewEntity(f"g{i}", "gauges", "advertisers", {}, "fp", [])
                for i in range(3)
            ],
        )
        now = await session.scalar(select(func.clock_timestamp()))
        session.add_all(RateLedgerEntry(seat=DEFAULT_SEAT, granted_at=now) for _ in range(5))
        session.add_all(RateLedgerEntry(seat="acme-eu", granted_at=now) for _ in range(3))
        session.add_all(RateWaiter(seat="acme-eu", seen_at=now) for _ in range(2))
    runtime, buffer = buffered_runtime()
    seats = [seat(DEFAULT_SEAT, 20), seat("acme-eu", 4)]
    gauges = WorkerGauges(runtime.metric_meter, clean_database, seats=seats)

    await gauges.collect()

    got = buffer.retrieve_updates()
    entities = {u.attributes["status"]: u.value for u in got if u.metric.name == DSP_ENTITIES}
    assert entities["waiting"] == 3
    assert entities["succeeded"] == 0 and entities["blocked"] == 0

    def by_seat(name: str) -> dict[str, float]:
        return {u.attributes["seat"]: u.value for u in got if u.metric.name == name}

    assert by_seat(DSP_BUDGET_USED) == {DEFAULT_SEAT: 0.25, "acme-eu": 0.75}
    assert by_seat(DSP_REQUESTS_IN_WINDOW) == {DEFAULT_SEAT: 5, "acme-eu": 3}
    assert by_seat(DSP_CALLS_WAITING) == {DEFAULT_SEAT: 0, "acme-eu": 2}


async def test_gauges_show_unknown_dsp_statuses_and_the_oldest_review_per_type(
    clean_database: SessionFactory,
) -> None:
    """The runbook's alerts on DSP statuses the contract does not name, and on entities under
    review for longer than expected, read these two gauges."""
    rows = {
        "c-limbo": ("creatives", "polling", "in_limbo", 3600),  # unknown while open: counted
        "c-review": ("creatives", "polling", "pending_review", 600),
        "g-odd": ("ad_groups", "polling", "paused", 60),  # unknown: counted
        "g-ended": ("ad_groups", "failed", "weird", 7200),  # ended: not counted
        "m-fine": ("campaigns", "polling", "pending", 30),
    }
    async with clean_database.begin() as session:
        await queue_store.insert_new_entities(
            session,
            [
                queue_store.NewEntity(key, "attention", kind, {}, "fp", [])
                for key, (kind, _, _, _) in rows.items()
            ],
        )
        now = await session.scalar(select(func.clock_timestamp()))
        for key, (_, status, dsp_status, age) in rows.items():
            await session.execute(
                update(QueuedEntity)
                .where(QueuedEntity.key == key)
                .values(
                    status=status,
                    dsp_status=dsp_status,
                    submitted_at=now - timedelta(seconds=age),
                )
            )
    runtime, buffer = buffered_runtime()
    gauges = WorkerGauges(runtime.metric_meter, clean_database, seats=[seat(DEFAULT_SEAT, 20)])

    await gauges.collect()

    got = buffer.retrieve_updates()

    def by_type(name: str) -> dict[str, float]:
        return {u.attributes["entity_type"]: u.value for u in got if u.metric.name == name}

    assert by_type(DSP_UNKNOWN_STATUS) == {
        "advertisers": 0,
        "campaigns": 0,
        "creatives": 1,
        "ad_groups": 1,
    }
    oldest = by_type(DSP_OLDEST_REVIEW)
    assert 3600 <= oldest["creatives"] < 3660
    assert 60 <= oldest["ad_groups"] < 120
    assert 30 <= oldest["campaigns"] < 90
    assert oldest["advertisers"] == 0


def test_json_logs_carry_the_entity_key_workflow_id_and_attempt() -> None:
    record = logging.LogRecord("activities", logging.INFO, __file__, 1, "DSP %s", ("GET",), None)
    record.temporal_activity = {
        "workflow_id": "dsp-entity-acme-spring",
        "activity_type": "poll_status",
        "activity_id": "7",
        "attempt": 3,
    }

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "DSP GET"
    assert entry["entity_key"] == "acme-spring"
    assert entry["workflow_id"] == "dsp-entity-acme-spring"
    assert entry["attempt"] == 3
    assert entry["level"] == "info"


def test_a_metrics_port_in_use_is_an_os_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"METRICS_PORT={port}"):
            install_runtime(port, host="127.0.0.1")


def test_without_a_metrics_port_there_is_no_runtime() -> None:
    assert install_runtime(None) is None
