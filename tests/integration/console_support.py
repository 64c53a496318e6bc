"""The console served by uvicorn in the test's own event loop, on a free port, over the
integration stack's client API; and an httpx client for its API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from devkit.stack.ports import free_port
from dsp_integration.client.context import ServiceContext
from dsp_integration.config import Settings
from dsp_integration.console import create_app

CONSOLE_TOKEN = "console-test-token-9d2e"


@dataclass
class RunningConsole:
    url: str
    token: str | None
    settings: Settings

    def client(self, *, token: str | None = None, authenticated: bool = True) -> httpx.AsyncClient:
        headers = {}
        use = token if token is not None else self.token
        if authenticated and use:
            headers["Authorization"] = f"Bearer {use}"
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@asynccontextmanager
async def running_console(
    settings: Settings,
    service: ServiceContext,
    *,
    token: str | None = CONSOLE_TOKEN,
) -> AsyncIterator[RunningConsole]:
    secret = SecretStr(token) if token else None
    settings = settings.model_copy(update={"console_token": secret})
    port = free_port()
    app: Any = create_app(settings, service=service)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the console stopped before it started")
                await asyncio.sleep(0.02)
        yield RunningConsole(f"http://127.0.0.1:{port}", token, settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)
