"""The parsed shape of an entity file, and the problems that refuse one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsp_integration.contracts import DEFAULT_SEAT, EntityType

_SHOWN_KEY_CHARS = 80


@dataclass(frozen=True)
class EntitySpec:
    """One entity of a file. `position` is its 1-based index among the file's entities;
    `line` is the line it starts on when known (JSON Lines)."""

    key: str
    type: EntityType
    payload: dict[str, Any] = field(hash=False)
    depends_on: tuple[str, ...] = ()
    position: int = 0
    line: int | None = None
    # The seat the entity names itself; None: the file's seat, else the configured default.
    seat: str | None = None


@dataclass(frozen=True)
class Submission:
    """A parsed file. `seat` is the seat it names at its top (beside `batch`), if any."""

    batch: str
    entities: list[EntitySpec] = field(hash=False)
    seat: str | None = None

    def seat_of(self, spec: EntitySpec, default: str) -> str:
        """The seat `spec` belongs to: its own, else the file's, else `default` (the
        configured default seat)."""
        if spec.seat is not None:
            return spec.seat
        if self.seat is not None:
            return self.seat
        return default


@dataclass(frozen=True)
class ExistingEntity:
    """An entity the database already holds, from an earlier submission."""

    key: str
    type: EntityType | str
    payload: dict[str, Any] = field(hash=False)
    batch: str = ""
    seat: str = DEFAULT_SEAT


@dataclass(frozen=True)
class Problem:
    message: str
    key: str | None = None
    position: int | None = None
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"entity #{self.position}")
        if self.key is not None:
            shown = self.key
            if len(shown) > _SHOWN_KEY_CHARS:
                shown = shown[: _SHOWN_KEY_CHARS - 3] + "..."
            where.append(repr(shown) if where else f"entity {shown!r}")
        if self.line is not None:
            where.append(f"(line {self.line})")
        text = " ".join(where)
        if self.field is not None:
            text = f"{text}, field {self.field}" if text else f"field {self.field}"
        return f"{text}: {self.message}" if text else self.message


def located(spec: EntitySpec, message: str, field: str | None) -> Problem:
    """A problem of `spec`, placed at its key, position and line."""
    return Problem(
        message, key=spec.key, position=spec.position or None, field=field, line=spec.line
    )


class SubmissionRefused(Exception):
    """The file was refused whole; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        summary = "; ".join(str(p) for p in self.problems[:3])
        more = f"; and {count - 3} more" if count > 3 else ""
        super().__init__(f"submission refused ({count} problem(s)): {summary}{more}")
