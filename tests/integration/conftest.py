"""Per-test stack: clean tables, a reset mock DSP, an in-process worker on a fresh queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.server import MockDspServer
from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.database.engine import SessionFactory
from tests.integration.harness import TEST_TOKEN, Stack, open_stack, stack_settings

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under this folder `integration`, so `-m integration` selects them.

    A conftest's `pytestmark` is ignored by pytest, and this hook sees the whole session's
    items, hence the path test."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


def mock_config() -> MockDspConfig:
    return MockDspConfig(
        token=TEST_TOKEN,
        rate_limit=30,
        rate_window=3.0,
        propagation_delay=0.3,
        pending_seconds=0.5,
        review_seconds=2.0,
    )


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockDspServer]:
    with MockDspServer(mock_config()) as server:
        yield server


@pytest.fixture
def mock_dsp(mock_server: MockDspServer) -> MockDspServer:
    mock_server.dsp.reset()
    mock_server.dsp.config = mock_config()
    return mock_server


@asynccontextmanager
async def open_test_stack(
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    settings = stack_settings(
        database_url=database_url,
        temporal_address=temporal_server.address,
        dsp_base_url=mock_dsp.base_url,
        **overrides,
    )
    async with open_stack(settings, temporal_client) as opened:
        yield opened


@pytest_asyncio.fixture
async def stack(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
) -> AsyncIterator[Stack]:
    async with open_test_stack(database_url, temporal_server, temporal_client, mock_dsp) as opened:
        yield opened


# 4 requests a second, so a backlog forms in the DSP queue within a few seconds.
SLOW_LIMIT = 8
SLOW_WINDOW = 2.0


@pytest_asyncio.fixture
async def slow_stack(
    clean_database: SessionFactory,
    database_url: str,
    temporal_server: TemporalDevServer,
    temporal_client: Client,
    mock_dsp: MockDspServer,
) -> AsyncIterator[Stack]:
    """The stack with the mock DSP and the service at SLOW_LIMIT per SLOW_WINDOW."""
    mock_dsp.dsp.config = mock_config().model_copy(
        update={"rate_limit": SLOW_LIMIT, "rate_window": SLOW_WINDOW}
    )
    async with open_test_stack(
        database_url,
        temporal_server,
        temporal_client,
        mock_dsp,
        dsp_rate_limit=SLOW_LIMIT,
        dsp_rate_window=SLOW_WINDOW,
    ) as opened:
        yield opened
