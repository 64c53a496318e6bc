"""Input handling the API and the pages share, in front of the client API the CLI uses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.requests import Request

from dsp_integration.client.action_records import ActionScope, refusals_recorded
from dsp_integration.client.actors import Actor
from dsp_integration.client.context import ServiceContext
from dsp_integration.client.submission import SubmitReport, submit
from dsp_integration.console.actors import actor_of
from dsp_integration.contracts import DEFAULT_PRIORITY_LEVEL, DSP_FAIRNESS_WEIGHT, PriorityLevel
from dsp_integration.database.action_log import Action
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
    actor: Actor,
    batch: str | None = None,
    priority: PriorityLevel = DEFAULT_PRIORITY_LEVEL,
    fairness_weight: float = DSP_FAIRNESS_WEIGHT,
) -> SubmitReport:
    """Check the whole file as `starter.py submit` does, then store and start it; raises
    `SubmissionRefused` listing every problem (nothing stored). A file refused before it is
    read as entities (too large, not JSON) is recorded as `actor`'s refused submit too."""
    scope = ActionScope(actor, Action.SUBMIT, batch=batch)
    scope.extra.update(new_level=priority.value, new_weight=fairness_weight)
    async with refusals_recorded(service.sessions, scope):
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
    return await submit(service, submission, priority, fairness_weight, actor=actor)


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


def input_refusals(
    request: Request, action: Action, *, batch: str | None = None, entity_key: str | None = None
) -> AbstractAsyncContextManager[ActionScope]:
    """Record a refusal of the request's input (a level, a weight, a payload that is not
    JSON) raised in the block as the requester's refused `action`, as the client API does
    for the refusals it raises itself."""
    service: ServiceContext = request.app.state.service
    scope = ActionScope(actor_of(request), action, batch=batch, entity_key=entity_key)
    return refusals_recorded(service.sessions, scope)
