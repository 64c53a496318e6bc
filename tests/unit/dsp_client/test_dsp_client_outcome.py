"""`classify`, `parse_created` and `parse_status` on hand-made exchanges: the corners."""

import json
from typing import Any

import pytest

from dsp_integration.dsp_client import (
    DspExchange,
    DspResponseError,
    OutcomeKind,
    classify,
    parse_created,
    parse_status,
)


def answer(status: int | None, payload: Any = None, **fields: Any) -> DspExchange:
    text = "" if payload is None else json.dumps(payload)
    return DspExchange(status_code=status, body_text=text, json=payload, **fields)


def test_outcome_kinds_are_text() -> None:
    assert OutcomeKind.RATE_LIMITED == "rate_limited"
    assert {kind.name for kind in OutcomeKind} == {
        "OK",
        "RATE_LIMITED",
        "TRANSIENT",
        "UNAUTHORIZED",
        "TOKEN_EXPIRED",
        "REJECTED",
        "NOT_FOUND",
    }


def test_401_token_expired_is_its_own_outcome() -> None:
    expired = {"error": {"code": "token_expired", "message": "token expired", "field": None}}
    outcome = classify(answer(401, expired))
    assert outcome.kind is OutcomeKind.TOKEN_EXPIRED
    assert outcome.code == "token_expired"


@pytest.mark.parametrize(
    "payload",
    [
        {"error": {"code": "unauthorized", "message": "unknown token", "field": None}},
        {"error": {"code": "invalid_client", "message": "no", "field": None}},
        None,
        {"detail": "token_expired"},
    ],
)
def test_other_401s_stay_unauthorized(payload: Any) -> None:
    assert classify(answer(401, payload)).kind is OutcomeKind.UNAUTHORIZED


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_any_2xx_with_an_entity_is_ok(status: int) -> None:
    assert classify(answer(status, {"id": "c", "status": "pending"})).kind is OutcomeKind.OK


@pytest.mark.parametrize("status", [100, 301, 304, 502, 504, 599, 600])
def test_other_statuses_are_transient(status: int) -> None:
    outcome = classify(answer(status, retry_after=4.0))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.retry_after == 4.0
    assert outcome.message == f"HTTP {status}: empty body"


def test_no_answer_without_a_reason() -> None:
    outcome = classify(DspExchange(status_code=None))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.message == "no answer from the DSP: unknown error"


def test_2xx_whose_body_broke_off_is_transient() -> None:
    exchange = answer(201, {"id": "c", "status": "pending"}, error="answer broke off: x")
    outcome = classify(exchange)
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert "answer broke off" in outcome.message


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "", "status": "pending"},
        {"id": 12, "status": "pending"},
        {"id": "c", "status": ""},
        {"error": {"code": "x", "message": "y", "field": None}},
    ],
)
def test_2xx_without_usable_id_and_status_is_transient(payload: dict[str, Any]) -> None:
    assert classify(answer(200, payload)).kind is OutcomeKind.TRANSIENT


@pytest.mark.parametrize(
    "payload",
    [
        {"error": "validation_error"},
        {"error": {"message": "no code", "field": None}},
        {"error": {"code": "", "message": "empty code"}},
        {"detail": "Not Found"},
        ["error"],
    ],
)
def test_4xx_with_something_else_than_the_error_body_is_transient(payload: Any) -> None:
    assert classify(answer(422, payload)).kind is OutcomeKind.TRANSIENT


def test_error_body_oddities_are_tolerated() -> None:
    outcome = classify(answer(422, {"error": {"code": "validation_error", "field": ""}}))
    assert (outcome.kind, outcome.field, outcome.message) == (
        OutcomeKind.REJECTED,
        None,
        "validation_error",
    )
    outcome = classify(answer(422, {"error": {"code": "bad", "message": 3, "field": 4}}))
    assert (outcome.message, outcome.field) == ("bad", None)


def test_404_believes_the_status_whatever_the_code() -> None:
    outcome = classify(answer(404, {"error": {"code": "gone", "message": "archived long ago"}}))
    assert outcome.kind is OutcomeKind.NOT_FOUND
    assert outcome.code == "gone"


def test_rejected_ignores_retry_after() -> None:
    outcome = classify(
        answer(422, {"error": {"code": "validation_error", "message": "m"}}, retry_after=9.0)
    )
    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.retry_after is None


def test_rate_limit_with_zero_reset_and_no_retry_after_waits_the_default() -> None:
    outcome = classify(answer(429, rate_limit_reset=0.0))
    assert (outcome.kind, outcome.retry_after, outcome.code) == (
        OutcomeKind.RATE_LIMITED,
        1.0,
        "rate_limited",
    )


def test_rate_limit_retry_after_zero_is_kept() -> None:
    outcome = classify(answer(429, retry_after=0.0, rate_limit_reset=5.0))
    assert outcome.retry_after == 0.0


def test_excerpts_are_short_and_single_line() -> None:
    text = "<html>\n" + "x" * 5000 + "\n</html>"
    outcome = classify(DspExchange(status_code=400, body_text=text))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert "\n" not in outcome.message
    assert len(outcome.message) < 300


def test_parse_status_reasons() -> None:
    assert parse_status(answer(200, {"id": "c", "status": "active"})) == ("active", None)
    assert parse_status(answer(200, {"status": "rejected", "reason": "blurry"})) == (
        "rejected",
        "blurry",
    )
    assert parse_status(answer(200, {"status": "failed", "reason": 42})) == ("failed", "42")


@pytest.mark.parametrize(
    "payload", [None, [], {"id": "c"}, {"status": 5}, {"id": "c", "status": None}]
)
def test_parse_status_needs_a_status(payload: Any) -> None:
    with pytest.raises(DspResponseError, match="HTTP 200"):
        parse_status(answer(200, payload))


@pytest.mark.parametrize("payload", [{"id": "c"}, {"status": "pending"}, {"id": 3, "status": "x"}])
def test_parse_created_needs_id_and_status(payload: Any) -> None:
    with pytest.raises(DspResponseError, match=r"'id'|'status'"):
        parse_created(answer(201, payload))


def test_response_errors_are_value_errors() -> None:
    assert issubclass(DspResponseError, ValueError)
