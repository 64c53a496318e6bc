"""Names shared by the workflow, the activities and the clients."""

from __future__ import annotations

from enum import StrEnum

ENTITY_WORKFLOW_NAME = "EntityWorkflow"
WORKFLOW_ID_PREFIX = "dsp-entity-"

# Temporal priority keys: lower runs first. Submissions (which unblock work) go before polls.
DSP_ACTIVITY_PRIORITY_SUBMIT = 2
DSP_ACTIVITY_PRIORITY_POLL = 4


def workflow_id_for(key: str) -> str:
    """One workflow id per entity key, so the same key never runs twice at once."""
    return f"{WORKFLOW_ID_PREFIX}{key}"


class ErrorType(StrEnum):
    """`ApplicationError.type` values the DSP activities raise."""

    DSP_REJECTED = "DspRejected"  # 422 / other 4xx: the request is wrong, do not retry
    DSP_NOT_FOUND = "DspNotFound"  # 404 on an id we hold
    DSP_UNAUTHORIZED = "DspUnauthorized"  # 401: operator problem, retried until fixed
    DSP_RATE_LIMITED = "DspRateLimited"  # 429, retried after Retry-After
    DSP_TRANSIENT = "DspTransient"  # 5xx, timeouts, bad bodies, 409 reference_not_ready
