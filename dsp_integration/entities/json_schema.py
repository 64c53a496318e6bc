"""JSON Schema of entity files and payloads, generated from the field rules
(`entities/rules.py`) and the entity types (`contracts/entity_types.py`), so the API's
OpenAPI document says what the service checks and cannot drift from it.

`schemas(ref_prefix)` gives named schemas that refer to each other through `ref_prefix`
(`#/components/schemas/` in an OpenAPI document). What a schema cannot say is checked with
the whole file and answered 422 with every problem: a key used twice, a reference to a key
neither in the file nor stored, a reference to an entity of the wrong type or of another
seat, a dependency cycle, a key already stored with another type or payload, a seat the
service is not configured with, an end date before the start date."""

from __future__ import annotations

from typing import Any

from dsp_integration.contracts import SEAT_NAME_PATTERN, EntityType
from dsp_integration.contracts.entity_types import spec_of
from dsp_integration.entities.parser import MAX_ENTITIES
from dsp_integration.entities.rules import KEY_SCHEMA_PATTERN, REF_SCHEMA, RULES, TypeRules
from dsp_integration.entities.seats import SEAT_RULE
from dsp_integration.entities.validate import BATCH_RULE

BATCH_SCHEMA_PATTERN = "^[A-Za-z0-9._:-]{1,128}$"
KEY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": KEY_SCHEMA_PATTERN,
    "description": "the entity's key, unique across everything ever submitted to the service",
}
BATCH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": BATCH_SCHEMA_PATTERN,
    "description": f"the batch's name: {BATCH_RULE}",
}
SEAT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": SEAT_NAME_PATTERN,
    "description": f"a seat (DSP account) the service is configured with ({SEAT_RULE}); "
    "GET /api/budget lists them",
}
# What a file's schema cannot say, checked with the whole file (422).
SCHEMA_LIMITS = (
    "a key used twice, a reference to a key neither in the file nor stored, to an entity of "
    "the wrong type or of another seat, a dependency cycle, a key already stored with another "
    "type or payload, a seat the service is not configured with, an end date before the "
    "start date, a batch name that disagrees with ?batch="
)
ENTITY_FILE = "EntityFile"
REFERENCE = "Reference"


def title_of(entity_type: EntityType) -> str:
    """`AdGroups` for ad_groups."""
    return "".join(part.capitalize() for part in entity_type.value.split("_"))


def payload_schema_name(entity_type: EntityType) -> str:
    return f"{title_of(entity_type)}Payload"


def entity_schema_name(entity_type: EntityType) -> str:
    return f"{title_of(entity_type)}Entity"


def with_named_references(schema: Any, ref_prefix: str | None) -> Any:
    """`schema` with each copy of `REF_SCHEMA` replaced by a reference to the named one
    (`ref_prefix` None: left inline, a schema that stands alone)."""
    if ref_prefix is None:
        return schema
    if schema == REF_SCHEMA:
        return {"$ref": ref_prefix + REFERENCE}
    if isinstance(schema, dict):
        return {k: with_named_references(v, ref_prefix) for k, v in schema.items()}
    if isinstance(schema, list):
        return [with_named_references(v, ref_prefix) for v in schema]
    return schema


def payload_schema(entity_type: EntityType, ref_prefix: str | None = None) -> dict[str, Any]:
    """The DSP fields of one entity type, as `rules.RULES` checks them."""
    rules: TypeRules = RULES[entity_type]
    references = spec_of(entity_type).references
    properties: dict[str, Any] = {}
    schema: dict[str, Any]
    for name, rule in {**rules.required, **rules.optional}.items():
        schema = dict(rule.schema)
        target = references.get(name) or references.get(f"{name}[]")
        if target is not None:
            schema["description"] = f"{schema.get('description', '')}; of {target.value}"
        properties[name] = with_named_references(schema, ref_prefix)
    schema = {
        "title": payload_schema_name(entity_type),
        "type": "object",
        "description": f"the fields of one of {entity_type.value} (dsp-api.md)",
        "properties": properties,
        "required": list(rules.required),
        "additionalProperties": False,
    }
    notes = [cross.description for cross in rules.cross_checks]
    if notes:
        schema["description"] += "; " + "; ".join(notes)
    merged = [dict(cross.schema) for cross in rules.cross_checks if cross.schema]
    if merged:
        schema["allOf"] = merged
    return schema


def entity_schema(entity_type: EntityType, ref_prefix: str) -> dict[str, Any]:
    """One entity object of a file, of this type."""
    return {
        "title": entity_schema_name(entity_type),
        "type": "object",
        "properties": {
            "key": KEY_SCHEMA,
            "type": {"type": "string", "enum": [entity_type.value]},
            "payload": {"$ref": ref_prefix + payload_schema_name(entity_type)},
            "depends_on": {
                "type": "array",
                "items": {"type": "string", "pattern": KEY_SCHEMA_PATTERN},
                "description": "further keys this entity waits for (any seat)",
            },
            "seat": {
                **SEAT_SCHEMA,
                "description": "its seat, else the file's, else the service's default seat",
            },
        },
        "required": ["key", "type", "payload"],
        "additionalProperties": False,
    }


def entity_file_schema(ref_prefix: str) -> dict[str, Any]:
    mapping = {t.value: ref_prefix + entity_schema_name(t) for t in EntityType}
    return {
        "title": ENTITY_FILE,
        "type": "object",
        "description": "an entity file (entities-format.md); checked whole: refused with "
        "every problem, or stored whole",
        "properties": {
            "batch": {
                **BATCH_SCHEMA,
                "description": f"{BATCH_SCHEMA['description']}; absent: `upload`, or "
                "`?batch=`, which it must then equal",
            },
            "seat": {**SEAT_SCHEMA, "description": "the seat of entities naming none"},
            "entities": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ENTITIES,
                "items": {
                    "oneOf": [{"$ref": ref} for ref in mapping.values()],
                    "discriminator": {"propertyName": "type", "mapping": mapping},
                },
            },
        },
        "required": ["entities"],
        "additionalProperties": False,
    }


def schemas(ref_prefix: str = "#/components/schemas/") -> dict[str, dict[str, Any]]:
    """Every named schema: the file, an entity and a payload per type, a reference."""
    named: dict[str, dict[str, Any]] = {ENTITY_FILE: entity_file_schema(ref_prefix)}
    for entity_type in EntityType:
        named[entity_schema_name(entity_type)] = entity_schema(entity_type, ref_prefix)
        named[payload_schema_name(entity_type)] = payload_schema(entity_type, ref_prefix)
    named[REFERENCE] = {"title": REFERENCE, **REF_SCHEMA}
    return named
