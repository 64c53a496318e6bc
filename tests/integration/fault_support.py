"""Checks shared by the fault, crash and secret tests: one DSP entity per key, audit rows
that account for every request the mock saw, scripted faults, a wait that survives outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from temporalio.client import Client

import devkit.mock_dsp.api
from devkit.mock_dsp.api import ApiAnswer, ApiCall
from devkit.mock_dsp.config import FaultKind
from devkit.mock_dsp.request_log import RequestRecord
from devkit.mock_dsp.state import MockDsp
from dsp_integration.client import queries
from dsp_integration.client.context import ServiceContext
from dsp_integration.database import audit_log
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord

TERMINAL = {"succeeded", "rejected", "failed", "cancelled", "blocked"}


async def end_statuses(
    service: ServiceContext,
    keys: Iterable[str],
    *,
    within: float,
    on_tick: Callable[[], None] | None = None,
) -> dict[str, str]:
    """Wait until every key has a terminal status and return them. Database errors (the
    server is being restarted) only mean "look again"; on timeout the assertion shows where
    each entity stands."""
    keys = list(keys)
    deadline = time.monotonic() + within
    statuses: dict[str, str] = {}
    while True:
        if on_tick is not None:
            on_tick()
        try:
            views = await queries.entity_views(service, keys=keys)
            statuses = {view.key: view.status for view in views}
        except (DBAPIError, OSError):  # the database is down on purpose, or starting
            pass
        if statuses and all(status in TERMINAL for status in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            pending = {k: s for k, s in statuses.items() if s not in TERMINAL}
            pytest.fail(f"not ended after {within:.0f} s: {pending}")
        await asyncio.sleep(0.3)


async def audit_rows(sessions: SessionFactory) -> list[AuditRecord]:
    async with sessions() as session:
        return await audit_log.all_requests(session)


def created_entities_by_key(log: list[RequestRecord]) -> dict[str, list[str]]:
    """DSP ids created per entity key (the Idempotency-Key is `<key>:v<version>`)."""
    created: dict[str, list[str]] = defaultdict(list)
    for record in log:
        if record.method == "POST" and record.created_id:
            key = (record.idempotency_key or f"<no key {record.created_id}>").rsplit(":v", 1)[0]
            created[key].append(record.created_id)
    return dict(created)


def assert_one_dsp_entity_per_key(dsp: MockDsp, dsp_ids: Mapping[str, str | None]) -> None:
    """Every POST carried an Idempotency-Key; each key created at most one entity at the
    mock, and that entity is the one the service recorded; every other 2xx POST for the
    key was a replay. `dsp_ids`: the service's key -> dsp_id."""
    log = dsp.request_log
    posts = [r for r in log if r.method == "POST"]
    assert all(r.idempotency_key for r in posts), "a POST without Idempotency-Key"
    created = created_entities_by_key(log)
    duplicates = {key: ids for key, ids in created.items() if len(ids) > 1}
    assert not duplicates, f"keys with more than one DSP entity: {duplicates}"
    assert len(dsp.entity_views()) == sum(len(ids) for ids in created.values())
    for key, ids in created.items():
        assert dsp_ids.get(key) == ids[0], (key, dsp_ids.get(key), ids)
    by_idem: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in posts:
        by_idem[record.idempotency_key or ""].append(record)
    for idem, records in by_idem.items():
        first = next((i for i, r in enumerate(records) if r.created_id), None)
        if first is None:
            continue
        for later in records[first + 1 :]:
            processed = later.fault not in (None, "503_before")
            if 200 <= later.status < 300 or processed:
                assert later.replayed, f"{idem}: a later create was not a replay: {later}"


@dataclass
class AuditMatch:
    """How the audit rows met the mock's request log (see `match_audit`)."""

    answered: int = 0
    unanswered_seen: int = 0
    never_arrived: int = 0
    problems: list[str] = field(default_factory=list)


def match_audit(log: list[RequestRecord], rows: list[AuditRecord]) -> AuditMatch:
    """Match every request the mock saw to its own audit row.

    Requests are grouped by (method, path, Idempotency-Key). Within a group an audit row
    whose answer was recorded matches a mock request with that same HTTP status; a row
    without an answer (the client timed out on a `slow` fault, or the worker or database
    died between sending and recording) may match any request of the group, or none (the
    worker died before the request left, or it never connected). Every mock request must
    be matched, and every row with a recorded answer must be, each to a different one."""
    result = AuditMatch()
    seen: dict[tuple[str, str, str | None], list[RequestRecord]] = defaultdict(list)
    for record in log:
        path = f"{record.path}?{record.query}" if record.query else record.path
        seen[(record.method, path, record.idempotency_key)].append(record)
    audited: dict[tuple[str, str, str | None], list[AuditRecord]] = defaultdict(list)
    for row in rows:
        audited[(row.method, row.path, row.idempotency_key)].append(row)
    for group in seen.keys() | audited.keys():
        requests = seen.get(group, [])
        answered = Counter(r.response_status for r in audited.get(group, []))
        unanswered = answered.pop(None, 0)
        unmatched: list[RequestRecord] = []
        for record in requests:
            if answered[record.status] > 0:
                answered[record.status] -= 1
                result.answered += 1
            else:
                unmatched.append(record)
        extra = +answered
        if extra:
            result.problems.append(f"{group}: answers the DSP never gave: {dict(extra)}")
        if len(unmatched) > unanswered:
            result.problems.append(
                f"{group}: {len(unmatched) - unanswered} request(s) seen by the DSP without "
                f"an audit row: {[(r.status, r.fault) for r in unmatched]}"
            )
        result.unanswered_seen += min(len(unmatched), unanswered)
        result.never_arrived += max(0, unanswered - len(unmatched))
    for row in rows:
        if row.response_status is not None and row.finished_at is None:
            result.problems.append(f"audit row {row.id} has an answer but no finished_at")
    return result


