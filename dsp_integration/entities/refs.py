"""`{"$ref": key}` references inside payloads.

Standard library only and deterministic: the entity workflow imports this module inside the
Temporal sandbox. Walks are iterative so deeply nested payloads cannot hit the recursion limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

REF = "$ref"


class UnresolvedReference(KeyError):
    """A `$ref` names a key that has no DSP id in the given mapping."""

    def __init__(self, key: str, path: str) -> None:
        super().__init__(key)
        self.key = key
        self.path = path

    def __str__(self) -> str:
        return f"no DSP id for referenced key {self.key!r} (at {self.path or 'the payload'})"


def ref_target(value: Any) -> str | None:
    """The key a well-formed `{"$ref": key}` object names, else None."""
    if isinstance(value, dict) and len(value) == 1:
        target = value.get(REF)
        if isinstance(target, str):
            return target
    return None


def join_path(parent: str, step: str | int) -> str:
    if isinstance(step, int):
        return f"{parent}[{step}]"
    return f"{parent}.{step}" if parent else step


def walk(payload: Any) -> Iterator[tuple[str, dict[str, Any] | list[Any]]]:
    """Every object and list in the payload with its path (`budget`, `creative_ids[0]`),
    parents before children; the payload itself has the path ''. Scalars are skipped:
    references and their mistakes are always objects."""
    if not isinstance(payload, dict | list):
        return
    stack: list[tuple[str, dict[str, Any] | list[Any]]] = [("", payload)]
    while stack:
        path, value = stack.pop()
        yield path, value
        items = value.items() if isinstance(value, dict) else enumerate(value)
        children = [
            (join_path(path, step), child)
            for step, child in items
            if isinstance(child, dict | list)
        ]
        stack.extend(reversed(children))


def ref_paths(payload: Any) -> list[tuple[str, str]]:
    """`(path, key)` for every well-formed reference, in document order."""
    return [
        (path, target) for path, value in walk(payload) if (target := ref_target(value)) is not None
    ]


def referenced_keys(payload: Any) -> list[str]:
    return sorted({key for _, key in ref_paths(payload)})


def dependencies_of(payload: Any, depends_on: Iterable[str]) -> list[str]:
    return sorted(set(referenced_keys(payload)) | set(depends_on))


def resolve_refs(payload: Mapping[str, Any], dsp_ids: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the payload with every reference replaced by the referenced DSP id.
    Raises `UnresolvedReference` (a KeyError) naming the key and where it was."""
    resolved = dict(payload)
    stack: list[tuple[str, dict[str, Any] | list[Any]]] = [("", resolved)]
    while stack:
        path, container = stack.pop()
        steps: Iterable[str | int] = (
            list(container) if isinstance(container, dict) else range(len(container))
        )
        for step in steps:
            child_path = join_path(path, step)
            value = container[step]  # type: ignore[index]
            target = ref_target(value)
            if target is not None:
                if target not in dsp_ids:
                    raise UnresolvedReference(target, child_path)
                container[step] = dsp_ids[target]  # type: ignore[index]
            elif isinstance(value, dict | list):
                child = _shallow_copy(value)
                container[step] = child  # type: ignore[index]
                stack.append((child_path, child))
    return resolved


def _shallow_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_fingerprint(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
