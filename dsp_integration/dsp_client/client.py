"""Sending one request to the DSP. Exactly one HTTP attempt per `send`: retries belong to
the caller, so that each one takes a rate-limit slot and leaves an audit row."""

from __future__ import annotations

import errno
import logging
import time

import httpx
from pydantic import SecretStr

from dsp_integration.dsp_client.exchange import (
    DspExchange,
    exchange_from_error,
    exchange_from_response,
)
from dsp_integration.dsp_client.requests import DspRequest, encode_body

logger = logging.getLogger(__name__)

# A DSP answer is a small JSON object; anything near this size is a fault, not an entity.
MAX_READ_BYTES = 1024 * 1024
USER_AGENT = "dsp-integration-service/0.1"
MAX_CONNECTIONS = 32
MAX_KEEPALIVE_CONNECTIONS = 16
KEEPALIVE_EXPIRY_SECONDS = 30.0


def build_http_client(base_url: str, timeout: float) -> httpx.AsyncClient:
    """The DSP's HTTP client: no transport retries, no redirects, no proxy from the
    environment (the base URL is the only network setting). Close it with `async with`."""
    url = httpx.URL(base_url)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"DSP base URL must be an http(s) URL with a host: {base_url!r}")
    if not timeout > 0:
        raise ValueError(f"DSP timeout must be > 0 seconds, got {timeout!r}")
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout),
        transport=httpx.AsyncHTTPTransport(retries=0, limits=limits, trust_env=False),
        follow_redirects=False,
        trust_env=False,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
    )


class DspClient:
    """Sends requests to one DSP; the token comes with each request (it may be renewed
    between two calls: `credentials.TokenSource`)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    def __repr__(self) -> str:
        return f"DspClient(base_url={str(self._http.base_url)!r})"

    async def send(self, request: DspRequest, token: SecretStr) -> DspExchange:
        """Send once with `token` and return what came back. Never raises for an HTTP status
        or a transport failure; a request that cannot be encoded fails in `DspRequest`
        already. The token is scrubbed from whatever is kept of the answer."""
        secrets = (token.get_secret_value(),)
        started = time.perf_counter()
        try:
            response = await self._http.send(self._build(request, token), stream=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            exchange = exchange_from_error(
                describe_error(exc, self._http.timeout),
                elapsed=time.perf_counter() - started,
                secrets=secrets,
            )
            self._log(request, exchange)
            return exchange
        error: str | None = None
        body = b""
        try:
            body, error = await _read_body(response)
        except (httpx.HTTPError, OSError) as exc:
            error = f"answer broke off: {describe_error(exc, self._http.timeout)}"
        finally:
            await response.aclose()
        exchange = exchange_from_response(
            response.status_code,
            response.headers,
            body,
            elapsed=time.perf_counter() - started,
            error=error,
            secrets=secrets,
        )
        self._log(request, exchange)
        return exchange

    def _build(self, request: DspRequest, token: SecretStr) -> httpx.Request:
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        content = None
        if request.body is not None:
            headers["Content-Type"] = "application/json"
            content = encode_body(request.body)
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        return self._http.build_request(
            request.method, request.path, content=content, headers=headers
        )

    @staticmethod
    def _log(request: DspRequest, exchange: DspExchange) -> None:
        logger.debug(
            "DSP %s %s -> %s%s in %.3f s",
            request.method,
            request.path,
            exchange.status_code if exchange.status_code is not None else "no answer",
            f" ({exchange.error})" if exchange.error else "",
            exchange.elapsed,
        )


async def _read_body(response: httpx.Response) -> tuple[bytes, str | None]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ_BYTES:
            return b"".join(chunks), f"answer larger than {MAX_READ_BYTES} bytes; not read in full"
    return b"".join(chunks), None


def describe_error(exc: BaseException, timeout: httpx.Timeout) -> str:
    """A short, secret-free description; httpx's own messages are often empty for timeouts."""
    detail = str(exc).strip() or type(exc).__name__
    match exc:
        case httpx.ConnectTimeout():
            return _timed_out("connecting", timeout.connect)
        case httpx.ReadTimeout():
            return _timed_out("waiting for the answer", timeout.read)
        case httpx.WriteTimeout():
            return _timed_out("sending the request", timeout.write)
        case httpx.PoolTimeout():
            return _timed_out("waiting for a free connection", timeout.pool)
        case httpx.TimeoutException():
            return f"timeout: {detail}"
        case httpx.ConnectError() if _refused(exc):
            return "connection refused"
        case httpx.ConnectError():
            return f"connection failed: {detail}"
        case httpx.RemoteProtocolError():
            return f"protocol error: {detail}"
        case httpx.DecodingError():
            return f"could not decode the answer: {detail}"
        case httpx.NetworkError():
            return f"network error: {detail}"
    return f"{type(exc).__name__}: {detail}"


def _timed_out(doing: str, seconds: float | None) -> str:
    if seconds is None:
        return f"timeout {doing}"
    return f"timeout after {seconds} s {doing}"


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return True
        if "refused" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False
