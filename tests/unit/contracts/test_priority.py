"""Priority keys of the DSP calls (lower runs first on the DSP task queue) by the batch's
level and the call's kind, the batch's fairness key, and the weights users may give."""

from __future__ import annotations

import itertools

import pytest

from dsp_integration.contracts import (
    MAX_FAIRNESS_KEY_BYTES,
    MAX_FAIRNESS_WEIGHT,
    MIN_FAIRNESS_WEIGHT,
    DspCallKind,
    PriorityLevel,
    dsp_priority,
    fairness_key_for,
    parse_fairness_weight,
    parse_priority_level,
)

HIGH, NORMAL, LOW = PriorityLevel.HIGH, PriorityLevel.NORMAL, PriorityLevel.LOW


@pytest.mark.parametrize(
    ("kind", "dependants", "key"),
    [
        (DspCallKind.SUBMIT, 3, 2),
        (DspCallKind.SUBMIT, 1, 2),
        (DspCallKind.SUBMIT, 0, 3),
        (DspCallKind.POLL, 5, 2),
        (DspCallKind.POLL, 0, 4),
        (DspCallKind.ARCHIVE, 0, 3),
        (DspCallKind.ARCHIVE, 4, 3),
    ],
)
def test_priority_key_of_a_normal_batch(kind: DspCallKind, dependants: int, key: int) -> None:
    assert dsp_priority(kind, dependants) == key
    assert dsp_priority(kind, dependants, NORMAL) == key


def test_a_parents_calls_go_before_a_leafs_and_submissions_before_polls() -> None:
    parent = [dsp_priority(kind, 2) for kind in (DspCallKind.SUBMIT, DspCallKind.POLL)]
    leaf = [dsp_priority(kind, 0) for kind in (DspCallKind.SUBMIT, DspCallKind.POLL)]
    assert parent[0] <= parent[1] < leaf[0] < leaf[1]


def test_every_high_call_goes_before_every_normal_one_and_low_after_all() -> None:
    calls = list(itertools.product(DspCallKind, (0, 3)))
    high = {dsp_priority(kind, n, HIGH) for kind, n in calls}
    normal = {dsp_priority(kind, n, NORMAL) for kind, n in calls}
    low = {dsp_priority(kind, n, LOW) for kind, n in calls}
    assert max(high) < min(normal) and max(normal) < min(low)
    # Within Temporal's default five priority levels (and Temporal Cloud's).
    assert high | normal | low <= {1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    ("text", "level"),
    [("high", HIGH), ("NORMAL", NORMAL), (" low ", LOW), ("urgent", None), ("", None)],
)
def test_levels_are_named(text: str, level: PriorityLevel | None) -> None:
    assert parse_priority_level(text) == level


def test_the_fairness_key_is_the_batch_or_a_digest_within_64_bytes() -> None:
    assert fairness_key_for("spring-launch") == "spring-launch"
    long_a = "é" * 40 + "a"  # 81 bytes
    long_b = "é" * 40 + "b"
    key_a, key_b = fairness_key_for(long_a), fairness_key_for(long_b)
    assert key_a != key_b
    assert len(key_a.encode()) <= MAX_FAIRNESS_KEY_BYTES
    assert key_a.startswith("é" * 10)
    assert fairness_key_for(long_a) == key_a  # the same every time, as a replay needs


@pytest.mark.parametrize(
    ("text", "weight"),
    [("1", 1.0), (" 2.5 ", 2.5), ("0.001", 0.001), ("1000", 1000.0), ("1e2", 100.0)],
)
def test_a_weight_within_temporals_range_is_read(text: str, weight: float) -> None:
    assert parse_fairness_weight(text) == weight


@pytest.mark.parametrize("text", ["0", "-1", "0.0009", "1000.5", "nan", "inf", "heavy", ""])
def test_a_weight_outside_the_range_or_not_a_number_is_refused(text: str) -> None:
    assert parse_fairness_weight(text) is None
    assert MIN_FAIRNESS_WEIGHT == 0.001 and MAX_FAIRNESS_WEIGHT == 1000.0


def test_without_tiers_every_normal_call_takes_one_key_and_the_levels_stay_apart() -> None:
    keys = {
        dsp_priority(kind, dependants, NORMAL, tiers=False)
        for kind in DspCallKind
        for dependants in (0, 3)
    }
    assert keys == {3}
    assert dsp_priority(DspCallKind.POLL, 3, HIGH, tiers=False) == 1
    assert dsp_priority(DspCallKind.SUBMIT, 0, LOW, tiers=False) == 5
