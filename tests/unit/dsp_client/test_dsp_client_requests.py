import dataclasses

import pytest

from dsp_integration.contracts import EntityType
from dsp_integration.dsp_client import (
    DspRequest,
    archive_request,
    create_request,
    get_request,
    replace_request,
    status_request,
)

BODY = {"name": "Spring", "budget": {"amount": 5000, "currency": "USD"}}


@pytest.mark.parametrize("entity_type", list(EntityType))
def test_create_posts_to_the_collection(entity_type: EntityType) -> None:
    request = create_request(entity_type, BODY, "key-1")
    assert request == DspRequest("POST", f"/v1/{entity_type.value}", BODY, "key-1")


def test_create_accepts_the_type_as_text_and_no_key() -> None:
    request = create_request("ad_groups", {"name": "x"})
    assert (request.method, request.path, request.idempotency_key) == (
        "POST",
        "/v1/ad_groups",
        None,
    )


def test_item_requests() -> None:
    assert status_request("campaigns", "cmp_8f3a1c") == DspRequest(
        "GET", "/v1/campaigns/cmp_8f3a1c/status"
    )
    assert get_request(EntityType.CREATIVES, "cr_1") == DspRequest("GET", "/v1/creatives/cr_1")
    assert replace_request("advertisers", "adv_1", BODY) == DspRequest(
        "PUT", "/v1/advertisers/adv_1", BODY
    )
    assert archive_request("ad_groups", "ag_1") == DspRequest("DELETE", "/v1/ad_groups/ag_1")


@pytest.mark.parametrize(
    ("dsp_id", "segment"),
    [
        ("a/b c", "a%2Fb%20c"),
        ("x?y#z", "x%3Fy%23z"),
        ("é", "%C3%A9"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("v1.2", "v1.2"),
    ],
)
def test_ids_are_url_quoted(dsp_id: str, segment: str) -> None:
    assert status_request("campaigns", dsp_id).path == f"/v1/campaigns/{segment}/status"
    assert archive_request("campaigns", dsp_id).path == f"/v1/campaigns/{segment}"


def test_the_body_is_a_copy() -> None:
    creative_ids = ["a"]
    body = {"name": "x", "creative_ids": creative_ids}
    request = create_request("ad_groups", body, "k")
    creative_ids.append("b")
    body["name"] = "changed"
    assert request.body == {"name": "x", "creative_ids": ["a"]}


def test_requests_are_frozen() -> None:
    request = status_request("campaigns", "c1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.path = "/v1/other"  # type: ignore[misc]


@pytest.mark.parametrize("entity_type", ["campaign", "", "CAMPAIGNS"])
def test_unknown_types_are_refused(entity_type: str) -> None:
    with pytest.raises(ValueError):
        create_request(entity_type, BODY, "k")


@pytest.mark.parametrize("dsp_id", ["", None])
def test_empty_ids_are_refused(dsp_id: str) -> None:
    with pytest.raises(ValueError, match="DSP id"):
        status_request("campaigns", dsp_id)


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "line\nbreak", " padded", "tab\tkey"])
def test_bad_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        create_request("campaigns", BODY, key)


def test_longest_idempotency_key_is_accepted() -> None:
    key = "k" * 255
    assert create_request("campaigns", BODY, key).idempotency_key == key


@pytest.mark.parametrize(
    "body", [{"amount": float("nan")}, {"when": object()}, ["not", "a", "dict"]]
)
def test_bodies_that_are_not_json_objects_are_refused(body: object) -> None:
    with pytest.raises(ValueError, match="JSON"):
        create_request("campaigns", body, "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        DspRequest("POST", "/v1/campaigns", body)  # type: ignore[arg-type]


def test_bad_methods_and_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        DspRequest("PATCH", "/v1/campaigns")
    with pytest.raises(ValueError, match="path"):
        DspRequest("GET", "v1/campaigns")
