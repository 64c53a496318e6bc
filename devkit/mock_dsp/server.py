"""The mock DSP over real HTTP: uvicorn in a background thread on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

from devkit.mock_dsp.app import create_app
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.state import MockDsp, RequestListener, TokenRequestListener


class UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the owner decides when it stops (uvicorn's
    handlers re-raise the signal after shutdown, which would kill the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_server(
    app: Starlette, host: str, port: int, *, shutdown_timeout: float = 2.0
) -> UvicornServer:
    """`shutdown_timeout`: how long open requests (a `slow` fault) may hold up stopping."""
    return UvicornServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # uvicorn hands it to asyncio.wait_for, which takes fractions of seconds.
            timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
        )
    )


class MockDspServer:
    """`with MockDspServer(config) as server:` serves on `server.base_url` (a free port
    unless `port` is given); `server.dsp` is the state the tests inspect."""

    def __init__(
        self,
        config: MockDspConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: RequestListener | None = None,
        on_token_request: TokenRequestListener | None = None,
        shutdown_timeout: float = 0.5,
    ) -> None:
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self.app = create_app(config, on_request=on_request, on_token_request=on_token_request)
        self._requested_port = port
        self._port: int | None = None
        self._socket: socket.socket | None = None
        self._server: UvicornServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dsp(self) -> MockDsp:
        return self.app.state.dsp

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the mock DSP server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            return
        # Binding here, not in uvicorn, gives the free port before the thread starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        self._server = uvicorn_server(
            self.app, self.host, self._port, shutdown_timeout=self.shutdown_timeout
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="mock-dsp", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the mock DSP did not start on {self.host}:{self._port}")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
