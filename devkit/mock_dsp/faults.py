"""Injected faults. `503_before` refuses a request before anything happens; every other
kind lets the request be processed (entity created, status changed) and breaks the answer,
`drop` by sending none (api.py resets the connection)."""

from __future__ import annotations

import random
from dataclasses import replace

from devkit.mock_dsp.config import FaultKind, MockDspConfig
from devkit.mock_dsp.replies import Reply, error_reply

BEFORE_PROCESSING: frozenset[FaultKind] = frozenset({"503_before"})
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>"


def choose_fault(config: MockDspConfig, rng: random.Random) -> FaultKind | None:
    if config.fault_rate <= 0 or not config.fault_kinds:
        return None
    if rng.random() >= config.fault_rate:
        return None
    return rng.choice(config.fault_kinds)


def unavailable() -> Reply:
    return error_reply(
        503, "service_unavailable", "the DSP is temporarily unavailable", **{"Retry-After": "1"}
    )


def break_reply(kind: FaultKind, reply: Reply) -> Reply:
    """The answer a processed request gets under `kind`, keeping its headers. `slow` keeps
    the answer as is: the caller delays it; so does `drop`: the caller never sends it."""
    match kind:
        case "503_before" | "503_after":
            return unavailable()
        case "truncated":
            content = reply.content
            return replace(reply, raw=content[: max(1, len(content) // 2)])
        case "empty":
            return replace(reply, raw=b"")
        case "html":
            return replace(reply, raw=HTML_PAGE, media_type="text/html")
        case "slow" | "drop":
            return reply
