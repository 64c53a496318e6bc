"""`entities.refs`: the standard-library helpers the entity workflow uses in its sandbox."""

from __future__ import annotations

import ast
import copy
import hashlib
import sys
from pathlib import Path

import pytest

from dsp_integration.entities import refs
from dsp_integration.entities.refs import (
    UnresolvedReference,
    dependencies_of,
    payload_fingerprint,
    ref_paths,
    referenced_keys,
    resolve_refs,
)

PAYLOAD = {
    "campaign_id": {"$ref": "spring"},
    "name": "Prospecting",
    "bid_cpm": 2.5,
    "creative_ids": [{"$ref": "banner"}, "crv_existing", {"$ref": "banner"}],
    "targeting": {"deep": [{"list": [{"$ref": "audience"}]}]},
}


def test_referenced_keys_are_sorted_unique_and_found_at_any_depth() -> None:
    assert referenced_keys(PAYLOAD) == ["audience", "banner", "spring"]
    assert referenced_keys({"name": "x", "creative_ids": []}) == []


def test_ref_paths_name_where_each_reference_is() -> None:
    assert ref_paths(PAYLOAD) == [
        ("campaign_id", "spring"),
        ("creative_ids[0]", "banner"),
        ("creative_ids[2]", "banner"),
        ("targeting.deep[0].list[0]", "audience"),
    ]


def test_malformed_refs_are_not_references() -> None:
    payload = {"a": {"$ref": 5}, "b": {"$ref": "x", "other": 1}, "c": {"$reference": "y"}}
    assert referenced_keys(payload) == []


def test_resolve_refs_replaces_every_reference_and_leaves_the_input_alone() -> None:
    original = copy.deepcopy(PAYLOAD)
    ids = {"spring": "cmp_1", "banner": "crv_2", "audience": "aud_3", "unused": "x"}

    resolved = resolve_refs(PAYLOAD, ids)

    assert resolved == {
        "campaign_id": "cmp_1",
        "name": "Prospecting",
        "bid_cpm": 2.5,
        "creative_ids": ["crv_2", "crv_existing", "crv_2"],
        "targeting": {"deep": [{"list": ["aud_3"]}]},
    }
    assert PAYLOAD == original
    assert referenced_keys(resolved) == []


def test_resolve_refs_names_the_missing_key_and_where_it_was() -> None:
    with pytest.raises(KeyError) as caught:
        resolve_refs(PAYLOAD, {"spring": "cmp_1", "banner": "crv_2"})
    error = caught.value
    assert isinstance(error, UnresolvedReference)
    assert error.key == "audience"
    assert error.path == "targeting.deep[0].list[0]"
    assert "'audience'" in str(error) and "targeting.deep[0].list[0]" in str(error)


def test_deeply_nested_payload_does_not_hit_the_recursion_limit() -> None:
    payload: dict = {"x": {"$ref": "bottom"}}
    for _ in range(sys.getrecursionlimit() * 2):
        payload = {"n": [payload]}
    assert referenced_keys(payload) == ["bottom"]
    resolved = resolve_refs(payload, {"bottom": "id_1"})
    assert referenced_keys(resolved) == []


def test_payload_fingerprint_is_canonical() -> None:
    one = {"b": 1, "a": {"y": [1, 2], "x": "é"}}
    same = {"a": {"x": "é", "y": [1, 2]}, "b": 1}
    canonical = '{"a":{"x":"é","y":[1,2]},"b":1}'

    assert payload_fingerprint(one) == payload_fingerprint(same)
    assert payload_fingerprint(one) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert payload_fingerprint(one) != payload_fingerprint({**one, "b": 2})
    assert payload_fingerprint({"n": [1, 2]}) != payload_fingerprint({"n": [2, 1]})


def test_dependencies_of_merges_refs_and_depends_on() -> None:
    assert dependencies_of(PAYLOAD, ("zeta", "banner")) == ["audience", "banner", "spring", "zeta"]
    assert dependencies_of({"name": "x"}, []) == []


def test_refs_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(refs.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
