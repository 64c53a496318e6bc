"""Priority keys of the DSP calls (lower runs first on the DSP task queue) by the batch's
level, fairness keys by the batch and the call's lane, and the weights users may give."""

from __future__ import annotations

import itertools

import pytest

from dsp_integration.contracts import (
    DSP_ACTIVITY_PRIORITY_NORMAL,
    MAX_FAIRNESS_KEY_BYTES,
    MAX_FAIRNESS_WEIGHT,
    MIN_FAIRNESS_WEIGHT,
    POLLS_LANE_SHARE,
    CallLane,
    DspCallKind,
    PriorityLevel,
    call_lane,
    dsp_fairness_key,
    dsp_fairness_weight,
    dsp_priority,
    fairness_key_for,
    parse_fairness_weight,
    parse_priority_level,
    workflow_priority_key,
)

HIGH, NORMAL, LOW = PriorityLevel.HIGH, PriorityLevel.NORMAL, PriorityLevel.LOW


@pytest.mark.parametrize("level", list(PriorityLevel))
def test_a_level_is_one_priority_key_whatever_the_call(level: PriorityLevel) -> None:
    """Parents go first by their lane within the level, not by a priority key of their own."""
    calls = list(itertools.product(DspCallKind, (0, 3)))
    assert len({dsp_priority(kind, n, level) for kind, n in calls}) == 1
    assert {dsp_priority(kind, n) for kind, n in calls} == {DSP_ACTIVITY_PRIORITY_NORMAL}


def test_every_high_call_goes_before_every_normal_one_and_low_after_all() -> None:
    calls = list(itertools.product(DspCallKind, (0, 3)))
    high = {dsp_priority(kind, n, HIGH) for kind, n in calls}
    normal = {dsp_priority(kind, n, NORMAL) for kind, n in calls}
    low = {dsp_priority(kind, n, LOW) for kind, n in calls}
    assert max(high) < min(normal) and max(normal) < min(low)
    # Within Temporal's default five priority levels (and Temporal Cloud's).
    assert high | normal | low <= {1, 2, 3, 4, 5}
    assert {workflow_priority_key(level) for level in (HIGH, NORMAL, LOW)} == high | normal | low


@pytest.mark.parametrize(
    ("kind", "dependants", "lane"),
    [
        (DspCallKind.SUBMIT, 2, CallLane.PARENTS),
        (DspCallKind.POLL, 1, CallLane.PARENTS),
        (DspCallKind.SUBMIT, 0, CallLane.SUBMISSIONS),
        (DspCallKind.ARCHIVE, 0, CallLane.SUBMISSIONS),
        (DspCallKind.ARCHIVE, 4, CallLane.SUBMISSIONS),  # archiving unblocks nobody
        (DspCallKind.POLL, 0, CallLane.POLLS),
    ],
)
def test_a_calls_lane(kind: DspCallKind, dependants: int, lane: CallLane) -> None:
    assert call_lane(kind, dependants) is lane
    assert dsp_fairness_key("spring", kind, dependants) == f"spring:{lane}"


def test_a_leafs_polls_weigh_a_quarter_of_the_batchs_weight() -> None:
    assert dsp_fairness_weight(DspCallKind.POLL, 0, 2.0) == 2.0 * POLLS_LANE_SHARE
    assert dsp_fairness_weight(DspCallKind.POLL, 0, MIN_FAIRNESS_WEIGHT) == MIN_FAIRNESS_WEIGHT
    assert dsp_fairness_weight(DspCallKind.POLL, 3, 2.0) == 2.0  # a parent's polls
    assert dsp_fairness_weight(DspCallKind.SUBMIT, 0, 2.0) == 2.0


def test_two_batches_never_share_a_lanes_key() -> None:
    """A batch named like another's lane key keeps a key of its own."""
    keys = {
        dsp_fairness_key(batch, kind, n)
        for batch in ("a", "a:parents", "a:submissions", "a:polls:polls")
        for kind, n in itertools.product(DspCallKind, (0, 1))
    }
    assert len(keys) == 4 * 3


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
    with_lane = fairness_key_for(long_a, ":submissions")
    assert len(with_lane.encode()) <= MAX_FAIRNESS_KEY_BYTES
    assert with_lane.endswith(":submissions") and with_lane != fairness_key_for(
        long_b, ":submissions"
    )


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
