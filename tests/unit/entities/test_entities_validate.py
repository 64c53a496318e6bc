"""File-level validation against what is stored, resubmitted payloads, and `Problem` text."""

from __future__ import annotations

import copy

import pytest

from dsp_integration.contracts import EntityType
from dsp_integration.entities import (
    EntitySpec,
    ExistingEntity,
    Problem,
    Submission,
    SubmissionRefused,
    check_submission,
    keys_to_look_up,
    parse_submission,
    validate_payload,
    validate_submission,
)
from tests.unit.entities.test_entities_parser import as_json, example_entities


def submission_of(entities: list[dict]) -> Submission:
    return parse_submission(as_json(entities), filename="x.json")


def stored(entities: list[dict], batch: str = "earlier") -> dict[str, ExistingEntity]:
    return {
        e["key"]: ExistingEntity(key=e["key"], type=e["type"], payload=e["payload"], batch=batch)
        for e in entities
    }


def test_problem_reads_like_a_sentence() -> None:
    assert (
        str(
            Problem(
                "must be a number greater than 0",
                key="acme-spring",
                position=3,
                field="budget.amount",
            )
        )
        == "entity #3 'acme-spring', field budget.amount: must be a number greater than 0"
    )
    assert str(Problem("bad", position=2, line=7)) == "entity #2 (line 7): bad"
    assert str(Problem("bad", key="k", field="name")) == "entity 'k', field name: bad"
    assert str(Problem("bad", field="batch")) == "field batch: bad"
    assert str(Problem("the file is empty")) == "the file is empty"


def test_submission_refused_carries_every_problem() -> None:
    problems = [Problem(f"p{i}", key="k", position=i) for i in range(1, 6)]
    refused = SubmissionRefused(problems)
    assert refused.problems == problems
    assert "5 problem(s)" in str(refused) and "and 2 more" in str(refused)


def test_resubmitting_the_same_file_is_fine() -> None:
    entities = example_entities()
    assert validate_submission(submission_of(entities), stored(entities)) == []


def test_identical_payload_with_other_key_order_is_the_same_entity() -> None:
    entities = example_entities()
    earlier = stored(entities)
    reordered = dict(reversed(list(entities[1]["payload"].items())))
    earlier["acme-spring"] = ExistingEntity(
        key="acme-spring", type=EntityType.CAMPAIGNS, payload=reordered, batch="earlier"
    )
    assert validate_submission(submission_of(entities), earlier) == []


def test_references_may_name_entities_stored_earlier() -> None:
    earlier = example_entities()[:2]
    later = example_entities()[2:]
    submission = submission_of(later)

    assert {"acme", "acme-spring"} <= keys_to_look_up(submission)
    assert validate_submission(submission, stored(earlier)) == []
    problems = validate_submission(submission, {})
    assert {(p.key, p.field) for p in problems} == {
        ("acme-banner", "advertiser_id"),
        ("acme-spring-ag1", "campaign_id"),
    }


def test_references_to_stored_entities_of_the_wrong_type_are_refused() -> None:
    entities = example_entities()
    later = [entities[3]]
    earlier = stored(entities[:3])
    earlier["acme-spring"] = ExistingEntity(
        key="acme-spring", type="creatives", payload={}, batch="earlier"
    )
    problems = validate_submission(submission_of(later), earlier)
    assert [(p.key, p.field) for p in problems] == [("acme-spring-ag1", "campaign_id")]


def test_keys_to_look_up_holds_file_keys_and_every_reference() -> None:
    entities = example_entities()
    entities[3]["depends_on"] = ["approval"]
    entities[3]["payload"]["creative_ids"].append({"$ref": "old-banner"})
    assert keys_to_look_up(submission_of(entities)) == {
        "acme",
        "acme-spring",
        "acme-banner",
        "acme-spring-ag1",
        "approval",
        "old-banner",
    }


def test_check_submission_raises_with_all_problems_in_file_order() -> None:
    entities = example_entities()
    entities[3]["payload"]["bid_cpm"] = 0
    entities[0]["payload"]["name"] = ""
    entities[2]["payload"]["advertiser_id"] = {"$ref": "nobody"}
    with pytest.raises(SubmissionRefused) as caught:
        check_submission(submission_of(entities), {})
    assert [(p.position, p.field) for p in caught.value.problems] == [
        (1, "name"),
        (3, "advertiser_id"),
        (4, "bid_cpm"),
    ]


def test_hand_built_specs_are_checked_too() -> None:
    bad = EntitySpec(key="k", type="things", payload=[], depends_on=(5,), position=1)  # type: ignore[arg-type]
    problems = validate_submission(Submission(batch="", entities=[bad]), {})
    assert {p.field for p in problems} == {"batch", "type", "payload", "depends_on[0]"}


def test_empty_submission_is_refused() -> None:
    problems = validate_submission(Submission(batch="b", entities=[]), {})
    assert [p.message for p in problems] == ["the file holds no entities"]


def test_validate_payload_for_a_resubmit() -> None:
    good = copy.deepcopy(example_entities()[3]["payload"])
    known = {"acme-spring", "acme-banner"}
    assert validate_payload("acme-spring-ag1", EntityType.AD_GROUPS, good, known) == []

    bad = {**good, "bid_cpm": -2, "creative_ids": [{"$ref": "gone"}], "extra": 1}
    problems = validate_payload("acme-spring-ag1", EntityType.AD_GROUPS, bad, known)
    assert {(p.key, p.field) for p in problems} == {
        ("acme-spring-ag1", "bid_cpm"),
        ("acme-spring-ag1", "creative_ids[0]"),
        ("acme-spring-ag1", "extra"),
    }
    assert all(p.position is None for p in problems)

    itself = {**good, "campaign_id": {"$ref": "acme-spring-ag1"}}
    problems = validate_payload("acme-spring-ag1", EntityType.AD_GROUPS, itself, known)
    assert [(p.field, p.message) for p in problems] == [
        ("campaign_id", "an entity cannot depend on itself")
    ]


def test_video_creatives_need_no_size_and_dsp_ids_are_accepted() -> None:
    payload = {
        "advertiser_id": "adv_8f3a1c",
        "name": "Spring 15s",
        "format": "video",
        "click_url": "http://acme.example/spring?utm=1",
        "asset_url": "https://cdn.acme.example:8443/spring.mp4",
    }
    assert validate_payload("acme-video", EntityType.CREATIVES, payload, set()) == []
    sized = {**payload, "width": 0}
    problems = validate_payload("acme-video", EntityType.CREATIVES, sized, set())
    assert [p.field for p in problems] == ["width"]
