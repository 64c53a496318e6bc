"""How DSP statuses map onto the service's own (entities-format.md, dsp-api.md)."""

import pytest

from dsp_integration.contracts import (
    TERMINAL_STATUSES,
    EntityStatus,
    EntityType,
    first_dsp_status,
    is_terminal_dsp_status,
    polled_after_post,
    service_status_for,
    workflow_id_for,
)


@pytest.mark.parametrize(
    ("entity_type", "dsp_status", "expected"),
    [
        (EntityType.ADVERTISERS, "active", EntityStatus.SUCCEEDED),
        (EntityType.ADVERTISERS, "archived", EntityStatus.CANCELLED),
        (EntityType.CAMPAIGNS, "pending", None),
        (EntityType.CAMPAIGNS, "active", EntityStatus.SUCCEEDED),
        (EntityType.CAMPAIGNS, "failed", EntityStatus.FAILED),
        (EntityType.AD_GROUPS, "pending", None),
        (EntityType.AD_GROUPS, "active", EntityStatus.SUCCEEDED),
        (EntityType.AD_GROUPS, "failed", EntityStatus.FAILED),
        (EntityType.CREATIVES, "pending_review", None),
        (EntityType.CREATIVES, "active", None),
        (EntityType.CREATIVES, "approved", EntityStatus.SUCCEEDED),
        (EntityType.CREATIVES, "rejected", EntityStatus.REJECTED),
        (EntityType.CREATIVES, "failed", EntityStatus.FAILED),
        (EntityType.CREATIVES, "archived", EntityStatus.CANCELLED),
        (EntityType.CAMPAIGNS, "something_new", None),
    ],
)
def test_dsp_status_maps_to_service_status(
    entity_type: EntityType, dsp_status: str, expected: EntityStatus | None
) -> None:
    assert service_status_for(entity_type, dsp_status) == expected
    assert is_terminal_dsp_status(entity_type, dsp_status) is (expected is not None)


def test_first_status_after_post_is_never_a_failure() -> None:
    assert first_dsp_status("advertisers") == "active"
    assert first_dsp_status("creatives") == "pending_review"
    for entity_type in EntityType:
        assert service_status_for(entity_type, first_dsp_status(entity_type)) in (
            None,
            EntityStatus.SUCCEEDED,
        )


def test_terminal_statuses_are_exactly_the_documented_ones() -> None:
    assert {s.value for s in TERMINAL_STATUSES} == {
        "succeeded",
        "rejected",
        "failed",
        "cancelled",
        "blocked",
    }
    assert {s.value for s in EntityStatus} - {s.value for s in TERMINAL_STATUSES} == {
        "waiting",
        "submitting",
        "polling",
    }


def test_workflow_id_is_derived_from_the_key() -> None:
    assert workflow_id_for("acme-spring") == "dsp-entity-acme-spring"
    assert workflow_id_for("a") != workflow_id_for("b")


def test_only_advertisers_are_done_with_their_post() -> None:
    assert {t for t in EntityType if not polled_after_post(t)} == {EntityType.ADVERTISERS}
