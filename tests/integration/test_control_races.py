"""Two clients at once: concurrent submits of one key and concurrent resubmits are serialised
where they must be, on the real PostgreSQL (and a real Temporal and worker behind them)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from dsp_integration.client import control, submission
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.control import DEPENDENCY_GRAPH_LOCK
from dsp_integration.client.submission import read_submission
from dsp_integration.database import queue_store
from dsp_integration.database.models import QueuedEntity
from dsp_integration.entities import SubmissionRefused
from tests.integration.dag import advertiser, creative, ref
from tests.integration.harness import Stack, write_entities

Blocked = Callable[[], Awaitable[bool]]


async def never_blocked() -> bool:
    return False


class Rendezvous:
    """Holds each of two racing clients at its first pass through an awaited call until the
    other arrives, or until `blocked()` says the other is held elsewhere (e.g. waits on a
    lock): it makes the interleaving a race needs happen every time, not now and then, and
    `met` tells afterwards whether both were at the point together. Only the coroutines run
    through `race` take part; the in-process worker passes freely."""

    def __init__(self, blocked: Blocked = never_blocked, within: float = 30.0) -> None:
        self.met = False
        self._waiting = 0
        self._passed = False
        self._seen: set[asyncio.Task[Any]] = set()
        self._blocked = blocked
        self._within = within
        self._racing: ContextVar[bool] = ContextVar("racing", default=False)

    async def race(self, *calls: Coroutine[Any, Any, Any]) -> list[Any]:
        async def racing(call: Coroutine[Any, Any, Any]) -> Any:
            self._racing.set(True)
            return await call

        return list(await asyncio.gather(*(racing(c) for c in calls), return_exceptions=True))

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def at_point(*args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            if self._racing.get() and task not in self._seen:
                self._seen.add(task)
                self._waiting += 1
                try:
                    async with asyncio.timeout(self._within):
                        while (  # noqa: ASYNC110 (a lock wait has no event to await)
                            self._waiting < 2 and not self._passed and not await self._blocked()
                        ):
                            await asyncio.sleep(0.02)
                    self.met = self.met or self._waiting == 2
                finally:
                    self._waiting -= 1
                    self._passed = True
            return await fn(*args, **kwargs)

        return at_point


def graph_lock_waiter(stack: Stack) -> Blocked:
    """Whether a session of this test's database waits for the dependency-graph lock (a
    bigint advisory lock shows as its high and low 32 bits, objsubid 1)."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = :high AND objid = :low AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    key = {"high": DEPENDENCY_GRAPH_LOCK >> 32, "low": DEPENDENCY_GRAPH_LOCK & 0xFFFFFFFF}

    async def waiting() -> bool:
        async with stack.service.sessions() as session:
            return bool(await session.scalar(query, key))

    return waiting


async def test_concurrent_submits_of_one_key_with_different_payloads_accept_one(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = advertiser("race-adv")
    second = copy.deepcopy(first)
    second["payload"]["name"] = "Another name for the same key"
    files = [
        read_submission(write_entities(tmp_path / f"{n}.json", f"race-{n}", [entity]))
        for n, entity in (("a", first), ("b", second))
    ]
    # Both clients have read the stored rows (and found no such key) before either stores.
    point = Rendezvous()
    monkeypatch.setattr(queue_store, "fetch_entities", point.wrap(queue_store.fetch_entities))

    results = await point.race(
        *(submission.submit(stack.service, f, actor=cli_actor()) for f in files)
    )
    assert point.met, "the two submits did not both read before storing"

    refused = [r for r in results if isinstance(r, SubmissionRefused)]
    accepted = [r for r in results if isinstance(r, submission.SubmitReport)]
    assert len(refused) == 1 and len(accepted) == 1, results
    assert "different payload" in str(refused[0].problems[0])
    async with stack.service.sessions() as session:
        row = await session.get(QueuedEntity, "race-adv")
    assert row is not None
    winner = files[0] if accepted[0].batch == "race-a" else files[1]
    assert row.payload == winner.entities[0].payload
    assert row.batch == accepted[0].batch


async def test_concurrent_resubmits_cannot_store_a_dependency_cycle(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a1 waits for c1 and a2 for c2 (`depends_on`); each resubmit below points one creative
    at the other advertiser. Either alone is fine; both together close c1 -> a2 -> c2 -> a1
    -> c1, so the second must be refused."""
    a1, a2 = advertiser("cyc-a1"), advertiser("cyc-a2")
    a1["depends_on"], a2["depends_on"] = ["cyc-c1"], ["cyc-c2"]
    base = advertiser("cyc-base")
    c1, c2 = creative("cyc-c1", "cyc-base"), creative("cyc-c2", "cyc-base")
    path = write_entities(tmp_path / "cyc.json", "cyc", [base, c1, c2, a1, a2])
    await submission.submit(stack.service, read_submission(path), actor=cli_actor())
    new_c1 = {**c1["payload"], "advertiser_id": ref("cyc-a2")}
    new_c2 = {**c2["payload"], "advertiser_id": ref("cyc-a1")}
    # The first holds the dependency-graph lock at the point; the second waits for it.
    point = Rendezvous(blocked=graph_lock_waiter(stack))
    monkeypatch.setattr(control, "_referenced_ancestors", point.wrap(control._referenced_ancestors))

    results = await point.race(
        control.resubmit(stack.service, "cyc-c1", new_c1, actor=cli_actor()),
        control.resubmit(stack.service, "cyc-c2", new_c2, actor=cli_actor()),
    )
    assert not point.met, "the lock should have kept the second resubmit from the point"

    refused = [r for r in results if isinstance(r, SubmissionRefused)]
    assert len(refused) == 1, results
    assert "cycle" in str(refused[0].problems[0])
    async with stack.service.sessions() as session:
        rows = {
            row.key: row.depends_on
            for row in await session.scalars(
                select(QueuedEntity).where(QueuedEntity.key.like("cyc-%"))
            )
        }
    graph = {key: set(deps) for key, deps in rows.items()}
    assert not _has_cycle(graph), graph


def _has_cycle(graph: dict[str, set[str]]) -> bool:
    done: set[str] = set()
    path: set[str] = set()

    def visit(key: str) -> bool:
        if key in path:
            return True
        if key in done:
            return False
        path.add(key)
        found = any(visit(dep) for dep in graph.get(key, ()))
        path.discard(key)
        done.add(key)
        return found

    return any(visit(key) for key in graph)
