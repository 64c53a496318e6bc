"""The seat rules of an entity file (entities-format.md, `seat`).

A file names its seat at its top, an entity may name its own; without either, an entity
belongs to the configured default seat. A seat must be one the service is configured with,
a `$ref` never crosses seats (the DSP resolves a reference only within one account), while
`depends_on` may, and a key keeps the seat it was first stored with."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dsp_integration.contracts import DEFAULT_SEAT, SEAT_NAME_PATTERN
from dsp_integration.entities.model import (
    EntitySpec,
    ExistingEntity,
    Problem,
    Submission,
    located,
)
from dsp_integration.entities.refs import ref_paths
from dsp_integration.entities.rules import describe, is_valid_key

SEAT_PATTERN = re.compile(SEAT_NAME_PATTERN)
SEAT_RULE = (
    "1 to 32 characters of lower-case letters, digits, _ and -, starting with a letter or digit"
)


@dataclass(frozen=True)
class SeatChoice:
    """The seats a file may name (the configured ones), and the seat of entities whose file
    names none. Only names: validation never needs a seat's connection or secret."""

    names: frozenset[str]
    default: str = DEFAULT_SEAT

    @classmethod
    def of(cls, names: Iterable[str], default: str) -> SeatChoice:
        return cls(frozenset(names), default)

    def unknown(self, seat: str) -> str:
        configured = ", ".join(repr(name) for name in sorted(self.names))
        return f"unknown seat {seat!r}; the configured seats are: {configured}"


# The configuration before seats: one seat, the default. Callers that know the configured
# seats pass them (`client.submission` does, from the settings).
ONLY_DEFAULT_SEAT = SeatChoice.of([DEFAULT_SEAT], DEFAULT_SEAT)


def seat_problem(seat: object) -> str | None:
    """Why `seat` is not a seat name, or None."""
    if isinstance(seat, str) and SEAT_PATTERN.fullmatch(seat):
        return None
    return f"must be a seat name, {SEAT_RULE}; got {describe(seat)}"


def _named_seat_problem(seat: str, seats: SeatChoice) -> str | None:
    return seat_problem(seat) or (None if seat in seats.names else seats.unknown(seat))


def cross_seat_problems(
    spec: EntitySpec, seat: str, seat_of_key: Mapping[str, str]
) -> list[Problem]:
    """One problem per `$ref` of `spec` (of `seat`) to an entity of another seat;
    `seat_of_key` holds the seat of every referenced key it knows. `depends_on` may cross
    seats: it only orders the work."""
    if not isinstance(spec.payload, dict):
        return []
    problems = []
    for field, key in ref_paths(spec.payload):
        if key == spec.key or not is_valid_key(key):
            continue
        other = seat_of_key.get(key)
        if other is not None and other != seat:
            problems.append(
                located(
                    spec,
                    f"refers with $ref to {key!r} of seat {other!r}, but this entity is of "
                    f"seat {seat!r}: a $ref must stay within one seat (depends_on may cross "
                    "seats)",
                    field,
                )
            )
    return problems


def submission_seat_problems(
    submission: Submission, existing: Mapping[str, ExistingEntity], seats: SeatChoice
) -> list[Problem]:
    """Every seat problem of the file: a seat that is no seat name or not configured (the
    file's once, an entity's at the entity), a `$ref` across seats (to the file's entities
    or stored ones), a stored key given another seat."""
    problems: list[Problem] = []
    if submission.seat is not None and (message := _named_seat_problem(submission.seat, seats)):
        problems.append(Problem(message, field="seat"))
    seat_of_key = {key: entity.seat for key, entity in existing.items()}
    in_file: dict[str, str] = {}
    for spec in submission.entities:
        if spec.seat is not None and (message := _named_seat_problem(spec.seat, seats)):
            problems.append(located(spec, message, "seat"))
        in_file.setdefault(spec.key, submission.seat_of(spec, seats.default))
    seat_of_key.update(in_file)
    for spec in submission.entities:
        seat = submission.seat_of(spec, seats.default)
        problems += cross_seat_problems(spec, seat, seat_of_key)
        stored = existing.get(spec.key)
        if stored is not None and str(stored.type) == str(spec.type) and stored.seat != seat:
            batch = f" in batch {stored.batch!r}" if stored.batch else ""
            problems.append(
                located(
                    spec,
                    f"this key was already submitted{batch} for seat {stored.seat!r}, not "
                    f"{seat!r}; an entity keeps its seat: use a new key",
                    "seat",
                )
            )
    return problems
