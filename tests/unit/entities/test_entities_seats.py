"""The seat rules of an entity file (entities-format.md, `seat`): which seat each entity is
of, which seats a file may name, and that a `$ref` never crosses seats while `depends_on`
may."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dsp_integration.contracts import DEFAULT_SEAT, EntityType
from dsp_integration.entities import (
    ExistingEntity,
    Problem,
    SeatChoice,
    Submission,
    SubmissionRefused,
    keys_to_look_up,
    parse_submission,
    validate_payload,
    validate_submission,
)
from tests.unit.entities.test_entities_parser import as_jsonl, example_entities

SEATS = SeatChoice.of(["default", "eu", "us"], "default")


def document(entities: list[dict[str, Any]], **top: Any) -> bytes:
    return json.dumps({"batch": "spring", **top, "entities": entities}).encode()


def parsed(entities: list[dict[str, Any]], **top: Any) -> Submission:
    return parse_submission(document(entities, **top), filename="spring.json")


def seats_of(submission: Submission, seats: SeatChoice = SEATS) -> dict[str, str]:
    return {spec.key: submission.seat_of(spec, seats.default) for spec in submission.entities}


def stored_as(
    submission: Submission, seats: SeatChoice = SEATS, batch: str = "earlier"
) -> dict[str, ExistingEntity]:
    """What the database holds once `submission` was stored."""
    return {
        spec.key: ExistingEntity(
            key=spec.key,
            type=spec.type,
            payload=spec.payload,
            batch=batch,
            seat=submission.seat_of(spec, seats.default),
        )
        for spec in submission.entities
    }


def messages(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems]


def test_without_a_seat_every_entity_is_of_the_configured_default() -> None:
    submission = parsed(example_entities())
    assert submission.seat is None
    assert set(seats_of(submission).values()) == {"default"}
    # The default is the configured one, not a fixed name.
    assert set(seats_of(submission, SeatChoice.of(["eu", "us"], "eu")).values()) == {"eu"}
    assert validate_submission(submission, {}, seats=SeatChoice.of(["eu"], "eu")) == []


def test_the_files_seat_is_every_entitys_unless_one_names_its_own() -> None:
    us_advertiser = {**example_entities()[0], "key": "acme-us", "seat": "us"}
    submission = parsed([*example_entities(), us_advertiser], seat="eu")
    assert submission.seat == "eu"
    assert seats_of(submission) == {
        "acme": "eu",
        "acme-spring": "eu",
        "acme-banner": "eu",
        "acme-spring-ag1": "eu",
        "acme-us": "us",
    }
    assert validate_submission(submission, {}, seats=SEATS) == []


def test_an_entitys_own_seat_wins_and_its_refs_must_follow() -> None:
    entities = example_entities()
    entities[2]["seat"] = "us"  # acme-banner refers to acme, of the file's seat, with $ref
    problems = validate_submission(parsed(entities, seat="eu"), {}, seats=SEATS)
    assert messages(problems) == [
        "entity #3 'acme-banner', field advertiser_id: refers with $ref to 'acme' of seat "
        "'eu', but this entity is of seat 'us': a $ref must stay within one seat "
        "(depends_on may cross seats)",
        "entity #4 'acme-spring-ag1', field creative_ids[0]: refers with $ref to "
        "'acme-banner' of seat 'us', but this entity is of seat 'eu': a $ref must stay "
        "within one seat (depends_on may cross seats)",
    ]


def test_json_lines_entities_name_their_own_seat() -> None:
    entities = example_entities()
    for entity in entities:
        entity["seat"] = "us"
    submission = parse_submission(as_jsonl(entities), filename="spring.jsonl")
    assert set(seats_of(submission).values()) == {"us"}
    assert validate_submission(submission, {}, seats=SEATS) == []


def test_depends_on_may_cross_seats() -> None:
    advertiser = example_entities()[0]
    other = {**example_entities()[0], "key": "acme-us", "seat": "us", "depends_on": ["acme"]}
    submission = parsed([advertiser, other])
    assert seats_of(submission) == {"acme": "default", "acme-us": "us"}
    assert validate_submission(submission, {}, seats=SEATS) == []


def test_an_unknown_seat_is_refused_naming_the_configured_ones() -> None:
    entities = example_entities()
    entities[0]["seat"] = "asia"
    problems = validate_submission(parsed(entities, seat="mars"), {}, seats=SEATS)
    configured = "the configured seats are: 'default', 'eu', 'us'"
    assert messages(problems)[:2] == [
        f"field seat: unknown seat 'mars'; {configured}",
        f"entity #1 'acme', field seat: unknown seat 'asia'; {configured}",
    ]
    # The default configuration has only the default seat.
    only_default = validate_submission(parsed(example_entities(), seat="eu"), {})
    assert messages(only_default) == [
        "field seat: unknown seat 'eu'; the configured seats are: 'default'"
    ]


def test_a_seat_that_is_no_seat_name_is_refused_when_parsing() -> None:
    entities = example_entities()
    entities[0]["seat"] = 7
    entities[1]["seat"] = "EU West"
    with pytest.raises(SubmissionRefused) as caught:
        parse_submission(document(entities, seat=["eu"]), filename="spring.json")
    problems = messages(caught.value.problems)
    assert problems[0].startswith("field seat: must be a seat name, ")
    assert problems[0].endswith("; got a list")
    assert problems[1].startswith("entity #1 'acme', field seat: must be a seat name")
    assert problems[1].endswith("got number 7")
    assert problems[2].endswith("got string 'EU West'")
    assert len(problems) == 3


def test_every_ref_across_seats_in_the_file_is_listed() -> None:
    entities = example_entities()
    entities[3]["seat"] = "us"  # the ad group refers to the campaign and the creative
    problems = validate_submission(parsed(entities, seat="eu"), {}, seats=SEATS)
    assert [(p.key, p.field) for p in problems] == [
        ("acme-spring-ag1", "campaign_id"),
        ("acme-spring-ag1", "creative_ids[0]"),
    ]
    assert "to 'acme-spring' of seat 'eu', but this entity is of seat 'us'" in str(problems[0])


def test_a_ref_to_a_stored_entity_of_another_seat_is_refused() -> None:
    earlier = parsed(example_entities()[:1], seat="eu")
    later = parsed(example_entities()[1:2], seat="us")  # the campaign, $ref acme
    existing = stored_as(earlier)
    assert "acme" in keys_to_look_up(later)
    problems = validate_submission(later, existing, seats=SEATS)
    assert messages(problems) == [
        "entity #1 'acme-spring', field advertiser_id: refers with $ref to 'acme' of seat "
        "'eu', but this entity is of seat 'us': a $ref must stay within one seat "
        "(depends_on may cross seats)"
    ]
    same_seat = parsed(example_entities()[1:2], seat="eu")
    assert validate_submission(same_seat, existing, seats=SEATS) == []


def test_the_very_same_file_again_is_harmless() -> None:
    entities = example_entities()
    entities[0]["seat"] = "us"
    entities[0]["depends_on"] = []
    for entity in entities[1:3]:
        entity["payload"]["advertiser_id"] = {"$ref": "acme-eu"}
    eu_advertiser = {**example_entities()[0], "key": "acme-eu"}
    submission = parsed([eu_advertiser, *entities], seat="eu")
    assert validate_submission(submission, {}, seats=SEATS) == []
    again = parsed([eu_advertiser, *entities], seat="eu")
    assert validate_submission(again, stored_as(submission), seats=SEATS) == []


def test_a_stored_key_given_another_seat_is_refused_like_a_changed_payload() -> None:
    first = parsed(example_entities())
    existing = stored_as(first)  # all of the default seat
    moved = parsed(example_entities(), seat="eu")
    problems = validate_submission(moved, existing, seats=SEATS)
    assert [(p.key, p.field) for p in problems] == [
        ("acme", "seat"),
        ("acme-spring", "seat"),
        ("acme-banner", "seat"),
        ("acme-spring-ag1", "seat"),
    ]
    assert str(problems[0]) == (
        "entity #1 'acme', field seat: this key was already submitted in batch 'earlier' "
        "for seat 'default', not 'eu'; an entity keeps its seat: use a new key"
    )
    # With the payload changed too, both are listed.
    changed = example_entities()
    changed[0]["payload"]["name"] = "Acme 2"
    both = validate_submission(parsed(changed[:1], seat="eu"), existing, seats=SEATS)
    assert sorted(p.field or "" for p in both) == ["payload", "seat"]


def test_stored_entities_before_seats_are_of_the_default_seat() -> None:
    entity = example_entities()[0]
    before_seats = ExistingEntity(key="acme", type=entity["type"], payload=entity["payload"])
    assert before_seats.seat == DEFAULT_SEAT
    assert validate_submission(parsed([entity]), {"acme": before_seats}, seats=SEATS) == []


def test_a_resubmitted_payload_keeps_its_refs_within_the_entitys_seat() -> None:
    payload = example_entities()[1]["payload"]  # $ref acme
    args: dict[str, Any] = {"known_keys": {"acme"}, "seat": "us"}
    assert validate_payload("acme-spring", EntityType.CAMPAIGNS, payload, **args) == []
    problems = validate_payload(
        "acme-spring", EntityType.CAMPAIGNS, payload, **args, known_seats={"acme": "eu"}
    )
    assert [(p.key, p.field) for p in problems] == [("acme-spring", "advertiser_id")]
    assert "of seat 'eu', but this entity is of seat 'us'" in problems[0].message
    assert (
        validate_payload(
            "acme-spring", EntityType.CAMPAIGNS, payload, **args, known_seats={"acme": "us"}
        )
        == []
    )
