"""What an exchange means for the caller: carry on, wait, retry, or give up.

The contract says an answer whose body is empty, truncated or not JSON is a fault, to be
treated like a 5xx. So a 2xx counts only with an entity body, and a 4xx is believed only
with the DSP's error body (401 aside: it means the token either way)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dsp_integration.dsp_client.exchange import DspExchange

DEFAULT_RATE_LIMIT_WAIT = 1.0
EXCERPT_CHARS = 200
REFERENCE_NOT_READY = "reference_not_ready"
TOKEN_EXPIRED = "token_expired"
# 408 Request Timeout and 425 Too Early say "send it again", not "the request is wrong".
RETRYABLE_CLIENT_ERRORS = frozenset({408, 425})


class OutcomeKind(StrEnum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    UNAUTHORIZED = "unauthorized"
    # 401 token_expired (dsp-api-v2.md §2): not processed; a fresh token may send it again.
    TOKEN_EXPIRED = "token_expired"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, kw_only=True)
class DspOutcome:
    kind: OutcomeKind
    code: str | None = None
    message: str
    field: str | None = None
    retry_after: float | None = None
    status_code: int | None = None


class DspResponseError(ValueError):
    """A DSP answer lacks what the contract promises; worth retrying like a 5xx."""


@dataclass(frozen=True)
class _ErrorBody:
    code: str
    message: str
    field: str | None


def classify(exchange: DspExchange) -> DspOutcome:
    status = exchange.status_code
    if status is None:
        return _transient(exchange, f"no answer from the DSP: {exchange.error or 'unknown error'}")
    if 200 <= status < 300:
        problem = _entity_problem(exchange)
        if problem is None:
            replayed = " (idempotent replay)" if exchange.replayed else ""
            return DspOutcome(
                kind=OutcomeKind.OK, message=f"HTTP {status}{replayed}", status_code=status
            )
        return _transient(exchange, f"HTTP {status} treated like a 5xx: {problem}")
    error = _error_body(exchange.json)
    if status == 429:
        return _rate_limited(exchange, error)
    if status == 401:
        if error is not None and error.code == TOKEN_EXPIRED:
            return _from_error(OutcomeKind.TOKEN_EXPIRED, exchange, error, "token expired")
        return _from_error(OutcomeKind.UNAUTHORIZED, exchange, error, "unauthorized")
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS:
        if error is None:
            return _transient(
                exchange,
                f"HTTP {status} without the DSP's error body, treated like a 5xx: "
                f"{_excerpt(exchange)}",
            )
        if status == 404:
            return _from_error(OutcomeKind.NOT_FOUND, exchange, error, "not found")
        if status == 409 and error.code == REFERENCE_NOT_READY:
            return _transient(exchange, f"HTTP 409 {_describe(error)}", error)
        return _from_error(OutcomeKind.REJECTED, exchange, error, f"HTTP {status}")
    detail = _describe(error) if error else _excerpt(exchange)
    return _transient(exchange, f"HTTP {status}: {detail}", error)


def parse_created(exchange: DspExchange) -> tuple[str, str]:
    """`(id, status)` of a `201` create answer."""
    body = _entity_body(exchange)
    return _required(body, "id", exchange), _required(body, "status", exchange)


def parse_status(exchange: DspExchange) -> tuple[str, str | None]:
    """`(status, reason)` of a status, replace or archive answer."""
    body = _entity_body(exchange)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    return _required(body, "status", exchange), reason


@dataclass(frozen=True)
class ListedEntity:
    """One item of a version-2 search answer: the entity as `GET /v1/{type}/{id}` shows it."""

    dsp_id: str
    status: str
    fields: dict[str, Any]


def parse_search(exchange: DspExchange) -> list[ListedEntity]:
    """The items of a `GET /v1/{type}?external_id=` answer, newest first as the DSP lists
    them; an item without an id or a status makes the answer a fault, like a 5xx."""
    items = _entity_body(exchange).get("items")
    if not isinstance(items, list):
        raise DspResponseError(f"DSP search answer has no 'items' list: {_excerpt(exchange)}")
    listed = []
    for item in items:
        if not isinstance(item, dict):
            raise DspResponseError(f"DSP search item is not an object: {_excerpt(exchange)}")
        listed.append(
            ListedEntity(
                dsp_id=_required(item, "id", exchange),
                status=_required(item, "status", exchange),
                fields=item,
            )
        )
    return listed


def _transient(exchange: DspExchange, message: str, error: _ErrorBody | None = None) -> DspOutcome:
    return DspOutcome(
        kind=OutcomeKind.TRANSIENT,
        code=error.code if error else None,
        message=message,
        field=error.field if error else None,
        retry_after=exchange.retry_after,
        status_code=exchange.status_code,
    )


def _rate_limited(exchange: DspExchange, error: _ErrorBody | None) -> DspOutcome:
    """Retry-After is the DSP's word; without it the window's reset time is the next best."""
    wait = exchange.retry_after
    if wait is None:
        wait = exchange.rate_limit_reset or DEFAULT_RATE_LIMIT_WAIT
    return DspOutcome(
        kind=OutcomeKind.RATE_LIMITED,
        code=error.code if error else "rate_limited",
        message=_describe(error) if error else "rate limited",
        field=error.field if error else None,
        retry_after=wait,
        status_code=exchange.status_code,
    )


def _from_error(
    kind: OutcomeKind, exchange: DspExchange, error: _ErrorBody | None, fallback: str
) -> DspOutcome:
    if error is None:
        message = f"{fallback}: {_excerpt(exchange)}"
    else:
        message = _describe(error)
    return DspOutcome(
        kind=kind,
        code=error.code if error else None,
        message=message,
        field=error.field if error else None,
        status_code=exchange.status_code,
    )


def _describe(error: _ErrorBody) -> str:
    where = f"{error.code} on {error.field}" if error.field else error.code
    return f"{where}: {error.message}" if error.message else where


def _error_body(payload: Any) -> _ErrorBody | None:
    """The contract's `{"error": {"code", "message", "field"}}`, or None if it is not that."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    code, message, field = error.get("code"), error.get("message"), error.get("field")
    if not isinstance(code, str) or not code:
        return None
    return _ErrorBody(
        code=code,
        message=message if isinstance(message, str) else "",
        field=field if isinstance(field, str) and field else None,
    )


