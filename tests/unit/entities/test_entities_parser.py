"""Parsing entity files: formats, encodings, limits, batch names, and every problem listed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dsp_integration.contracts import EntityType
from dsp_integration.entities import (
    MAX_ENTITIES,
    Problem,
    SubmissionRefused,
    check_submission,
    default_batch_name,
    parse_submission,
    topological_order,
    validate_submission,
)


def example_entities() -> list[dict[str, Any]]:
    """The four entities of entities-format.md."""
    return [
        {
            "key": "acme",
            "type": "advertisers",
            "payload": {"name": "Acme", "domain": "acme.example", "currency": "USD"},
        },
        {
            "key": "acme-spring",
            "type": "campaigns",
            "payload": {
                "advertiser_id": {"$ref": "acme"},
                "name": "Spring",
                "budget": {"amount": 5000, "currency": "USD"},
                "start_date": "2027-03-01",
                "end_date": "2027-05-31",
            },
        },
        {
            "key": "acme-banner",
            "type": "creatives",
            "payload": {
                "advertiser_id": {"$ref": "acme"},
                "name": "Banner 300x250",
                "format": "display",
                "width": 300,
                "height": 250,
                "click_url": "https://acme.example/spring",
                "asset_url": "https://cdn.acme.example/banner.png",
            },
        },
        {
            "key": "acme-spring-ag1",
            "type": "ad_groups",
            "payload": {
                "campaign_id": {"$ref": "acme-spring"},
                "name": "Prospecting",
                "bid_cpm": 2.5,
                "creative_ids": [{"$ref": "acme-banner"}],
            },
        },
    ]


def as_json(entities: list[Any], batch: str = "acme-spring-launch", indent: int = 2) -> bytes:
    return json.dumps({"batch": batch, "entities": entities}, indent=indent).encode()


def as_jsonl(entities: list[Any]) -> bytes:
    return "".join(json.dumps(e) + "\n" for e in entities).encode()


def refused(
    data: bytes, filename: str = "entities.json", batch: str | None = None
) -> list[Problem]:
    with pytest.raises(SubmissionRefused) as caught:
        submission = parse_submission(data, filename=filename, batch=batch)
        check_submission(submission, {})
    assert caught.value.problems
    return caught.value.problems


def test_example_file_parses_and_validates_as_json_and_as_json_lines() -> None:
    from_json = parse_submission(as_json(example_entities()), filename="spring.json")
    from_lines = parse_submission(as_jsonl(example_entities()), filename="spring.jsonl")

    assert from_json.batch == "acme-spring-launch"
    assert from_lines.batch == "spring"
    for submission in (from_json, from_lines):
        assert [e.key for e in submission.entities] == [
            "acme",
            "acme-spring",
            "acme-banner",
            "acme-spring-ag1",
        ]
        assert [e.position for e in submission.entities] == [1, 2, 3, 4]
        assert submission.entities[3].type is EntityType.AD_GROUPS
        assert submission.entities[1].payload["advertiser_id"] == {"$ref": "acme"}
        assert validate_submission(submission, {}) == []
    assert [e.line for e in from_lines.entities] == [1, 2, 3, 4]


def test_json_lines_detected_without_the_suffix() -> None:
    for filename in ("entities.json", "entities.txt", "entities"):
        submission = parse_submission(as_jsonl(example_entities()), filename=filename)
        assert len(submission.entities) == 4


def test_single_line_json_lines_file_and_minified_document() -> None:
    one = parse_submission(as_jsonl(example_entities()[:1]), filename="one.json")
    assert one.batch == "one"
    assert [e.key for e in one.entities] == ["acme"]

    minified = as_json(example_entities(), batch="mini", indent=None)
    assert minified.count(b"\n") == 0
    assert parse_submission(minified, filename="x.jsonl").batch == "mini"


def test_pretty_printed_document_named_jsonl_is_read_as_json() -> None:
    submission = parse_submission(as_json(example_entities()), filename="oops.jsonl")
    assert submission.batch == "acme-spring-launch"
    assert len(submission.entities) == 4


def test_bom_crlf_and_blank_lines_are_accepted() -> None:
    lines = [json.dumps(e) for e in example_entities()]
    text = "\r\n".join(["", lines[0], "", "   ", lines[1], lines[2], "", lines[3], ""])
    submission = parse_submission(b"\xef\xbb\xbf" + text.encode(), filename="x.jsonl")
    assert [e.line for e in submission.entities] == [2, 5, 6, 8]
    assert [e.position for e in submission.entities] == [1, 2, 3, 4]


def test_unicode_line_separator_inside_a_string_does_not_split_a_line() -> None:
    entities = example_entities()
    entities[0]["payload"]["name"] = "Acme\u2028Inc"
    data = "\n".join(json.dumps(e, ensure_ascii=False) for e in entities).encode()
    submission = parse_submission(data, filename="x.jsonl")
    assert submission.entities[0].payload["name"] == "Acme\u2028Inc"


def test_batch_name_from_argument_or_sanitised_file_stem() -> None:
    data = as_jsonl(example_entities())
    assert parse_submission(data, filename="spring.jsonl", batch="given:1").batch == "given:1"
    assert parse_submission(data, filename="/tmp/Café Spring (v2).jsonl").batch == (
        "Cafe-Spring-v2"
    )
    assert default_batch_name("???.jsonl") == "batch"
    assert default_batch_name("x" * 300 + ".jsonl") == "x" * 128


def test_json_batch_agreeing_with_the_argument_is_fine() -> None:
    data = as_json(example_entities(), batch="same")
    assert parse_submission(data, filename="a.json", batch="same").batch == "same"


def test_json_document_without_batch_is_named_after_the_file() -> None:
    data = json.dumps({"entities": example_entities()}).encode()
    assert parse_submission(data, filename="spring-2027.json").batch == "spring-2027"


def test_every_bad_json_lines_line_is_reported() -> None:
    lines = [json.dumps(e) for e in example_entities()]
    lines[1] = lines[1][:-1]  # missing the closing brace
    lines.insert(3, "[1, 2]")
    lines.insert(4, '{"key": "x", "type": ')
    problems = refused("\n".join(lines).encode(), filename="x.jsonl")

    by_line = {p.line: p for p in problems}
    assert {2, 4, 5} <= set(by_line)
    assert "not valid JSON" in by_line[2].message and "column" in by_line[2].message
    assert "entity object" in by_line[4].message
    assert "not valid JSON" in by_line[5].message
    assert str(by_line[2]).startswith("entity #2 (line 2): not valid JSON")


def test_three_independent_errors_give_three_problems() -> None:
    entities = example_entities()
    entities[0]["payload"]["currency"] = "dollars"
    entities[1]["payload"]["budget"]["amount"] = -1
    entities[2]["payload"]["click_url"] = "not a url"
    problems = refused(as_json(entities))

    assert len(problems) >= 3
    assert {(p.key, p.field) for p in problems} >= {
        ("acme", "currency"),
        ("acme-spring", "budget.amount"),
        ("acme-banner", "click_url"),
    }


def test_structural_errors_do_not_hide_field_errors_elsewhere() -> None:
    entities: list[Any] = example_entities()
    entities[0]["type"] = "advertiser"  # cannot become an entity at all
    entities[2]["payload"]["width"] = 0  # an ordinary field rule, two entities later
    entities.append(json.loads(json.dumps(entities[3])))  # a duplicate key
    problems = refused(as_json(entities))

    assert {(p.key, p.position, p.field) for p in problems} >= {
        ("acme", 1, "type"),
        ("acme-banner", 3, "width"),
        ("acme-spring-ag1", 5, "key"),
    }


def test_10000_entity_json_lines_file_parses_and_validates() -> None:
    entities: list[dict[str, Any]] = []
    for n in range(2_500):
        base = example_entities()
        for entity in base:
            entity["key"] = f"{entity['key']}-{n}"
        base[1]["payload"]["advertiser_id"] = {"$ref": f"acme-{n}"}
        base[2]["payload"]["advertiser_id"] = {"$ref": f"acme-{n}"}
        base[3]["payload"]["campaign_id"] = {"$ref": f"acme-spring-{n}"}
        base[3]["payload"]["creative_ids"] = [{"$ref": f"acme-banner-{n}"}]
        entities += base
    data = as_jsonl(entities)

    started = time.perf_counter()
    submission = parse_submission(data, filename="big.jsonl")
    parsed = time.perf_counter()
    problems = validate_submission(submission, {})
    validated = time.perf_counter()
    ordered = topological_order(submission.entities)
    finished = time.perf_counter()
    print(
        f"\n10,000 entities ({len(data):,} bytes): parse {parsed - started:.3f}s, "
        f"validate {validated - parsed:.3f}s, order {finished - validated:.3f}s"
    )

    assert len(submission.entities) == 10_000
    assert problems == []
    seen: set[str] = set()
    for spec in ordered:
        assert all(ref["$ref"] in seen for ref in _refs(spec.payload))
        seen.add(spec.key)


def _refs(payload: dict[str, Any]) -> list[dict[str, str]]:
    found = [v for v in payload.values() if isinstance(v, dict) and "$ref" in v]
    return found + [v for v in payload.get("creative_ids", []) if isinstance(v, dict)]


def test_too_many_entities_is_refused_before_parsing_them() -> None:
    problems = refused(b"{}\n" * (MAX_ENTITIES + 1), filename="many.jsonl")
    assert len(problems) == 1
    assert f"{MAX_ENTITIES + 1:,} entities" in problems[0].message


def test_wrong_parent_type_in_the_file_is_reported_beside_structural_errors() -> None:
    entities: list[Any] = example_entities()
    entities[3]["payload"]["campaign_id"] = {"$ref": "acme"}
    entities.append("not an entity")
    problems = refused(as_json(entities))
    assert {(p.key, p.position, p.field) for p in problems} == {
        ("acme-spring-ag1", 4, "campaign_id"),
        (None, 5, None),
    }
