"""Every seat's budget as operators see it (views, the API, the console's index, `status`),
read from the shared ledger of a real PostgreSQL; Temporal's backlog from a stand-in."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from dsp_integration.client import views
from dsp_integration.client.context import ServiceContext
from dsp_integration.commands import starter
from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig
from dsp_integration.contracts import dsp_task_queue
from dsp_integration.database import rate_ledger
from dsp_integration.database.engine import SessionFactory
from dsp_integration.database.models import AuditRecord, QueuedEntity, RateLedgerEntry, RateWaiter
from tests.integration.console_support import running_console

MAIN, OTHER = "main", "acme-eu"  # the default seat is not named `default` here


# Configured as an operator would, with no secret: the budget's readers never call the DSP.
SEATS = [
    SeatConfig(name=OTHER, rate_limit=10, rate_window=30.0),
    SeatConfig(name=MAIN, rate_limit=40, rate_window=60.0),
]


class BacklogTemporal:
    """Answers DescribeTaskQueue with a backlog per task-queue name."""

    def __init__(self, backlogs: dict[str, int]) -> None:
        self.asked: list[str] = []
        self.workflow_service = self
        self._backlogs = backlogs

    async def describe_task_queue(self, request: Any, **_: Any) -> Any:
        self.asked.append(request.task_queue.name)
        count = self._backlogs[request.task_queue.name]
        return SimpleNamespace(stats=SimpleNamespace(approximate_backlog_count=count))


@pytest.fixture
def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        dsp_base_url="http://dsp.example",
        dsp_seats=SEATS,
        dsp_default_seat=MAIN,
    )


@pytest.fixture
async def service(clean_database: SessionFactory, settings: Settings) -> ServiceContext:
    """Seat `main`: 5 slots in its window, one call waiting in a worker, two 429s (one an
    hour ago). Seat `acme-eu`: 3 slots (and one older than its window), paused, one 429."""
    async with clean_database.begin() as session:
        now = await session.scalar(select(func.clock_timestamp()))
        assert now is not None
        for key, owner in (("m1", MAIN), ("o1", OTHER)):
            session.add(
                QueuedEntity(
                    key=key,
                    batch="b",
                    entity_type="advertisers",
                    payload={},
                    payload_fingerprint="fp",
                    status="polling",
                    seat=owner,
                )
            )
        session.add_all(RateLedgerEntry(seat=MAIN, granted_at=now) for _ in range(5))
        session.add_all(RateLedgerEntry(seat=OTHER, granted_at=now) for _ in range(3))
        session.add(RateLedgerEntry(seat=OTHER, granted_at=now - timedelta(seconds=45)))
        session.add(RateWaiter(seat=MAIN, seen_at=now))
        session.add_all(
            AuditRecord(
                entity_key=key,
                method="GET",
                path="/v1/advertisers/x/status",
                attempt=1,
                response_status=429,
                started_at=now - timedelta(seconds=ago),
            )
            for key, ago in (("m1", 1), ("m1", 3600), ("o1", 1))
        )
        await rate_ledger.pause_until(session, OTHER, 12.0)
    return ServiceContext(settings, clean_database)


async def test_the_budget_has_every_seat_the_default_first(service: ServiceContext) -> None:
    budget = await views.budget(service)

    assert budget.default_seat == MAIN
    main, other = budget.seats
    assert (main.seat, main.used, main.limit, main.window_seconds) == (MAIN, 5, 40, 60.0)
    assert (main.waiting_in_workers, main.waiting_for_slot, main.calls_waiting) == (1, None, 1)
    assert (main.throttled_total, main.throttled_in_window, main.paused_seconds) == (2, 1, 0.0)
    assert (other.seat, other.used, other.limit, other.window_seconds) == (OTHER, 3, 10, 30.0)
    assert (other.waiting_in_workers, other.throttled_total, other.throttled_in_window) == (
        0,
        1,
        1,
    )
    assert 10 < other.paused_seconds <= 12


async def test_with_the_backlog_each_seat_asks_its_own_task_queue(
    service: ServiceContext,
) -> None:
    queue = service.settings.temporal_task_queue
    temporal = BacklogTemporal({dsp_task_queue(queue, MAIN): 7, dsp_task_queue(queue, OTHER): 0})
    service._client = temporal  # type: ignore[assignment]

    budget = await views.budget(service, with_backlog=True)

    assert sorted(temporal.asked) == sorted([f"{queue}-dsp-{MAIN}", f"{queue}-dsp-{OTHER}"])
    assert [(b.seat, b.waiting_for_slot, b.calls_waiting) for b in budget.seats] == [
        (MAIN, 7, 8),
        (OTHER, 0, 0),
    ]


async def test_the_api_lists_the_seats_and_keeps_the_default_seats_figures_on_top(
    service: ServiceContext,
) -> None:
    queue = service.settings.temporal_task_queue
    service._client = BacklogTemporal(  # type: ignore[assignment]
        {dsp_task_queue(queue, MAIN): 7, dsp_task_queue(queue, OTHER): 2}
    )
    async with running_console(service.settings, service) as console, console.client() as api:
        answer = await api.get("/api/budget")
        page = await api.get("/")
        schema = (await api.get("/openapi.json")).json()

    assert answer.status_code == 200
    budget = answer.json()
    assert [s["seat"] for s in budget["seats"]] == [MAIN, OTHER]
    main = budget["seats"][0]
    assert {k: v for k, v in budget.items() if k not in ("seats", "default_seat")} == {
        k: v for k, v in main.items() if k != "seat"
    }
    assert budget["default_seat"] == MAIN and budget["used"] == 5 and budget["limit"] == 40
    assert budget["waiting_for_slot"] == 7 and budget["calls_waiting"] == 8
    assert budget["seats"][1]["waiting_for_slot"] == 2 and budget["seats"][1]["used"] == 3
    described = schema["components"]["schemas"]["BudgetOut"]["description"]
    assert "default seat" in described
    assert page.status_code == 200
    assert f'data-seat="{MAIN}"' in page.text and f'data-seat="{OTHER}"' in page.text
    assert "3 / 10 in the last 30 s" in page.text and "5 / 40 in the last 60 s" in page.text


async def test_status_prints_a_row_per_seat(
    service: ServiceContext, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = service.settings.temporal_task_queue
    service._client = BacklogTemporal(  # type: ignore[assignment]
        {dsp_task_queue(queue, MAIN): 7, dsp_task_queue(queue, OTHER): 0}
    )
    await starter._print_budget(service)

    lines = capsys.readouterr().out.splitlines()
    [main] = [line for line in lines if f"{MAIN} (default)" in line]
    [other] = [line for line in lines if OTHER in line]
    assert "5 / 40 per 60 s" in main and "8 (1 + 7)" in main and "│ no " in main
    assert "3 / 10 per 30 s" in other and "0 (0 + 0)" in other and "│ no " not in other
