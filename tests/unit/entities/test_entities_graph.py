"""The dependency graph: parents-first order and cycles."""

from __future__ import annotations

import pytest

from dsp_integration.contracts import EntityType
from dsp_integration.entities import EntitySpec, find_cycles, topological_order


def spec(key: str, *deps: str, refs: tuple[str, ...] = (), position: int = 0) -> EntitySpec:
    payload = {"creative_ids": [{"$ref": r} for r in refs]}
    return EntitySpec(
        key=key, type=EntityType.AD_GROUPS, payload=payload, depends_on=deps, position=position
    )


def keys(specs: list[EntitySpec]) -> list[str]:
    return [s.key for s in specs]


def test_parents_come_before_children_whatever_the_file_order() -> None:
    entities = [
        spec("ag", refs=("cmp", "crv")),
        spec("crv", refs=("adv",)),
        spec("cmp", "adv"),
        spec("adv"),
    ]
    ordered = keys(topological_order(entities))
    assert ordered.index("adv") < ordered.index("cmp") < ordered.index("ag")
    assert ordered.index("crv") < ordered.index("ag")
    assert sorted(ordered) == sorted(keys(entities))


def test_ties_go_to_entities_with_more_dependants() -> None:
    entities = [
        spec("lonely"),
        spec("small"),
        spec("big"),
        spec("small-child", "small"),
        spec("big-child-1", "big"),
        spec("big-child-2", "big"),
        spec("big-grandchild", "big-child-2"),
    ]
    assert keys(topological_order(entities)) == [
        "big",
        "small",
        "big-child-2",
        "lonely",
        "small-child",
        "big-child-1",
        "big-grandchild",
    ]


def test_ties_with_as_many_dependants_keep_the_file_order() -> None:
    entities = [spec(k) for k in ("c", "a", "b")]
    assert keys(topological_order(entities)) == ["c", "a", "b"]


def test_dependencies_outside_the_file_are_ignored_for_ordering() -> None:
    entities = [spec("child", "stored-parent", refs=("in-file",)), spec("in-file")]
    assert keys(topological_order(entities)) == ["in-file", "child"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        topological_order([spec("a", "b"), spec("b", "a"), spec("c")])


def test_long_chain_needs_no_recursion() -> None:
    entities = [spec("n0")] + [spec(f"n{i}", f"n{i - 1}") for i in range(1, 5_000)]
    entities.reverse()
    assert keys(topological_order(entities)) == [f"n{i}" for i in range(5_000)]
    assert find_cycles(entities) == []


def test_each_cycle_is_reported_once_in_order() -> None:
    entities = [
        spec("free"),
        spec("a", "b"),
        spec("b", "c"),
        spec("c", "a"),
        spec("x", refs=("y",)),
        spec("y", "x"),
        spec("self", "self"),
    ]
    assert find_cycles(entities) == [["a", "b", "c"], ["x", "y"]]


def test_a_tangle_reports_cycles_until_every_member_is_named() -> None:
    entities = [spec("hub", "s1", "s2"), spec("s1", "hub"), spec("s2", "hub")]
    cycles = find_cycles(entities)
    assert cycles == [["hub", "s1"], ["hub", "s2"]]
