"""DspClient over real loopback sockets: the faults respx cannot fake (refused ports, silent
servers, bodies that break off) and the token staying out of httpx's own logs."""

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from pydantic import SecretStr

from dsp_integration.dsp_client import (
    DspClient,
    OutcomeKind,
    build_http_client,
    classify,
    create_request,
    parse_created,
    status_request,
)

SENTINEL = "SENTINEL-tok-7d2e90b1c4"
BODY = {"name": "Acme", "domain": "acme.example", "currency": "USD"}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeDsp:
    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []


@asynccontextmanager
async def serve(reply: Handler) -> AsyncIterator[tuple[str, FakeDsp]]:
    state = FakeDsp()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            state.requests.append(head + await reader.readexactly(length))
            await reply(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_good_answer_over_the_wire(caplog: pytest.LogCaptureFixture) -> None:
    body = (
        b'{"id":"adv_1","type":"advertisers","status":"active","created_at":"2026-03-01T00:00:00Z"}'
    )

    async def created(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"X-RateLimit-Limit: 40\r\nX-RateLimit-Remaining: 39\r\nX-RateLimit-Reset: 59.5\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()

    with caplog.at_level(logging.DEBUG):
        async with serve(created) as (url, dsp), build_http_client(url, 5.0) as http:
            client = DspClient(http)
            exchange = await client.send(
                create_request("advertisers", BODY, "acme-v1"), SecretStr(SENTINEL)
            )

    assert parse_created(exchange) == ("adv_1", "active")
    assert (exchange.rate_limit_limit, exchange.rate_limit_remaining) == (40, 39)
    assert exchange.rate_limit_reset == 59.5
    head, _, sent_body = dsp.requests[0].decode().partition("\r\n\r\n")
    request_line, *header_lines = head.split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    assert request_line == "POST /v1/advertisers HTTP/1.1"
    assert headers["authorization"] == f"Bearer {SENTINEL}"
    assert headers["idempotency-key"] == "acme-v1"
    assert headers["content-type"] == "application/json"
    assert json.loads(sent_body) == BODY
    assert "POST /v1/advertisers" in caplog.text
    assert SENTINEL not in caplog.text


async def test_connection_refused() -> None:
    async with build_http_client(f"http://127.0.0.1:{closed_port()}", 5.0) as http:
        exchange = await DspClient(http).send(status_request("campaigns", "c"), SecretStr(SENTINEL))

    assert exchange.status_code is None
    assert exchange.error == "connection refused"
    assert classify(exchange).kind is OutcomeKind.TRANSIENT


async def test_silent_server_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with serve(silent) as (url, dsp), build_http_client(url, 0.2) as http:
        exchange = await DspClient(http).send(status_request("campaigns", "c"), SecretStr(SENTINEL))

    assert exchange.status_code is None
    assert exchange.error == "timeout after 0.2 s waiting for the answer"
    assert 0.2 <= exchange.elapsed < 2
    assert classify(exchange).kind is OutcomeKind.TRANSIENT
    assert dsp.connections == 1


async def test_a_body_that_breaks_off_keeps_its_status() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 200\r\n\r\n{"id": "adv_1", "sta')
        await writer.drain()

    async with serve(truncated) as (url, _), build_http_client(url, 5.0) as http:
        exchange = await DspClient(http).send(
            create_request("advertisers", BODY, "k"), SecretStr(SENTINEL)
        )

    assert exchange.status_code == 201
    assert exchange.error is not None and exchange.error.startswith("answer broke off: ")
    assert exchange.json is None
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert "answer broke off" in outcome.message


async def test_one_send_is_one_attempt() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return

    async with serve(hang_up) as (url, dsp), build_http_client(url, 5.0) as http:
        exchange = await DspClient(http).send(
            create_request("advertisers", BODY, "k"), SecretStr(SENTINEL)
        )

    assert exchange.status_code is None
    assert exchange.error is not None and exchange.error.startswith("protocol error")
    assert (dsp.connections, len(dsp.requests)) == (1, 1)


async def test_http_client_settings() -> None:
    async with build_http_client("http://127.0.0.1:9/", 7.5) as http:
        assert http.timeout == httpx.Timeout(7.5)
        assert http.follow_redirects is False
        assert str(http.base_url) == "http://127.0.0.1:9/"
        # No public API tells the transport's retry count; it must stay 0 so that every
        # attempt is the caller's (a rate-limit slot and an audit row each).
        pool = getattr(http._transport, "_pool", None)
        assert getattr(pool, "_retries", None) == 0


@pytest.mark.parametrize("url", ["127.0.0.1:8765", "ftp://dsp.example", "http://"])
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        build_http_client(url, 5.0)


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_bad_timeouts_are_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        build_http_client("http://127.0.0.1:8765", timeout)
