"""Input handling the API and the pages share, in front of the client API the CLI uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from dsp_integration.client.context import ServiceContext
from dsp_integration.client.submission import SubmitReport, submit
from dsp_integration.contracts import DEFAULT_PRIORITY_LEVEL, DSP_FAIRNESS_WEIGHT, PriorityLevel
from dsp_integration.entities import MAX_FILE_BYTES, Problem, SubmissionRefused, parse_submission


async def read_capped(chunks: AsyncIterator[bytes]) -> bytes:
    """A request body, read no further than one byte past the file size limit."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > MAX_FILE_BYTES:
            break
    return bytes(data[: MAX_FILE_BYTES + 1])


async def submit_file(
    service: ServiceContext,
    data: bytes,
    *,
    filename: str,
    batch: str | None = None,
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL,
    fairness_weight: float = DSP_FAIRNESS_WEIGHT,
) -> SubmitReport:
    """Check the whole file as `starter.py submit` does, then store and start it; raises
    `SubmissionRefused` listing every problem (nothing stored)."""
    if len(data) > MAX_FILE_BYTES:
        raise SubmissionRefused(
            [
                Problem(
                    f"the file is over the limit of {MAX_FILE_BYTES:,} bytes "
                    f"({MAX_FILE_BYTES // 2**20} MiB); split it into several files"
                )
            ]
        )
    submission = parse_submission(data, filename=filename, batch=batch)
    return await submit(service, submission, priority, fairness_weight)


def parse_payload(text: str) -> dict[str, Any] | None:
    """A payload typed into the entity page: blank means the stored one."""
    if not text.strip():
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise SubmissionRefused([Problem(f"not JSON: {error}", field="payload")]) from error
    if not isinstance(payload, dict):
        raise SubmissionRefused([Problem("the payload must be a JSON object", field="payload")])
    return payload
