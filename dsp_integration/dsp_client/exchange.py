"""What one request got back from the DSP, raw enough for the audit log, parsed enough for
`classify`. Building one never raises: a bad answer is data, not an exception."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dsp_integration.dsp_client.headers import parse_count, parse_retry_after, parse_seconds

MAX_STORED_BODY_BYTES = 64 * 1024
REDACTED = "[redacted]"
# Shorter secrets would redact ordinary words out of bodies; tokens are never this short.
MIN_REDACTED_SECRET_LENGTH = 6


@dataclass(slots=True)
class DspExchange:
    """`status_code` is None when no answer came (timeout, connection error); `error` then
    says why. `error` may also be set with a status when the body broke off mid-read."""

    status_code: int | None
    body_text: str = field(default="", repr=False)
    json: Any | None = field(default=None, repr=False)
    error: str | None = None
    retry_after: float | None = None
    rate_limit_remaining: int | None = None
    rate_limit_reset: float | None = None
    rate_limit_limit: int | None = None
    replayed: bool = False
    elapsed: float = 0.0
    body_truncated: bool = False


def exchange_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    elapsed: float,
    error: str | None = None,
    secrets: Iterable[str] = (),
) -> DspExchange:
    """`headers` must look names up case-insensitively (as `httpx.Headers` does)."""
    text, valid_utf8 = _decode(body)
    text = redact(text, secrets)
    stored, truncated = _for_storage(text)
    return DspExchange(
        status_code=status_code,
        body_text=stored,
        json=_parse_json(text) if valid_utf8 and error is None else None,
        error=redact(error, secrets) if error is not None else None,
        retry_after=parse_retry_after(headers.get("retry-after")),
        rate_limit_remaining=parse_count(headers.get("x-ratelimit-remaining")),
        rate_limit_reset=parse_seconds(headers.get("x-ratelimit-reset")),
        rate_limit_limit=parse_count(headers.get("x-ratelimit-limit")),
        replayed=(headers.get("idempotent-replayed") or "").strip().lower() == "true",
        elapsed=elapsed,
        body_truncated=truncated,
    )


def exchange_from_error(error: str, *, elapsed: float, secrets: Iterable[str] = ()) -> DspExchange:
    return DspExchange(status_code=None, error=redact(error, secrets), elapsed=elapsed)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= MIN_REDACTED_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


def _decode(body: bytes) -> tuple[str, bool]:
    try:
        return body.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace"), False


def _parse_json(text: str) -> Any | None:
    if not text.strip():
        return None
    try:
        return jsonlib.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _for_storage(text: str) -> tuple[str, bool]:
    """At most MAX_STORED_BODY_BYTES of UTF-8, without NUL characters (PostgreSQL text
    cannot hold them, and a faulty DSP may send binary junk)."""
    text = text.replace("\x00", "\ufffd")
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_STORED_BODY_BYTES:
        return text, False
    return encoded[:MAX_STORED_BODY_BYTES].decode("utf-8", errors="ignore"), True
