"""Seats on the real stack (dsp-api-v2.md §1-2): each seat's calls go with its own
credentials into its own window, a seat with a backlog does not hold up another, tokens that
expire are refreshed once for all calls, and wrong credentials stop only their seat."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from devkit.bench.workloads import advertiser
from devkit.mock_dsp.config import MockSeat
from devkit.mock_dsp.server import MockDspServer
from devkit.mock_dsp.state import MockDsp
from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.config.seat_config import SeatConfig, default_secret_env
from dsp_integration.database.engine import SessionFactory
from tests.integration.conftest import mock_config, open_test_stack
from tests.integration.fault_support import (
    assert_one_live_entity_per_key,
    audit_rows,
    entities_by_reference,
)
from tests.integration.harness import Stack

pytestmark = pytest.mark.xdist_group("timing")

LIMIT = 6
WINDOW = 2.0
EAST, WEST = "east", "west"


def mock_seat(name: str, *, secret: str | None = None) -> MockSeat:
    return MockSeat(
        client_id=f"{name}-client",
        client_secret=secret or f"{name}-secret",
        rate_limit=LIMIT,
        rate_window=WINDOW,
    )


def seat_config(name: str) -> SeatConfig:
    return SeatConfig(name=name, client_id=f"{name}-client", rate_limit=LIMIT, rate_window=WINDOW)


async def submit_seat_file(stack: Stack, folder: Path, batch: str, seat: str, count: int) -> None:
    """A batch of `count` advertisers of `seat` (one request each)."""
    entities = [advertiser(f"{batch}-a{i}") for i in range(count)]
    path = folder / f"{batch}.json"
    path.write_text(json.dumps({"batch": batch, "seat": seat, "entities": entities}))
    await submit(stack.service, read_submission(path), actor=cli_actor())


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


async def assert_nothing_duplicated(stack: Stack, dsp: MockDsp, batches: tuple[str, ...]) -> None:
    dsp_ids: dict[str, str | None] = {}
    for batch in batches:
        dsp_ids |= {v.key: v.dsp_id for v in await queries.entity_views(stack.service, batch=batch)}
    assert_one_live_entity_per_key(dsp, dsp_ids, await audit_rows(stack.service.sessions))


async def ended(stack: Stack, batch: str, within: float) -> float:
    """Seconds until every entity of `batch` has ended; each must have succeeded."""
    started = time.monotonic()
    while True:
        views = await queries.entity_views(stack.service, batch=batch)
        if views and all(v.finished_at is not None for v in views):
            assert {v.status for v in views} == {"succeeded"}, views
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"{batch} not done in {within:.0f} s"
        await asyncio.sleep(0.1)


OpenSeats = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def open_seats(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    monkeypatch: pytest.MonkeyPatch,
) -> OpenSeats:
    """Opens the stack with seats east (the default) and west, logging in with client
    credentials at a version-2 mock; `west_secret` gives the mock another secret for west
    than the service has, other keywords change the mock's config."""
    for name in (EAST, WEST):
        monkeypatch.setenv(default_secret_env(name), f"{name}-secret")

    def opened(*, west_secret: str | None = None, **mock_update: Any) -> Any:
        seats = {EAST: mock_seat(EAST), WEST: mock_seat(WEST, secret=west_secret)}
        mock_dsp.dsp.config = mock_config().model_copy(
            update={"api_version": 2, "search_lag": 0.5, "seats": seats, **mock_update}
        )
        return open_test_stack(
            database_url,
            temporal_server,
            temporal_client,
            mock_dsp,
            dsp_api_version=2,
            dsp_search_lag=0.5,
            dsp_seats=[seat_config(EAST), seat_config(WEST)],
            dsp_default_seat=EAST,
        )

    return opened


async def test_each_seat_keeps_its_own_window_and_a_backlog_does_not_slow_another(
    open_seats: OpenSeats,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    async with open_seats() as stack:
        # Six windows of east's work, then one of west's: west must not wait behind east.
        await submit_seat_file(stack, tmp_path, "big", EAST, 36)
        await submit_seat_file(stack, tmp_path, "small", WEST, 6)
        west_done = await ended(stack, "small", within=60)
        east_done = await ended(stack, "big", within=120)

    dsp = mock_dsp.dsp
    assert {r.seat for r in dsp.request_log} == {EAST, WEST}
    assert dsp.rate_limited_count() == 0
    assert dsp.max_in_window(WINDOW, seat=EAST) <= LIMIT
    assert dsp.max_in_window(WINDOW, seat=WEST) <= LIMIT
    # Each seat's entities were created in that seat's account, once each.
    for key, views in entities_by_reference(dsp).items():
        assert [v["account"] for v in views] == [WEST if key.startswith("small-") else EAST]
    await assert_nothing_duplicated(stack, dsp, ("big", "small"))
    # West's window of work ends within a few of its windows, long before east's six.
    assert west_done < east_done / 2, (west_done, east_done)


async def test_expired_tokens_are_refreshed_once_and_nothing_is_lost(
    open_seats: OpenSeats,
    mock_dsp: MockDspServer,
    tmp_path: Path,
) -> None:
    async with open_seats(token_lifetime=3.0) as stack:
        await submit_seat_file(stack, tmp_path, "exp", EAST, 30)
        # Every token east holds is refused mid-run, as a DSP that revoked them early would.
        await until(lambda: sum(1 for r in mock_dsp.dsp.request_log if r.seat == EAST) >= 8)
        assert mock_dsp.dsp.expire_tokens(EAST) >= 1
        took = await ended(stack, "exp", within=120)

    dsp = mock_dsp.dsp
    expired = [r for r in dsp.request_log if r.token_expired]
    assert expired, "the refused tokens met no request"
    assert dsp.rate_limited_count() == 0
    assert dsp.max_in_window(WINDOW, seat=EAST) <= LIMIT
    await assert_nothing_duplicated(stack, dsp, ("exp",))
    # One login at start, about one per token lifetime (refreshed shortly before it ends),
    # and one after the early expiry: never one per call.
    logins = dsp.token_request_counts()[f"{EAST}-client"]
    assert logins <= 2 + took / (3.0 * 0.8) + 1, (logins, took)
    # Each refused request was audited (and counted: it is in the seat's window above).
    rows = await audit_rows(stack.service.sessions)
    assert len([row for row in rows if row.response_status == 401]) == len(expired)


async def test_wrong_credentials_stop_only_their_seat(
    open_seats: OpenSeats,
    mock_dsp: MockDspServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    async with open_seats(west_secret="rotated-elsewhere") as stack:
        await submit_seat_file(stack, tmp_path, "wr", WEST, 4)
        await submit_seat_file(stack, tmp_path, "ok", EAST, 6)
        await ended(stack, "ok", within=60)
        await asyncio.sleep(2.0)
        counts = await queries.status_counts(stack.service, "wr")

    assert counts == {"submitting": 4}, counts
    dsp = mock_dsp.dsp
    assert not [r for r in dsp.request_log if r.seat == WEST], "west sent requests with no token"
    assert dsp.token_request_counts().get(f"{WEST}-client", 0) <= 2
    loud = [r for r in caplog.records if WEST in r.getMessage() and r.levelno >= logging.ERROR]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert "rotated-elsewhere" not in caplog.text and "west-secret" not in caplog.text
