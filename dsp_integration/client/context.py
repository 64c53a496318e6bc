"""What every client operation needs: settings, the database and (lazily) Temporal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.client import Client

from dsp_integration.client.temporal_client import connect_temporal
from dsp_integration.config import Settings
from dsp_integration.database.engine import SessionFactory, open_database


@dataclass
class ServiceContext:
    settings: Settings
    sessions: SessionFactory
    _client: Client | None = field(default=None, repr=False)

    async def temporal(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self.settings)
        return self._client


@asynccontextmanager
async def open_service(
    settings: Settings, *, client: Client | None = None
) -> AsyncIterator[ServiceContext]:
    async with open_database(settings.effective_database_url, pool_size=10) as sessions:
        yield ServiceContext(settings, sessions, client)
