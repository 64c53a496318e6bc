"""Entity types, the service's own statuses and how DSP statuses map onto them."""

from __future__ import annotations

from enum import StrEnum


class EntityType(StrEnum):
    ADVERTISERS = "advertisers"
    CAMPAIGNS = "campaigns"
    CREATIVES = "creatives"
    AD_GROUPS = "ad_groups"


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

_SUCCESS_DSP_STATUS: dict[EntityType, str] = {
    EntityType.ADVERTISERS: "active",
    EntityType.CAMPAIGNS: "active",
    EntityType.AD_GROUPS: "active",
    EntityType.CREATIVES: "approved",
}

_FIRST_DSP_STATUS: dict[EntityType, str] = {
    EntityType.ADVERTISERS: "active",
    EntityType.CAMPAIGNS: "pending",
    EntityType.AD_GROUPS: "pending",
    EntityType.CREATIVES: "pending_review",
}


def first_dsp_status(entity_type: EntityType | str) -> str:
    return _FIRST_DSP_STATUS[EntityType(entity_type)]


def service_status_for(entity_type: EntityType | str, dsp_status: str) -> EntityStatus | None:
    """The terminal service status a DSP status means, or None while the DSP is not done."""
    if dsp_status == _SUCCESS_DSP_STATUS[EntityType(entity_type)]:
        return EntityStatus.SUCCEEDED
    if dsp_status == "rejected":
        return EntityStatus.REJECTED
    if dsp_status == "failed":
        return EntityStatus.FAILED
    if dsp_status == "archived":
        return EntityStatus.CANCELLED
    return None


def is_terminal_dsp_status(entity_type: EntityType | str, dsp_status: str) -> bool:
    return service_status_for(entity_type, dsp_status) is not None


def polled_after_post(entity_type: EntityType | str) -> bool:
    """Whether the DSP's first status for this type leaves it to poll (advertisers are
    active at once)."""
    return not is_terminal_dsp_status(entity_type, first_dsp_status(entity_type))
