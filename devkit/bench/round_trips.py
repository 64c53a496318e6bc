"""Database round trips per operation: one DSP request through the gateway, `load_entity`,
`record_status` and `plan_next_poll`.

    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m devkit.bench.round_trips [--repeat 20]

The service's own engine (`database.engine.create_engine`, so its pool settings count)
talks to PostgreSQL through a TCP proxy in this process, which counts round trips (each
time the client speaks again after the server answered: a statement, BEGIN, COMMIT, a
pre-ping, a prepare the statement cache missed) and the BEGIN, COMMIT and ROLLBACK sent on
the wire; SQLAlchemy's `before_cursor_execute` event counts the statements. Each operation
runs twice to warm the caches (prepared statements, the planner's model), then `--repeat`
times; the table shows the means. The
DSP is an httpx mock transport, so only the database is measured. Runs in a database of its
own, dropped at the end."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from pydantic import SecretStr
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from devkit.stack.postgres import create_database, drop_database
from dsp_integration.activities.poll_planner import PollPlanner
from dsp_integration.activities.queue_records import QueueActivities
from dsp_integration.contracts import (
    DEFAULT_SEAT,
    EntityStatus,
    EntityType,
    LoadEntityInput,
    PollPlanInput,
    RecordStatusInput,
)
from dsp_integration.database import queue_store
from dsp_integration.database.engine import create_engine, create_session_factory
from dsp_integration.database.migrate import upgrade
from dsp_integration.dsp_client import DspClient, StaticToken, create_request, status_request
from dsp_integration.gateway.dsp_gateway import DspGateway
from dsp_integration.gateway.rate_limiter import SharedRateLimiter


@dataclass
class Counts:
    round_trips: int = 0
    statements: int = 0
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.round_trips - other.round_trips,
            self.statements - other.statements,
            self.begins - other.begins,
            self.commits - other.commits,
            self.rollbacks - other.rollbacks,
        )


@dataclass
class RoundTripProxy:
    """A TCP proxy in front of PostgreSQL that counts the client's turns to speak."""

    target_host: str
    target_port: int
    counts: Counts = field(default_factory=Counts)
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def count_client(self, data: bytes, *, spoke_last: bool) -> None:
        if not spoke_last:
            self.counts.round_trips += 1
        # asyncpg sends these as simple queries, each its own message.
        self.counts.begins += data.count(b"BEGIN")
        self.counts.commits += data.count(b"COMMIT;")
        self.counts.rollbacks += data.count(b"ROLLBACK;")

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        turn = {"client": False}

        async def pump(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool
        ) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client:
                        self.count_client(data, spoke_last=turn["client"])
                    turn["client"] = from_client
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))


def count_statements(engine: AsyncEngine, counts: Counts) -> None:
    def on_statement(*_: Any) -> None:
        counts.statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_statement)


def dsp_answers(request: httpx.Request) -> httpx.Response:
    if request.method == "POST":
        return httpx.Response(
            201, json={"id": "cmp_1", "type": "campaigns", "status": "pending_review"}
        )
    return httpx.Response(200, json={"id": "cmp_1", "status": "pending_review"})


async def seed(sessions: Any) -> None:
    adv = queue_store.NewEntity(
        key="rt-adv",
        batch="rt",
        entity_type=EntityType.ADVERTISERS.value,
        payload={"name": "Acme"},
        payload_fingerprint="a",
        depends_on=[],
    )
    children = [
        queue_store.NewEntity(
            key=f"rt-cmp{i}",
            batch="rt",
            entity_type=EntityType.CAMPAIGNS.value,
            payload={"name": f"c{i}"},
            payload_fingerprint=f"c{i}",
            depends_on=["rt-adv"],
        )
        for i in range(3)
    ]
    async with sessions.begin() as session:
        await queue_store.insert_new_entities(session, [adv, *children])


