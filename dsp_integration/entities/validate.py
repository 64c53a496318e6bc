"""File-level checks of a parsed submission against itself and what is already stored."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

from dsp_integration.contracts import EntityType
from dsp_integration.entities.graph import find_cycles
from dsp_integration.entities.model import (
    EntitySpec,
    ExistingEntity,
    Problem,
    Submission,
    SubmissionRefused,
)
from dsp_integration.entities.model import located as _located
from dsp_integration.entities.refs import dependencies_of, payload_fingerprint, ref_paths
from dsp_integration.entities.rules import (
    describe,
    expected_parent_type,
    is_valid_key,
    key_problem,
    payload_issues,
)
from dsp_integration.entities.seats import (
    ONLY_DEFAULT_SEAT,
    SeatChoice,
    cross_seat_problems,
    submission_seat_problems,
)

BATCH_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
BATCH_RULE = "1 to 128 characters of letters (A-Z, a-z), digits and ._:-"

Occurrence = tuple[str, int, int | None]  # key, position, line


def batch_problem(batch: object) -> Problem | None:
    if isinstance(batch, str) and BATCH_PATTERN.fullmatch(batch):
        return None
    return Problem(f"must be {BATCH_RULE}, got {describe(batch)}", field="batch")


def entity_problems(spec: EntitySpec) -> list[Problem]:
    """Key syntax, type, payload shape, depends_on and the DSP field rules of one entity."""
    problems: list[Problem] = []
    if message := key_problem(spec.key):
        problems.append(_located(spec, message, "key"))
    try:
        entity_type: EntityType | None = EntityType(spec.type)
    except ValueError:
        entity_type = None
        known = ", ".join(t.value for t in EntityType)
        problems.append(
            _located(spec, f"must be one of {known}, got {describe(spec.type)}", "type")
        )
    if not isinstance(spec.payload, dict):
        problems.append(
            _located(spec, f"must be an object, got {describe(spec.payload)}", "payload")
        )
    elif entity_type is not None:
        problems += [
            _located(spec, i.message, i.field) for i in payload_issues(entity_type, spec.payload)
        ]
    if not isinstance(spec.depends_on, tuple | list):
        problems.append(
            _located(spec, f"must be a list of keys, got {describe(spec.depends_on)}", "depends_on")
        )
    else:
        for index, dep in enumerate(spec.depends_on):
            if message := key_problem(dep):
                problems.append(_located(spec, message, f"depends_on[{index}]"))
    return problems


def _references(spec: EntitySpec) -> list[tuple[str, str]]:
    """`(field, key)` of every reference and depends_on entry of a well-formed entity."""
    found = ref_paths(spec.payload) if isinstance(spec.payload, dict) else []
    if isinstance(spec.depends_on, tuple | list):
        found += [(f"depends_on[{i}]", dep) for i, dep in enumerate(spec.depends_on)]
    return [(field, key) for field, key in found if is_valid_key(key)]


def reference_problems(
    spec: EntitySpec,
    known_keys: Container[str] | None,
    known_types: Mapping[str, EntityType | str] | None = None,
    *,
    self_references: bool = True,
) -> list[Problem]:
    """Self-references; with `known_keys`, references to keys neither in the file nor stored;
    with `known_types`, references to an entity of the wrong type (an ad group's
    `campaign_id` naming a creative)."""
    problems: list[Problem] = []
    for field, key in _references(spec):
        if key == spec.key:
            if self_references:
                problems.append(_located(spec, "an entity cannot depend on itself", field))
        elif known_keys is not None and key not in known_keys:
            problems.append(
                _located(
                    spec,
                    f"refers to unknown key {key!r}: it is neither in this file nor "
                    "submitted before",
                    field,
                )
            )
        elif known_types is not None and key in known_types:
            try:
                expected = expected_parent_type(EntityType(spec.type), field)
            except ValueError:
                continue
            actual = str(known_types[key])
            if expected is not None and actual != expected.value:
                problems.append(
                    _located(
                        spec,
                        f"must refer to one of {expected.value}, but {key!r} is one of {actual}",
                        field,
                    )
                )
    return problems


def duplicate_problems(occurrences: Iterable[Occurrence]) -> list[Problem]:
    """One problem per repeated key, at its second occurrence, naming every position."""
    seen: dict[str, list[tuple[int, int | None]]] = {}
    for key, position, line in occurrences:
        seen.setdefault(key, []).append((position, line))
    problems = []
    for key, places in seen.items():
        if len(places) < 2:
            continue
        others = ", ".join(f"#{p}" + (f" (line {ln})" if ln else "") for p, ln in places)
        position, line = places[1]
        problems.append(
            Problem(
                f"duplicate key: entities {others} all use it",
                key=key,
                position=position,
                field="key",
                line=line,
            )
        )
    return problems


def _edge_field(spec: EntitySpec, target: str) -> str | None:
    return next((field for field, key in _references(spec) if key == target), None)


def cycle_problems(entities: Sequence[EntitySpec]) -> list[Problem]:
    by_key: dict[str, EntitySpec] = {}
    for spec in entities:
        by_key.setdefault(spec.key, spec)
    problems = []
    for cycle in find_cycles(entities):
        first = by_key[cycle[0]]
        chain = " -> ".join(repr(key) for key in [*cycle, cycle[0]])
        field = _edge_field(first, cycle[1 % len(cycle)])
        problems.append(_located(first, f"dependency cycle: {chain}", field))
    return problems


def local_problems(
    entities: Sequence[EntitySpec], *, check_duplicates: bool = True
) -> list[Problem]:
    """Everything that can be checked without the database."""
    file_types: dict[str, EntityType | str] = {spec.key: spec.type for spec in entities}
    problems: list[Problem] = []
    for spec in entities:
        problems += entity_problems(spec)
        problems += reference_problems(spec, known_keys=None, known_types=file_types)
    if check_duplicates:
        problems += duplicate_problems((s.key, s.position, s.line) for s in entities)
    problems += cycle_problems(entities)
    return problems


def _conflicts(spec: EntitySpec, existing: ExistingEntity) -> list[Problem]:
    batch = f" in batch {existing.batch!r}" if existing.batch else ""
    if str(existing.type) != str(spec.type):
        return [
            _located(
                spec,
                f"this key was already submitted{batch} as one of {existing.type}; "
                "a key names one entity for good: use a new key",
                "type",
            )
        ]
    if payload_fingerprint(existing.payload) != payload_fingerprint(spec.payload):
        return [
            _located(
                spec,
                f"this key was already submitted{batch} with a different payload; use a new "
                "key, or `resubmit` to change the stored entity",
                "payload",
            )
        ]
    return []


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """File-level problems first, then by entity position; the order found is kept otherwise."""
    return sorted(problems, key=lambda p: p.position or 0)


def validate_submission(
    submission: Submission,
    existing: Mapping[str, ExistingEntity],
    *,
    seats: SeatChoice = ONLY_DEFAULT_SEAT,
) -> list[Problem]:
    """Every problem of the submission; empty when it may be stored. `existing` must hold
    whatever the database has for `keys_to_look_up(submission)`; `seats` are the configured
    seats (by default only the default seat, the configuration before seats)."""
    problems: list[Problem] = []
    if problem := batch_problem(submission.batch):
        problems.append(problem)
    if not submission.entities:
        problems.append(Problem("the file holds no entities"))
    known_types: dict[str, EntityType | str] = {key: e.type for key, e in existing.items()}
    known_types.update((spec.key, spec.type) for spec in submission.entities)
    for spec in submission.entities:
        problems += entity_problems(spec)
        problems += reference_problems(spec, known_types, known_types)
        if spec.key in existing:
            problems += _conflicts(spec, existing[spec.key])
    problems += submission_seat_problems(submission, existing, seats)
    problems += duplicate_problems((s.key, s.position, s.line) for s in submission.entities)
    problems += cycle_problems(submission.entities)
    return sort_problems(problems)


def check_submission(
    submission: Submission,
    existing: Mapping[str, ExistingEntity],
    *,
    seats: SeatChoice = ONLY_DEFAULT_SEAT,
) -> None:
    """Raises `SubmissionRefused` listing every problem, if there is any."""
    problems = validate_submission(submission, existing, seats=seats)
    if problems:
        raise SubmissionRefused(problems)


def keys_to_look_up(submission: Submission) -> set[str]:
    """The file's keys and every key they reference: what `existing` must be fetched for."""
    keys = {spec.key for spec in submission.entities}
    for spec in submission.entities:
        if isinstance(spec.payload, dict):
            keys.update(dependencies_of(spec.payload, spec.depends_on))
    return keys


def validate_payload(
    key: str,
    type: EntityType,
    payload: dict[str, Any],
    known_keys: Container[str],
    *,
    known_types: Mapping[str, EntityType | str] | None = None,
    seat: str | None = None,
    known_seats: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The problems of a single new payload for a stored entity (a resubmit). `known_keys`
    holds the stored keys among those the payload references; with the entity's `seat` and
    `known_seats` (their seats), a `$ref` to another seat's entity is refused too."""
    spec = EntitySpec(key=key, type=type, payload=payload)
    problems = entity_problems(spec) + reference_problems(spec, known_keys, known_types)
    if seat is not None and known_seats is not None:
        problems += cross_seat_problems(spec, seat, known_seats)
    return problems
