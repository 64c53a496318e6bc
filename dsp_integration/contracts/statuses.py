"""Entity types, the service's own statuses and how DSP statuses map onto them."""

from __future__ import annotations

from enum import StrEnum

from dsp_integration.contracts.entity_types import ARCHIVED, EntityType, spec_of

# EntityType is defined in contracts.entity_types and imported here for its users.
__all__ = ["EntityType"]


class EntityStatus(StrEnum):
    """The service's status of an entity, stored in `dsp_entity_queue.status`."""

    WAITING = "waiting"
    SUBMITTING = "submitting"
    POLLING = "polling"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


TERMINAL_STATUSES: frozenset[EntityStatus] = frozenset(
    {
        EntityStatus.SUCCEEDED,
        EntityStatus.REJECTED,
        EntityStatus.FAILED,
        EntityStatus.CANCELLED,
        EntityStatus.BLOCKED,
    }
)

# What a terminal DSP status other than success means, whatever the type (a DSP that fails an
# advertiser, which the contract does not foresee, still ends it rather than polling forever).
_ENDINGS: dict[str, EntityStatus] = {
    "rejected": EntityStatus.REJECTED,
    "failed": EntityStatus.FAILED,
    ARCHIVED: EntityStatus.CANCELLED,
}


def first_dsp_status(entity_type: EntityType | str) -> str:
    return spec_of(entity_type).first_status


def service_status_for(entity_type: EntityType | str, dsp_status: str) -> EntityStatus | None:
    """The terminal service status a DSP status means, or None while the DSP is not done."""
    if dsp_status == spec_of(entity_type).success_status:
        return EntityStatus.SUCCEEDED
    return _ENDINGS.get(dsp_status)


def is_terminal_dsp_status(entity_type: EntityType | str, dsp_status: str) -> bool:
    return service_status_for(entity_type, dsp_status) is not None


def polled_after_post(entity_type: EntityType | str) -> bool:
    """Whether the DSP's first status for this type leaves it to poll (advertisers are
    active at once)."""
    return not is_terminal_dsp_status(entity_type, first_dsp_status(entity_type))
