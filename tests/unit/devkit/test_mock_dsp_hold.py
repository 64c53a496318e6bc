"""Held entities: a test keeps an entity under review until it says so, instead of racing
the mock's review time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devkit.mock_dsp.api import ApiCall, answer
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.examples import advertiser_body, creative_body
from devkit.mock_dsp.state import MockDsp

TOKEN = "hold-token-1"


def call(method: str, path: str, body: Any = None, key: str | None = None) -> ApiCall:
    raw = b"" if body is None else json.dumps(body).encode()
    return ApiCall(method=method, path=path, token=TOKEN, idempotency_key=key, raw=raw)


def create(dsp: MockDsp, entity_type: str, body: Any, key: str) -> str:
    created = answer(dsp, call("POST", f"/v1/{entity_type}", body, key)).record.created_id
    assert created is not None
    return created


def status(dsp: MockDsp, entity_id: str) -> str:
    reply = answer(dsp, call("GET", f"/v1/creatives/{entity_id}/status")).reply
    return str(json.loads(reply.content)["status"])


def test_a_held_creative_stays_under_review_until_released() -> None:
    dsp = MockDsp(MockDspConfig(token=TOKEN, propagation_delay=0.0, review_seconds=0.0))
    adv = create(dsp, "advertisers", advertiser_body(), "adv:v1")
    dsp.hold("cre-held")
    held = create(dsp, "creatives", creative_body(adv, name="held"), "cre-held:v1")
    free = create(dsp, "creatives", creative_body(adv, name="free"), "cre-free:v1")

    assert (status(dsp, held), status(dsp, free)) == ("pending_review", "approved")
    dsp.release("cre-held")
    assert status(dsp, held) == "approved"


def test_releasing_what_was_never_created_is_an_error() -> None:
    dsp = MockDsp(MockDspConfig(token=TOKEN))
    dsp.hold("cre-never")
    with pytest.raises(ValueError, match="cre-never"):
        dsp.release("cre-never")
