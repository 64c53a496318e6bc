"""Reproducible randomness in the mock DSP: with one seed, each entity meets the same faults,
gets the same id and the same review time, whatever the interleaving of requests for other
entities."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from devkit.mock_dsp.api import ApiCall, answer
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.examples import advertiser_body, creative_body
from devkit.mock_dsp.state import MockDsp
from devkit.mock_dsp.streams import RandomStreams, request_key

TOKEN = "streams-token-1"
KEYS = [f"cre-{i}:v1" for i in range(12)]
ATTEMPTS = 4


def faulty_config(seed: int) -> MockDspConfig:
    return MockDspConfig(
        token=TOKEN,
        rate_limit=10_000,
        rate_window=60.0,
        propagation_delay=0.0,
        review_seconds=10.0,
        review_jitter=0.5,
        fault_rate=0.5,
        fault_kinds=["503_before", "empty", "html"],
        seed=seed,
    )


def call(method: str, path: str, body: Any = None, key: str | None = None) -> ApiCall:
    raw = b"" if body is None else json.dumps(body).encode()
    return ApiCall(method=method, path=path, token=TOKEN, idempotency_key=key, raw=raw)


def run(seed: int, order: list[str]) -> dict[str, Any]:
    """Each key in `order` sends its create again (as a client retrying would), then each
    created creative's status is read in the same order. Per key: the faults its creates
    met, the id it got, its review time and the faults its status reads met."""
    dsp = MockDsp(faulty_config(seed))
    adv_id = None
    while adv_id is None:
        created = answer(dsp, call("POST", "/v1/advertisers", advertiser_body(), "adv:v1"))
        adv_id = created.record.created_id

    seen: dict[str, dict[str, Any]] = defaultdict(lambda: {"create": [], "status": []})
    for key in order:
        body = creative_body(adv_id, name=key)
        result = answer(dsp, call("POST", "/v1/creatives", body, key))
        seen[key]["create"].append(result.record.fault)
        if result.record.created_id:
            seen[key]["id"] = result.record.created_id
    for key in order:
        entity_id = seen[key].get("id")
        if entity_id is None:
            continue
        seen[key]["review"] = dsp.entities[entity_id].processing_seconds
        result = answer(dsp, call("GET", f"/v1/creatives/{entity_id}/status"))
        seen[key]["status"].append(result.record.fault)
    return dict(seen)


def test_the_same_seed_gives_each_entity_the_same_draws_whatever_the_interleaving() -> None:
    grouped = [key for key in KEYS for _ in range(ATTEMPTS)]
    interleaved = [key for _ in range(ATTEMPTS) for key in reversed(KEYS)]

    first, second = run(7, grouped), run(7, interleaved)

    assert first == second
    faults = {f for entity in first.values() for f in entity["create"] + entity["status"]}
    assert faults == {None, "503_before", "empty", "html"}
    assert all("id" in entity for entity in first.values())


def test_another_seed_gives_other_draws() -> None:
    assert run(7, KEYS * ATTEMPTS) != run(8, KEYS * ATTEMPTS)


def test_a_stream_is_one_sequence_per_key_and_purpose() -> None:
    streams = RandomStreams(3)
    a = [streams.stream("adv-1:v1", "faults").random() for _ in range(3)]
    streams.stream("adv-2:v1", "faults").random()
    streams.stream("adv-1:v1", "ids").random()
    again = RandomStreams(3)
    assert [again.stream("adv-1:v1", "faults").random() for _ in range(3)] == a
    assert again.stream("adv-1:v1", "ids").random() != a[0]


def test_requests_are_keyed_by_their_entity() -> None:
    assert request_key("/v1/creatives", "cre-1:v2") == "cre-1:v2"
    assert request_key("/v1/creatives/cre_1/status", None) == "/v1/creatives/cre_1"
    assert request_key("/v1/creatives/cre_1", None) == "/v1/creatives/cre_1"