def _entity_problem(exchange: DspExchange) -> str | None:
    if exchange.error is not None:
        return f"a broken answer ({exchange.error})"
    if not exchange.body_text.strip():
        return "an empty body"
    if exchange.json is None:
        return f"a body that is not JSON: {_excerpt(exchange)}"
    if not isinstance(exchange.json, dict):
        return f"a body that is not a JSON object: {_excerpt(exchange)}"
    if isinstance(exchange.json.get("items"), list):  # a search's answer
        return None
    missing = [key for key in ("id", "status") if not _is_text(exchange.json.get(key))]
    if missing:
        return f"a body without {' and '.join(repr(key) for key in missing)}: {_excerpt(exchange)}"
    return None


def _entity_body(exchange: DspExchange) -> dict[str, Any]:
    if not isinstance(exchange.json, dict):
        raise DspResponseError(
            f"DSP answer (HTTP {exchange.status_code}) is not a JSON object: {_excerpt(exchange)}"
        )
    return exchange.json


def _required(body: dict[str, Any], key: str, exchange: DspExchange) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise DspResponseError(
            f"DSP answer (HTTP {exchange.status_code}) has no {key!r} string: {_excerpt(exchange)}"
        )
    return value


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _excerpt(exchange: DspExchange) -> str:
    text = " ".join(exchange.body_text.split())
    if not text:
        return "empty body"
    if len(text) > EXCERPT_CHARS:
        return repr(text[:EXCERPT_CHARS] + "...")
    return repr(text)
