"""Reading an entity file (JSON or JSON Lines) into a `Submission`.

Only what keeps the file from becoming well-typed `EntitySpec`s refuses it here. When that
happens, every check that needs no database runs on the rest of the file too, so one answer
lists as much as can be known.
"""

from __future__ import annotations

import codecs
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from dsp_integration.contracts import EntityType
from dsp_integration.entities.model import EntitySpec, Problem, Submission, SubmissionRefused
from dsp_integration.entities.rules import (
    describe,
    key_problem,
    normalised_payload,
    payload_issues,
)
from dsp_integration.entities.seats import seat_problem
from dsp_integration.entities.validate import (
    batch_problem,
    duplicate_problems,
    local_problems,
    sort_problems,
)

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ENTITIES = 50_000
ENTITY_FIELDS = ("key", "type", "payload", "depends_on", "seat")
DOCUMENT_FIELDS = ("batch", "seat", "entities")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
DEFAULT_BATCH = "batch"

_UNSAFE_BATCH_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS_UTF8 = "save the file as UTF-8"
_TYPE_NAMES = frozenset(t.value for t in EntityType)
_NEWLINE = b"\n"


class _NotJson(Exception):
    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def parse_submission(data: bytes, *, filename: str, batch: str | None = None) -> Submission:
    """Parse a whole entity file; raises `SubmissionRefused` listing every problem found.
    `batch` (the `--batch` option) names the batch of a JSON Lines file, which is otherwise
    named after the file; a JSON file names its own batch."""
    text = _decode(data)
    if not text.strip():
        raise SubmissionRefused([Problem("the file holds only whitespace; no entities in it")])
    if _looks_like_json_lines(text, filename):
        return _parse_json_lines(text, filename, batch)
    return _parse_document(text, filename, batch)


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise SubmissionRefused(
            [
                Problem(
                    f"the file is {len(data):,} bytes, over the limit of {MAX_FILE_BYTES:,} "
                    f"bytes ({MAX_FILE_BYTES // 2**20} MiB); split it into several files"
                )
            ]
        )
    if not data:
        raise SubmissionRefused([Problem("the file is empty")])
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise SubmissionRefused(
                [
                    Problem(
                        f"the file is {encoding} (byte order mark at byte offset 0); "
                        + _SAVE_AS_UTF8
                    )
                ]
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise SubmissionRefused(
            [
                Problem(
                    f"the file is not UTF-8: a NUL byte at byte offset {nul} "
                    f"({_line_of(data, nul)}); is it UTF-16? {_SAVE_AS_UTF8}"
                )
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        offset = error.start
        raise SubmissionRefused(
            [
                Problem(
                    f"the file is not UTF-8: byte 0x{data[offset]:02x} at byte offset {offset} "
                    f"({_line_of(data, offset)}) cannot be decoded "
                    f"({error.reason}); {_SAVE_AS_UTF8}"
                )
            ]
        ) from None


def _line_of(data: bytes, offset: int) -> str:
    return f"line {data.count(_NEWLINE, 0, offset) + 1}"


def _lines(text: str) -> list[str]:
    # Only "\n" ends a line: str.splitlines() would also split on U+2028 inside strings.
    return [line.removesuffix("\r") for line in text.split("\n")]


def _first_content_line(text: str) -> str:
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)].strip()


def _looks_like_json_lines(text: str, filename: str) -> bool:
    """A JSON document opens with `{` alone on its line, or holds `entities` (or `batch`
    without `key`) on its first line; JSON Lines opens with a whole entity object. When the
    first line settles nothing, a `.jsonl` name or every line being one `{...}` says JSON
    Lines."""
    first_line = _first_content_line(text)
    try:
        first = _loads(first_line)
    except _NotJson:
        first = None
    if isinstance(first, dict):
        return not ("entities" in first or ("batch" in first and "key" not in first))
    if PurePath(filename).suffix.lower() in JSON_LINES_SUFFIXES:
        return first_line not in ("{", "[")
    lines = [line.strip() for line in _lines(text) if line.strip()]
    return len(lines) > 1 and all(line[0] == "{" and line[-1] == "}" for line in lines)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _NotJson(error.msg, error.lineno, error.colno) from None
    except RecursionError:
        raise _NotJson("nested too deeply") from None
    except ValueError as error:  # e.g. an integer literal with thousands of digits
        raise _NotJson(str(error)) from None


def default_batch_name(filename: str) -> str:
    """The file's stem, made a valid batch name (accents dropped, other characters -> '-')."""
    stem = PurePath(filename).stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_BATCH_CHARS.sub("-", ascii_stem).strip("-")[:128]
    return cleaned or DEFAULT_BATCH


@dataclass
class _Collected:
    specs: list[EntitySpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    occurrences: list[tuple[str, int, int | None]] = field(default_factory=list)

    def finish(self, batch: str, seat: str | None = None) -> Submission:
        if not self.problems:
            return Submission(batch=batch, entities=self.specs, seat=seat)
        problems = self.problems + duplicate_problems(self.occurrences)
        problems += local_problems(self.specs, check_duplicates=False)
        raise SubmissionRefused(sort_problems(problems))


def _too_many(count: int) -> Problem:
    return Problem(
        f"the file holds {count:,} entities, over the limit of {MAX_ENTITIES:,}; "
        "split it into several files"
    )


def _parse_json_lines(text: str, filename: str, batch: str | None) -> Submission:
    lines = _lines(text)
    count = sum(1 for line in lines if line.strip())
    if count > MAX_ENTITIES:
        raise SubmissionRefused([_too_many(count)])
    collected = _Collected()
    if batch is not None and (problem := batch_problem(batch)):
        collected.problems.append(problem)
    position = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        position += 1
        try:
            item = _loads(line)
        except _NotJson as error:
            column = f" at column {error.column}" if error.column else ""
            collected.problems.append(
                Problem(f"not valid JSON: {error.message}{column}", position=position, line=number)
            )
            continue
        _collect_entity(collected, item, position, number)
    return collected.finish(batch if batch is not None else default_batch_name(filename))


def _parse_document(text: str, filename: str, batch: str | None) -> Submission:
    try:
        document = _loads(text)
    except _NotJson as error:
        where = f" at line {error.line}, column {error.column}" if error.line else ""
        raise SubmissionRefused([Problem(f"not valid JSON{where}: {error.message}")]) from None
    if not isinstance(document, dict):
        raise SubmissionRefused(
            [
                Problem(
                    'the top level must be an object {"batch": ..., "entities": [...]} '
                    f"(or one entity object per line, JSON Lines), got {describe(document)}"
                )
            ]
        )
    collected = _Collected()
    for name in document.keys() - set(DOCUMENT_FIELDS):
        collected.problems.append(
            Problem(
                f"unknown top-level field (the file takes: {', '.join(DOCUMENT_FIELDS)})",
                field=name,
            )
        )
    chosen_batch = _document_batch(document, filename, batch, collected.problems)
    seat = _document_seat(document, collected.problems)
    entities = document.get("entities")
    if "entities" not in document:
        collected.problems.append(Problem("is required: the list of entities", field="entities"))
    elif not isinstance(entities, list):
        collected.problems.append(
            Problem(f"must be a list of entity objects, got {describe(entities)}", field="entities")
        )
    elif not entities:
        collected.problems.append(Problem("the file holds no entities", field="entities"))
    elif len(entities) > MAX_ENTITIES:
        raise SubmissionRefused([_too_many(len(entities))])
    else:
        for position, item in enumerate(entities, start=1):
            _collect_entity(collected, item, position, None)
    return collected.finish(chosen_batch, seat)


def _document_seat(document: dict[str, Any], problems: list[Problem]) -> str | None:
    """The seat the file names at its top, or None. Whether it is a configured seat is
    checked with the file (`validate_submission`), which knows the configuration."""
    if "seat" not in document:
        return None
    seat = document["seat"]
    if message := seat_problem(seat):
        problems.append(Problem(message, field="seat"))
        return None
    return str(seat)


def _document_batch(
    document: dict[str, Any], filename: str, batch: str | None, problems: list[Problem]
) -> str:
    in_file = document.get("batch")
    if "batch" in document and (problem := batch_problem(in_file)):
        problems.append(problem)
    if batch is not None:
        if problem := batch_problem(batch):
            problems.append(problem)
        elif isinstance(in_file, str) and in_file != batch:
            problems.append(
                Problem(
                    f"the file names batch {in_file!r} but --batch says {batch!r}; "
                    "give one or make them agree",
                    field="batch",
                )
            )
        return batch
    if isinstance(in_file, str):
        return in_file
    return default_batch_name(filename)


def _collect_entity(collected: _Collected, item: Any, position: int, line: int | None) -> None:
    def problem(message: str, field: str | None = None) -> None:
        shown = key if isinstance(key, str) else None
        collected.problems.append(
            Problem(message, key=shown, position=position, field=field, line=line)
        )

    if not isinstance(item, dict):
        key = None
        problem(f"must be an entity object with key, type and payload, got {describe(item)}")
        return
    key = item.get("key")
    for name in item.keys() - set(ENTITY_FIELDS):
        problem(f"unknown entity field (an entity takes: {', '.join(ENTITY_FIELDS)})", name)

    well_formed = True
    if "key" not in item:
        problem("is required", "key")
        well_formed = False
    elif not isinstance(key, str):
        problem(f"must be a string, got {describe(key)}", "key")
        well_formed = False
    else:
        collected.occurrences.append((key, position, line))

    raw_type = item.get("type")
    entity_type: EntityType | None = None
    if "type" not in item:
        problem("is required", "type")
    elif isinstance(raw_type, str) and raw_type in _TYPE_NAMES:
        entity_type = EntityType(raw_type)
    else:
        known = ", ".join(t.value for t in EntityType)
        problem(f"must be one of {known}, got {describe(raw_type)}", "type")

    payload = item.get("payload")
    if "payload" not in item:
        problem("is required", "payload")
    elif not isinstance(payload, dict):
        problem(f"must be an object, got {describe(payload)}", "payload")

    raw_deps = item.get("depends_on", [])
    deps_ok = isinstance(raw_deps, list) and all(isinstance(d, str) for d in raw_deps)
    if not isinstance(raw_deps, list):
        problem(f"must be a list of keys, got {describe(raw_deps)}", "depends_on")
    elif not deps_ok:
        for index, dep in enumerate(raw_deps):
            if not isinstance(dep, str):
                problem(f"must be a key string, got {describe(dep)}", f"depends_on[{index}]")

    seat: str | None = None
    if "seat" in item:
        if message := seat_problem(item["seat"]):
            problem(message, "seat")
        else:
            seat = str(item["seat"])

    if (
        well_formed
        and isinstance(key, str)
        and entity_type is not None
        and isinstance(payload, dict)
        and deps_ok
    ):
        collected.specs.append(
            EntitySpec(
                key=key,
                type=entity_type,
                payload=normalised_payload(entity_type, payload),
                depends_on=tuple(raw_deps),
                position=position,
                line=line,
                seat=seat,
            )
        )
        return
    # Not well-typed, so `local_problems` will not see it: check what can be checked here.
    if isinstance(key, str) and (message := key_problem(key)):
        problem(message, "key")
    if isinstance(raw_deps, list):
        for index, dep in enumerate(raw_deps):
            if isinstance(dep, str) and (message := key_problem(dep)):
                problem(message, f"depends_on[{index}]")
    if entity_type is not None and isinstance(payload, dict):
        for issue in payload_issues(entity_type, payload):
            problem(issue.message, issue.field)
