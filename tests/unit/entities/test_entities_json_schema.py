"""The JSON Schema of each entity type (generated from the field rules) and the rules
themselves agree: payloads drawn from a schema pass the rules, payloads drawn to break it
fail them, and a whole entity file drawn from its schema parses. Schemathesis draws them,
the same way it draws requests against the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from dsp_integration.contracts import EntityType
from dsp_integration.entities import parse_submission
from dsp_integration.entities.json_schema import ENTITY_FILE, payload_schema_name, schemas
from dsp_integration.entities.rules import RULES, normalised_payload, payload_issues

EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
# The one rule JSON Schema cannot say (it is in the campaign payload's description).
NOT_IN_THE_SCHEMA = "must not be before start_date"


def operation(schema_name: str) -> Any:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "entity schemas", "version": "1"},
        "paths": {
            "/draw": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{schema_name}"}
                            }
                        },
                    },
                    "responses": {"200": {"description": "drawn"}},
                }
            }
        },
        "components": {"schemas": schemas()},
    }
    return schemathesis.openapi.from_dict(document)["/draw"]["POST"]


@pytest.mark.parametrize("entity_type", list(EntityType))
def test_payloads_the_schema_allows_pass_the_rules(entity_type: EntityType) -> None:
    @EXAMPLES
    @given(operation(payload_schema_name(entity_type)).as_strategy(GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        issues = payload_issues(entity_type, case.body)
        assert [i for i in issues if NOT_IN_THE_SCHEMA not in i.message] == [], case.body

    check()


@pytest.mark.parametrize("entity_type", list(EntityType))
def test_payloads_the_schema_refuses_fail_the_rules(entity_type: EntityType) -> None:
    @EXAMPLES
    @given(operation(payload_schema_name(entity_type)).as_strategy(GenerationMode.NEGATIVE))
    def check(case: Any) -> None:
        assert payload_issues(entity_type, case.body), case.body

    check()


def test_entity_files_the_schema_allows_parse() -> None:
    """What a file's schema cannot say (references to keys elsewhere, duplicates, cycles)
    is checked with the file; parsing needs none of it."""

    @EXAMPLES
    @given(operation(ENTITY_FILE).as_strategy(GenerationMode.POSITIVE))
    def check(case: Any) -> None:
        submission = parse_submission(json.dumps(case.body).encode(), filename="drawn.json")
        assert len(submission.entities) == len(case.body["entities"])

    check()


def test_every_rule_has_a_schema_with_the_same_fields() -> None:
    for entity_type, rules in RULES.items():
        schema = schemas()[payload_schema_name(entity_type)]
        assert sorted(schema["properties"]) == rules.fields
        assert schema["required"] == list(rules.required)
        assert schema["additionalProperties"] is False


def test_a_whole_number_written_with_a_fraction_is_stored_as_a_whole_number() -> None:
    payload = {"format": "display", "width": 300.0, "height": 250, "name": "x"}
    normalised = normalised_payload(EntityType.CREATIVES, payload)
    assert normalised["width"] == 300 and isinstance(normalised["width"], int)
    assert normalised_payload(EntityType.ADVERTISERS, {"name": 1.0}) == {"name": 1.0}
    assert payload_issues(EntityType.CREATIVES, {**payload, "width": 300.5})
