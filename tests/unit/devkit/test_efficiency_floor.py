"""The efficiency benchmark's time floor: a perfect poller at the full rate."""

from __future__ import annotations

import pytest

from devkit.bench.efficiency import FloorEntity, time_floor


def test_a_child_waits_for_its_parent_to_propagate_and_is_read_when_decided() -> None:
    sent, seen = time_floor(
        [FloorEntity("adv", 0.0, []), FloorEntity("cmp", 5.0, ["adv"])],
        limit=10,
        window=1.0,
        propagation=0.3,
    )
    assert sent == pytest.approx([0.0, 0.3, 5.3])
    assert seen == pytest.approx([0.0, 5.3])


def test_the_rolling_window_paces_the_requests() -> None:
    sent, seen = time_floor(
        [FloorEntity(f"adv{i}", 0.0, []) for i in range(5)], limit=2, window=1.0, propagation=0
    )
    assert sent == pytest.approx([0, 0, 1, 1, 2])
    assert seen[-1] == pytest.approx(2)


def test_an_ad_group_needs_every_parent_read() -> None:
    entities = [
        FloorEntity("adv", 0.0, []),
        FloorEntity("cmp", 1.0, ["adv"]),
        FloorEntity("cre", 10.0, ["adv"]),
        FloorEntity("ag", 2.0, ["cmp", "cre"]),
    ]
    sent, seen = time_floor(entities, limit=100, window=1.0, propagation=0.0)
    # adv, cmp and cre POSTed at 0; cmp read at 1, cre at 10; ag POSTed at 10, read at 12.
    assert len(sent) == 7
    assert seen[-1] == pytest.approx(12.0)
