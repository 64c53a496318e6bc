"""One DSP request as the activities make it: token, slot, audit row, send, audit row, tell
the limiter, verdict (and, when the token had expired, the same once more with a fresh one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dsp_integration.contracts import ErrorType
from dsp_integration.database.audit_log import RequestAnswer, RequestEntry
from dsp_integration.dsp_client import (
    REFERENCE_NOT_READY,
    DspClient,
    DspExchange,
    DspOutcome,
    DspRequest,
    OutcomeKind,
    classify,
)
from dsp_integration.dsp_client.credentials import (
    CredentialsRefused,
    LoginError,
    LoginThrottled,
    TokenSource,
)
from dsp_integration.gateway.rate_limiter import RateSlot, SharedRateLimiter
from dsp_integration.observability.metrics import count_dsp_request

logger = logging.getLogger(__name__)

UNAUTHORIZED_RETRY_DELAY = timedelta(seconds=30)
# A fresh token refused as expired too (a clock far off, a lifetime shorter than a request):
# the activity's retry asks again soon.
TOKEN_EXPIRED_RETRY_DELAY = timedelta(seconds=1)
T = TypeVar("T")


class DspGateway:
    """One seat's DSP calls: its client, its tokens, its share of the shared budget."""

    def __init__(self, client: DspClient, tokens: TokenSource, limiter: SharedRateLimiter) -> None:
        self._client = client
        self._tokens = tokens
        self._limiter = limiter
        self._seat = limiter.seat  # the seat whose budget, so whose calls, these are

    async def call(self, entity_key: str, request: DspRequest) -> DspExchange:
        """Send `request` and return a successful exchange, or raise for Temporal to retry
        (429, transient faults, 401, no token) or to fail the entity (rejected, not found).

        The token comes first: without one nothing is sent and no slot taken (the
        `ApplicationError` then has the `LoginError` as its cause: `sent_nothing`). A
        `401 token_expired` is the DSP's word that it did nothing: the request goes once more
        with a fresh token, in a slot and an audit row of its own (the refused attempt keeps
        its row and its place in the window).

        A cancellation (the user's last word changed) ends the wait for a slot and sends
        nothing (the audit row written with the slot goes again); once the request is on its
        way it is finished and audited, and only a failed answer is then reported as
        cancelled, so the workflow learns of anything created."""
        info = activity.info() if activity.in_activity() else None
        exchange, outcome = await self._attempt(entity_key, request, info)
        if outcome.kind is OutcomeKind.TOKEN_EXPIRED and not _cancel_requested():
            exchange, outcome = await self._attempt(entity_key, request, info)
        return _verdict(entity_key, request, exchange, outcome, self._seat)

    async def _attempt(
        self, entity_key: str, request: DspRequest, info: activity.Info | None
    ) -> tuple[DspExchange, DspOutcome]:
        await self._token(request)  # no slot for a call that could not be sent
        async with self._limiter.slot(_audit_entry(entity_key, request, info)) as slot:
            if _cancel_requested():
                # Nothing left: the slot's audit row goes, whatever else cancels meanwhile.
                await _finish_even_if_cancelled(slot.complete())
                raise asyncio.CancelledError("cancelled before the request left")
            # Asked again now: the wait for the slot may have outlasted the token (with a
            # backlog, seconds to minutes). Usually the same token, from memory.
            token = await self._token(request)
            exchange = await _finish_even_if_cancelled(
                self._send_answered(slot, request, token, info)
            )
            outcome = classify(exchange)
            # What the DSP said of the budget holds whatever the user said meanwhile: a
            # cancel here would lose a 429's pause for every worker, or a success's answer.
            await _finish_even_if_cancelled(_tell_limiter(slot, exchange, outcome))
        if outcome.kind is OutcomeKind.TOKEN_EXPIRED:
            self._tokens.expired(token)
        return exchange, outcome

    async def _token(self, request: DspRequest) -> SecretStr:
        """The seat's token, or the error Temporal retries on (the login's own message, which
        holds no secret, and when to try again)."""
        try:
            return await self._tokens.token()
        except LoginError as error:
            raise _login_failure(request, error) from error

    async def _send_answered(
        self,
        slot: RateSlot,
        request: DspRequest,
        token: SecretStr,
        info: activity.Info | None,
    ) -> DspExchange:
        """Send, then store the answer in the audit row and complete the slot, in one write:
        the part no cancellation may cut short. The audit row was written with the slot,
        before anything left, so a request that may have reached the DSP is always on
        record."""
        slot.leaving()
        exchange = await self._send(request, token, info)
        await slot.complete(
            RequestAnswer(
                response_status=exchange.status_code,
                response_body=exchange.body_text if exchange.status_code is not None else None,
                error=exchange.error,
            )
        )
        return exchange

    async def _send(
        self, request: DspRequest, token: SecretStr, info: activity.Info | None
    ) -> DspExchange:
        exchange = await self._client.send(request, token)
        count_dsp_request(request.method, request.path, exchange.status_code, self._seat)
        if info is not None:
            # The activity logger carries the workflow id (so the entity key) and the attempt.
            activity.logger.info(
                "DSP %s %s -> %s",
                request.method,
                request.path,
                exchange.status_code if exchange.status_code is not None else exchange.error,
            )
        return exchange