async def measure(
    proxy: RoundTripProxy, counts: Counts, repeat: int, work: Callable[[int], Awaitable[Any]]
) -> Counts:
    """The counts of `repeat` runs of `work` (after two runs to warm the caches)."""
    await work(0)
    await work(1)
    before = Counts(**{**vars(proxy.counts), "statements": counts.statements})
    for i in range(repeat):
        await work(i + 2)
    after = Counts(**{**vars(proxy.counts), "statements": counts.statements})
    return after.minus(before)


async def run(server_url: str, repeat: int) -> None:
    name = f"dsp_rt_{uuid.uuid4().hex[:8]}"
    url = await create_database(server_url, name)
    try:
        await upgrade(url)
        parsed = make_url(url)
        proxy = RoundTripProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        port = await proxy.start()
        engine = create_engine(parsed.set(host="127.0.0.1", port=port).render_as_string(False))
        counts = Counts()
        count_statements(engine, counts)
        sessions = create_session_factory(engine)
        try:
            await seed(sessions)
            await report(proxy, counts, sessions, repeat)
        finally:
            await engine.dispose()
            await proxy.stop()
    finally:
        await drop_database(server_url, name)


async def report(proxy: RoundTripProxy, counts: Counts, sessions: Any, repeat: int) -> None:
    limiter = SharedRateLimiter(sessions, seat=DEFAULT_SEAT, limit=100_000, window=1.0, hold=30.0)
    http = httpx.AsyncClient(base_url="http://dsp.test", transport=httpx.MockTransport(dsp_answers))
    gateway = DspGateway(DspClient(http), StaticToken(SecretStr("token")), limiter)
    queue = QueueActivities(sessions, cast(Client, None), "rt")
    planner = PollPlanner(
        sessions, min_interval=1.0, max_interval=60.0, requests_per_second={"default": 40 / 60}
    )

    async def get_status(_: int) -> None:
        await gateway.call("rt-cmp0", status_request(EntityType.CAMPAIGNS, "cmp_1"))

    async def post(i: int) -> None:
        body = {"name": "c0", "advertiser_id": "adv_1"}
        await gateway.call("rt-cmp0", create_request(EntityType.CAMPAIGNS, body, f"rt:v{i}"))

    async def load(_: int) -> None:
        await queue.load_entity(LoadEntityInput(key="rt-cmp1"))

    async def load_parent(_: int) -> None:
        await queue.load_entity(LoadEntityInput(key="rt-adv"))

    async def record_polling(i: int) -> None:
        await queue.record_status(
            RecordStatusInput(
                key="rt-cmp1",
                status=EntityStatus.POLLING,
                payload_version=1,
                dsp_id="cmp_1",
                dsp_status="pending_review" if i % 2 else "in_review",
            )
        )

    async def record_ended(i: int) -> None:
        await queue.record_status(
            RecordStatusInput(
                key="rt-adv",
                status=EntityStatus.SUCCEEDED if i % 2 else EntityStatus.FAILED,
                payload_version=1,
                dsp_id="adv_1",
                dsp_status="active",
            )
        )

    async def plan(i: int) -> None:
        await planner.plan_next_poll(
            PollPlanInput(key="rt-cmp0", entity_type=EntityType.CAMPAIGNS, polls=i % 5)
        )

    rows = [
        ("DSP request (GET status)", get_status),
        ("DSP request (POST)", post),
        ("load_entity (1 dependency)", load),
        ("load_entity (3 dependants)", load_parent),
        ("record_status (polling, dsp facts)", record_polling),
        ("record_status (terminal, count dependants)", record_ended),
        ("plan_next_poll (learned, model cached)", plan),
    ]
    print(f"mean per operation over {repeat} runs (after two to warm the caches)\n")
    print("| operation | round trips | statements | BEGIN | COMMIT | ROLLBACK |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for label, work in rows:
            d = await measure(proxy, counts, repeat, work)
            cells = [d.round_trips, d.statements, d.begins, d.commits, d.rollbacks]
            print(f"| {label} | " + " | ".join(f"{c / repeat:.1f}" for c in cells) + " |")
    finally:
        await http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is required")
    asyncio.run(run(url, args.repeat))


if __name__ == "__main__":
    main()