def assert_audit_accounts_for(log: list[RequestRecord], rows: list[AuditRecord]) -> AuditMatch:
    assert log, "the DSP saw no request at all"
    matched = match_audit(log, rows)
    assert not matched.problems, "\n".join(matched.problems)
    return matched


class ScriptedFaults:
    """Faults for chosen requests only: `add(kind, method, idempotency_key=..., path_part=...)`
    queues one fault for the next matching request the DSP processes. Installed by swapping
    `devkit.mock_dsp.api.answer` (the mock answers each request synchronously on its own loop, so
    switching its config around one call affects that call alone)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._queued: list[tuple[FaultKind, str, str | None, str | None]] = []
        self.applied: list[RequestRecord] = []
        self.listeners: list[Callable[[RequestRecord], None]] = []
        original = devkit.mock_dsp.api.answer

        def answer(dsp: MockDsp, call: ApiCall) -> ApiAnswer:
            match = self._take(call)
            if match is None:
                return original(dsp, call)
            kind = match[0]
            saved = dsp._config
            dsp._config = saved.model_copy(update={"fault_rate": 1.0, "fault_kinds": [kind]})
            try:
                result = original(dsp, call)
            finally:
                dsp._config = saved
            if result.record.fault != kind:  # refused earlier (429): keep the fault queued
                self._queued.insert(0, match)
            else:
                self.applied.append(result.record)
                for listener in self.listeners:
                    listener(result.record)
            return result

        monkeypatch.setattr(devkit.mock_dsp.api, "answer", answer)

    def add(
        self,
        kind: FaultKind,
        method: str,
        *,
        idempotency_key: str | None = None,
        path_part: str | None = None,
    ) -> None:
        self._queued.append((kind, method, idempotency_key, path_part))

    def _take(self, call: ApiCall) -> tuple[FaultKind, str, str | None, str | None] | None:
        for index, (_kind, method, idem, part) in enumerate(self._queued):
            if call.method != method:
                continue
            if idem is not None and call.idempotency_key != idem:
                continue
            if part is not None and part not in call.path:
                continue
            return self._queued.pop(index)
        return None

    @property
    def pending(self) -> int:
        return len(self._queued)


async def dump_database(sessions: SessionFactory) -> str:
    """Every row of every table of the public schema, as text."""
    async with sessions() as session:
        tables = (
            await session.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ).scalars()
        parts = []
        for table in list(tables):
            rows = await session.execute(text(f'SELECT t::text FROM "{table}" t'))
            parts.append(f"{table}:\n" + "\n".join(row[0] for row in rows))
    return "\n".join(parts)


async def histories_json(client: Client, task_queue: str) -> dict[str, str]:
    """The JSON history of every workflow run on `task_queue` (all runs, continue-as-new
    included), keyed by `<workflow id>/<run id>`: what the web UI shows."""
    found: dict[str, str] = {}
    async for execution in client.list_workflows(f'TaskQueue="{task_queue}"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        found[f"{execution.id}/{execution.run_id}"] = history.to_json()
    return found


def summarize(log: list[RequestRecord]) -> dict[str, Any]:
    return {
        "requests": len(log),
        "faults": dict(Counter(r.fault for r in log if r.fault)),
        "statuses": dict(Counter(r.status for r in log)),
        "replayed": sum(1 for r in log if r.replayed),
    }


EXTERNAL_ID = "external_id"


def entities_by_reference(dsp: MockDsp) -> dict[str, list[dict[str, Any]]]:
    """The mock's entities grouped by their `external_id`, oldest first."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for view in sorted(dsp.entity_views(), key=lambda v: str(v["created_at"])):
        found[str(view.get(EXTERNAL_ID))].append(view)
    return dict(found)


def assert_one_live_entity_per_key(
    dsp: MockDsp, dsp_ids: dict[str, str | None], rows: list[AuditRecord]
) -> None:
    """At most one live (not archived) entity per key at the mock, and it is the one on the
    key's row; every archived one was archived by a DELETE whose audit row says why; every
    entity carries a key of the run as its reference."""
    noted = {row.path.rsplit("/", 1)[-1]: row.note for row in rows if row.method == "DELETE"}
    for key, views in entities_by_reference(dsp).items():
        assert key in dsp_ids, f"an entity with an unknown reference: {views}"
        live = [v["id"] for v in views if v["status"] != "archived"]
        assert len(live) <= 1, f"{key}: more than one live entity: {live}"
        if live:
            assert dsp_ids[key] == live[0], (key, dsp_ids[key], live)
        for view in views:
            if view["status"] == "archived":
                assert noted.get(view["id"]), f"{key}: {view['id']} archived without a note"


def assert_every_create_carries_its_key(rows: list[AuditRecord]) -> None:
    posts = [row for row in rows if row.method == "POST"]
    assert posts
    for row in posts:
        assert row.request_body is not None
        assert row.request_body.get(EXTERNAL_ID) == row.entity_key, row.request_body