def sent_nothing(error: BaseException) -> bool:
    """Whether `error`, raised by `DspGateway.call`, means this call sent nothing to the DSP
    at all: no token could be had. (Its cause is the `LoginError`.)"""
    return isinstance(error.__cause__, LoginError)


def _login_failure(request: DspRequest, error: LoginError) -> ApplicationError:
    delay = timedelta(seconds=error.retry_after) if error.retry_after is not None else None
    message = f"{request.method} {request.path} not sent: {error}"
    if isinstance(error, CredentialsRefused):
        return ApplicationError(
            message,
            type=ErrorType.DSP_UNAUTHORIZED,
            next_retry_delay=delay or UNAUTHORIZED_RETRY_DELAY,
        )
    if isinstance(error, LoginThrottled):
        return ApplicationError(message, type=ErrorType.DSP_RATE_LIMITED, next_retry_delay=delay)
    return ApplicationError(message, type=ErrorType.DSP_TRANSIENT, next_retry_delay=delay)


def _audit_entry(entity_key: str, request: DspRequest, info: activity.Info | None) -> RequestEntry:
    return RequestEntry(
        entity_key=entity_key,
        method=request.method,
        path=request.path,
        request_body=request.body,
        idempotency_key=request.idempotency_key,
        note=request.note,
        attempt=info.attempt if info else 1,
        workflow_id=info.workflow_id if info else None,
        activity_id=info.activity_id if info else None,
    )


async def _tell_limiter(slot: RateSlot, exchange: DspExchange, outcome: DspOutcome) -> None:
    """Complete the slot with what the DSP said about the budget."""
    if outcome.kind is OutcomeKind.RATE_LIMITED:
        # Every worker holds off, not just this one: the budget is the token's.
        await slot.pause(outcome.retry_after or 1.0)
    else:
        await slot.observe(exchange.rate_limit_remaining, exchange.rate_limit_reset)


def _verdict(
    entity_key: str, request: DspRequest, exchange: DspExchange, outcome: DspOutcome, seat: str
) -> DspExchange:
    """The exchange if the DSP said yes; otherwise the error Temporal acts on (a failed
    answer to a cancelled call is reported as the cancellation)."""
    if outcome.kind is not OutcomeKind.OK and _cancel_requested():
        raise asyncio.CancelledError("cancelled; the request did not succeed")
    if outcome.kind is OutcomeKind.RATE_LIMITED:
        retry_after = outcome.retry_after or 1.0
        raise ApplicationError(
            f"{request.method} {request.path}: 429 {outcome.message}",
            type=ErrorType.DSP_RATE_LIMITED,
            next_retry_delay=timedelta(seconds=retry_after),
        )
    _raise_unless_ok(entity_key, request, outcome, seat)
    return exchange


def _cancel_requested() -> bool:
    return activity.in_activity() and activity.is_cancelled()


async def _finish_even_if_cancelled(work: Coroutine[Any, Any, T]) -> T:
    """Await `work` to its end even if this task is cancelled meanwhile (the cancellation is
    absorbed: the caller looks at `activity.is_cancelled()` afterwards)."""
    task = asyncio.ensure_future(work)
    current = asyncio.current_task()
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if current is not None:
                current.uncancel()
            if task.done():
                return task.result()


def _raise_unless_ok(key: str, request: DspRequest, outcome: DspOutcome, seat: str) -> None:
    where = f"{request.method} {request.path}"
    match outcome.kind:
        case OutcomeKind.OK:
            return
        case OutcomeKind.TRANSIENT:
            delay = timedelta(seconds=outcome.retry_after) if outcome.retry_after else None
            not_ready = outcome.code == REFERENCE_NOT_READY
            raise ApplicationError(
                f"{where}: {outcome.message}",
                type=ErrorType.DSP_REFERENCE_NOT_READY if not_ready else ErrorType.DSP_TRANSIENT,
                next_retry_delay=delay,
            )
        case OutcomeKind.UNAUTHORIZED:
            logger.error(
                "DSP refused seat %r's token (401) for %s of entity %s: check the seat's "
                "token or client credentials; its entities keep waiting until it is fixed",
                seat,
                where,
                key,
            )
            raise ApplicationError(
                f"{where}: 401 unauthorized: seat {seat!r}'s token is missing or wrong",
                type=ErrorType.DSP_UNAUTHORIZED,
                next_retry_delay=UNAUTHORIZED_RETRY_DELAY,
            )
        case OutcomeKind.TOKEN_EXPIRED:
            # Refused twice in one call, the second time with a fresh token. Nothing was
            # processed (a 4xx), so this is never a create that "may have landed".
            raise ApplicationError(
                f"{where}: 401 token_expired, again with a fresh token of seat {seat!r}",
                type=ErrorType.DSP_UNAUTHORIZED,
                next_retry_delay=TOKEN_EXPIRED_RETRY_DELAY,
            )
        case OutcomeKind.NOT_FOUND:
            raise ApplicationError(
                f"{where}: not found at the DSP",
                type=ErrorType.DSP_NOT_FOUND,
                non_retryable=True,
            )
        case OutcomeKind.REJECTED:
            raise ApplicationError(outcome.message, type=ErrorType.DSP_REJECTED, non_retryable=True)
