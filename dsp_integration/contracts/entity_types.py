"""Each DSP entity type as the contract describes it (dsp-api.md), in one place: its path
segment, the statuses it goes through and which entities its fields refer to.

Validation (`entities/rules.py`, which adds each type's field checks), the DSP client
(`dsp_client/requests.py`, the paths) and the workflow (`contracts/statuses.py`, what a DSP
status means) all read it. The mock DSP keeps its own copy on purpose (`devkit/mock_dsp/`).

Adding an entity type touches this file and `entities/rules.py` (its field checks) in the
service; the mock DSP's second reading of the contract is in `devkit/mock_dsp/entities.py`
and `devkit/mock_dsp/validation.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class EntityType(StrEnum):
    """The DSP's entity types; each value is the type's path segment (`/v1/{type}`)."""

    ADVERTISERS = "advertisers"
    CAMPAIGNS = "campaigns"
    CREATIVES = "creatives"
    AD_GROUPS = "ad_groups"


# Terminal for every type: the entity was archived (DELETE). `rejected` and `failed` end a
# type whose review can fail (`contracts/statuses.py` says what each means for the service).
ARCHIVED = "archived"


@dataclass(frozen=True)
class EntityTypeSpec:
    first_status: str  # after POST or PUT
    success_status: str
    # Reference fields and the type each must point to; `name[]` stands for each list item.
    references: Mapping[str, EntityType] = field(default_factory=dict)


ENTITY_TYPES: Mapping[EntityType, EntityTypeSpec] = {
    EntityType.ADVERTISERS: EntityTypeSpec(first_status="active", success_status="active"),
    EntityType.CAMPAIGNS: EntityTypeSpec(
        first_status="pending",
        success_status="active",
        references={"advertiser_id": EntityType.ADVERTISERS},
    ),
    EntityType.CREATIVES: EntityTypeSpec(
        first_status="pending_review",
        success_status="approved",
        references={"advertiser_id": EntityType.ADVERTISERS},
    ),
    EntityType.AD_GROUPS: EntityTypeSpec(
        first_status="pending",
        success_status="active",
        references={"campaign_id": EntityType.CAMPAIGNS, "creative_ids[]": EntityType.CREATIVES},
    ),
}


def spec_of(entity_type: EntityType | str) -> EntityTypeSpec:
    return ENTITY_TYPES[EntityType(entity_type)]


def collection_path(entity_type: EntityType | str) -> str:
    """`/v1/{type}`: POST creates there; `/v1/{type}/{id}` and `.../status` hang below it."""
    return f"/v1/{EntityType(entity_type).value}"
