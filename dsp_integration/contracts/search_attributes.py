"""The search attributes of entity workflows, so the Temporal web UI can filter by batch,
type or service status. Imports only temporalio: the workflow uses these keys too."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

DSP_ENTITY_KEY = SearchAttributeKey.for_keyword("DspEntityKey")
DSP_ENTITY_TYPE = SearchAttributeKey.for_keyword("DspEntityType")
DSP_BATCH = SearchAttributeKey.for_keyword("DspBatch")
DSP_STATUS = SearchAttributeKey.for_keyword("DspStatus")


def entity_search_attributes(
    key: str,
    entity_type: str | None = None,
    batch: str | None = None,
    status: str | None = None,
) -> TypedSearchAttributes:
    """Attributes set when an entity workflow starts. The key alone is enough: the workflow
    adds type, batch and status itself once it has loaded the entity."""
    pairs = [SearchAttributePair(DSP_ENTITY_KEY, key)]
    for attribute, value in (
        (DSP_ENTITY_TYPE, entity_type),
        (DSP_BATCH, batch),
        (DSP_STATUS, status),
    ):
        if value is not None:
            pairs.append(SearchAttributePair(attribute, value))
    return TypedSearchAttributes(pairs)
