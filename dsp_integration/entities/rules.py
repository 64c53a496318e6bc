"""The DSP's field rules (dsp-api.md, "Entity types and their fields"), checked locally.
Which entity each reference field points to is in `dsp_integration/contracts/entity_types.py`.

Each rule carries the JSON Schema that says the same thing (`FieldRule.schema`), written
beside its check: the API's OpenAPI document is generated from them
(`entities/json_schema.py`), and a test draws payloads from each schema and checks the rules
agree. What JSON Schema cannot say (an end date not before the start date) is in the
cross-check's `description`.

Payload field paths read like `budget.amount` or `creative_ids[2]`. A `{"$ref": key}` object
stands for a DSP id (a string): it is accepted where any string is (`name`) and in reference
fields, and refused where the value must have a form a DSP id cannot have (a host name, a date).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from dsp_integration.contracts import EntityType
from dsp_integration.contracts.entity_types import spec_of
from dsp_integration.entities.refs import REF, join_path, ref_target, walk

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
KEY_RULE = "1 to 128 characters of letters (A-Z, a-z), digits and ._:-"
NAME_MAX_CHARS = 255
CREATIVE_FORMATS = ("display", "video", "native")

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_UPPER_CURRENCY = re.compile(r"[A-Z]{3}")
_ANY_CURRENCY = re.compile(r"[A-Za-z]{3}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHOWN_CHARS = 60
_LIST_ITEM = re.compile(r"\[\d+\]$")


class FieldIssue(NamedTuple):
    field: str
    message: str


Check = Callable[[str, Any], list[FieldIssue]]
JsonSchema = Mapping[str, Any]


@dataclass(frozen=True)
class FieldRule:
    """A field's check and the JSON Schema saying the same (keep the two in step)."""

    check: Check
    schema: JsonSchema

    def __call__(self, path: str, value: Any) -> list[FieldIssue]:
        return self.check(path, value)


def field_rule(schema: JsonSchema) -> Callable[[Check], FieldRule]:
    def wrap(check: Check) -> FieldRule:
        return FieldRule(check, schema)

    return wrap


@dataclass(frozen=True)
class CrossRule:
    """A check across a payload's fields, with the JSON Schema that says it (`schema`, merged
    into the type's payload schema) or, when JSON Schema cannot, the words (`description`)."""

    check: Callable[[dict[str, Any]], list[FieldIssue]]
    description: str
    schema: JsonSchema = field(default_factory=dict)


KEY_SCHEMA_PATTERN = "^[A-Za-z0-9._:-]{1,128}$"
# `{"$ref": "<key>"}`, said without a "$ref" property name (some OpenAPI tools would take
# it for a JSON reference): its one property is named $ref and holds a key. Generated clients
# carry it as an additional property.
REF_SCHEMA: JsonSchema = {
    "type": "object",
    "description": 'a reference to another entity of the service, by key: {"$ref": "<key>"}; '
    "replaced by that entity's DSP id when sent, and this entity waits for it",
    "propertyNames": {"pattern": "^[$]ref$"},
    "additionalProperties": {"type": "string", "pattern": KEY_SCHEMA_PATTERN},
    "required": [REF],
}
_HOST_LABEL_PATTERN = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# 0 to 65535, as `urlsplit(...).port` takes it (empty: no port).
_PORT_PATTERN = (
    "(?:[0-9]{0,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)


def is_valid_key(value: object) -> bool:
    return isinstance(value, str) and KEY_PATTERN.fullmatch(value) is not None


def key_problem(value: object) -> str | None:
    """Why `value` is not a valid entity key, or None."""
    if not isinstance(value, str):
        return f"must be a string, got {describe(value)}"
    if not KEY_PATTERN.fullmatch(value):
        bad = sorted({c for c in value if not KEY_PATTERN.fullmatch(c)})
        detail = f" (not allowed: {', '.join(repr(c) for c in bad[:5])})" if bad else ""
        return f"{describe(value)} is not a valid key: it must be {KEY_RULE}{detail}"
    return None


def describe(value: object) -> str:
    """A JSON value as a user would name it in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 3] + "..."
        return f"string {shown!r}" if shown else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a $ref object" if REF in value else "an object"
    return type(value).__name__


def _issue(path: str, message: str) -> list[FieldIssue]:
    return [FieldIssue(path, message)]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole_number(value: object) -> bool:
    """300 or 300.0: JSON has one kind of number, and JSON Schema's `integer` takes both."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


@field_rule(
    {
        "description": f"1 to {NAME_MAX_CHARS} characters, or a reference",
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": NAME_MAX_CHARS},
            REF_SCHEMA,
        ],
    }
)
def _name(path: str, value: Any) -> list[FieldIssue]:
    if ref_target(value) is not None:
        return []
    if isinstance(value, str) and 1 <= len(value) <= NAME_MAX_CHARS:
        return []
    length = f" ({len(value)} characters)" if isinstance(value, str) and value else ""
    return _issue(
        path, f"must be a string of 1 to {NAME_MAX_CHARS} characters, got {describe(value)}{length}"
    )


def is_host_name(value: object) -> bool:
    if not isinstance(value, str) or not 1 <= len(value) <= 253:
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in value.split("."))


@field_rule(
    {
        "type": "string",
        "description": "a host name like acme.example",
        "minLength": 1,
        "maxLength": 253,
        "pattern": rf"^{_HOST_LABEL_PATTERN}(?:[.]{_HOST_LABEL_PATTERN})*$",
    }
)
def _host(path: str, value: Any) -> list[FieldIssue]:
    if is_host_name(value):
        return []
    return _issue(path, f"must be a host name like acme.example, got {describe(value)}")


@field_rule(
    {
        "type": "string",
        "description": "3 upper-case letters like USD",
        "pattern": "^[A-Z]{3}$",
    }
)
def _currency(path: str, value: Any) -> list[FieldIssue]:
    if isinstance(value, str) and _UPPER_CURRENCY.fullmatch(value):
        return []
    return _issue(path, f"must be 3 upper-case letters like USD, got {describe(value)}")


@field_rule({"type": "string", "description": "3 letters like USD", "pattern": "^[A-Za-z]{3}$"})
def _budget_currency(path: str, value: Any) -> list[FieldIssue]:
    if isinstance(value, str) and _ANY_CURRENCY.fullmatch(value):
        return []
    return _issue(path, f"must be 3 letters like USD, got {describe(value)}")


@field_rule({"type": "number", "description": "a number greater than 0", "exclusiveMinimum": 0})
def _positive_number(path: str, value: Any) -> list[FieldIssue]:
    if _is_number(value) and math.isfinite(value) and value > 0:
        return []
    return _issue(path, f"must be a number greater than 0, got {describe(value)}")


@field_rule({"type": "integer", "description": "a whole number greater than 0", "minimum": 1})
def _positive_integer(path: str, value: Any) -> list[FieldIssue]:
    if _is_whole_number(value) and value > 0:
        return []
    return _issue(path, f"must be a whole number greater than 0, got {describe(value)}")


def parse_iso_date(value: object) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@field_rule(
    {
        "type": "string",
        "format": "date",
        "description": "an ISO date, YYYY-MM-DD",
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    }
)
def _date(path: str, value: Any) -> list[FieldIssue]:
    if parse_iso_date(value) is not None:
        return []
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return _issue(path, f"{describe(value)} is not a real calendar date")
    return _issue(path, f"must be an ISO date (YYYY-MM-DD), got {describe(value)}")


@field_rule({"type": "string", "enum": list(CREATIVE_FORMATS)})
def _format(path: str, value: Any) -> list[FieldIssue]:
    if isinstance(value, str) and value in CREATIVE_FORMATS:
        return []
    return _issue(path, f"must be one of {', '.join(CREATIVE_FORMATS)}, got {describe(value)}")


def url_problem(value: object) -> str | None:
    """Why `value` is not an absolute http(s) URL with a host, or None."""
    if not isinstance(value, str):
        return f"must be an http(s) URL, got {describe(value)}"
    if not value or any(c.isspace() or ord(c) < 0x20 for c in value):
        return f"must be an http(s) URL without spaces, got {describe(value)}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        return f"{describe(value)} is not a valid URL ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http or https URL, got {describe(value)}"
    if not parts.hostname:
        return f"must be an http(s) URL with a host, got {describe(value)}"
    return None


@field_rule(
    {
        "type": "string",
        "format": "uri",
        "description": "an absolute http or https URL with a host, without spaces",
        "pattern": rf"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@:\[\]]+(?::{_PORT_PATTERN})?(?:[/?#]\S*)?$",
    }
)
def _url(path: str, value: Any) -> list[FieldIssue]:
    problem = url_problem(value)
    return _issue(path, problem) if problem else []


@field_rule(
    {
        "description": "the referenced entity: a reference by key, or a DSP id",
        "anyOf": [REF_SCHEMA, {"type": "string", "minLength": 1}],
    }
)
def _reference(path: str, value: Any) -> list[FieldIssue]:
    if isinstance(value, dict) and REF in value:
        return []  # its shape is checked by `ref_shape_issues`, wherever it is
    if isinstance(value, str) and value:
        return []
    return _issue(
        path, f'must be a {{"$ref": "<key>"}} object or a DSP id string, got {describe(value)}'
    )


@field_rule(
    {
        "type": "array",
        "description": "a list (may be empty) of references by key or DSP ids",
        "items": {"anyOf": [REF_SCHEMA, {"type": "string", "minLength": 1}]},
    }
)
def _reference_list(path: str, value: Any) -> list[FieldIssue]:
    if not isinstance(value, list):
        return _issue(path, f"must be a list (may be empty), got {describe(value)}")
    issues: list[FieldIssue] = []
    for index, item in enumerate(value):
        issues += _reference(join_path(path, index), item)
    return issues


@field_rule(
    {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        },
        "required": ["amount", "currency"],
        "additionalProperties": False,
    }
)
def _budget(path: str, value: Any) -> list[FieldIssue]:
    if not isinstance(value, dict) or REF in value:
        return _issue(
            path, f'must be an object {{"amount": ..., "currency": ...}}, got {describe(value)}'
        )
    issues: list[FieldIssue] = []
    for name, check in (("amount", _positive_number), ("currency", _budget_currency)):
        if name not in value:
            issues += _issue(join_path(path, name), "is required")
        else:
            issues += check(join_path(path, name), value[name])
    for extra in value.keys() - {"amount", "currency"}:
        issues += _issue(join_path(path, extra), "unknown field (budget takes amount, currency)")
    return issues


def _campaign_dates_check(payload: dict[str, Any]) -> list[FieldIssue]:
    start = parse_iso_date(payload.get("start_date"))
    end = parse_iso_date(payload.get("end_date"))
    if start and end and end < start:
        return _issue("end_date", f"must not be before start_date ({end} < {start})")
    return []


def _display_size_check(payload: dict[str, Any]) -> list[FieldIssue]:
    if payload.get("format") != "display":
        return []
    return [
        FieldIssue(name, "is required when format is display")
        for name in ("width", "height")
        if name not in payload
    ]


_campaign_dates = CrossRule(
    _campaign_dates_check,
    "end_date must not be before start_date (the service checks it; JSON Schema cannot say it)",
)
_display_size = CrossRule(
    _display_size_check,
    "width and height are required when format is display",
    {
        "if": {"properties": {"format": {"const": "display"}}, "required": ["format"]},
        "then": {"required": ["width", "height"]},
    },
)


@dataclass(frozen=True)
class TypeRules:
    required: dict[str, FieldRule]
    optional: dict[str, FieldRule] = field(default_factory=dict)
    cross_checks: tuple[CrossRule, ...] = ()

    @property
    def fields(self) -> list[str]:
        return sorted([*self.required, *self.optional])


RULES: dict[EntityType, TypeRules] = {
    EntityType.ADVERTISERS: TypeRules(
        required={"name": _name, "domain": _host, "currency": _currency},
    ),
    EntityType.CAMPAIGNS: TypeRules(
        required={
            "advertiser_id": _reference,
            "name": _name,
            "budget": _budget,
            "start_date": _date,
            "end_date": _date,
        },
        cross_checks=(_campaign_dates,),
    ),
    EntityType.CREATIVES: TypeRules(
        required={
            "advertiser_id": _reference,
            "name": _name,
            "format": _format,
            "click_url": _url,
            "asset_url": _url,
        },
        optional={"width": _positive_integer, "height": _positive_integer},
        cross_checks=(_display_size,),
    ),
    EntityType.AD_GROUPS: TypeRules(
        required={
            "campaign_id": _reference,
            "name": _name,
            "bid_cpm": _positive_number,
            "creative_ids": _reference_list,
        },
    ),
}


def field_issues(entity_type: EntityType, payload: dict[str, Any]) -> list[FieldIssue]:
    """Every DSP field rule the payload breaks (not counting `$ref` shapes)."""
    rules = RULES[entity_type]
    issues: list[FieldIssue] = []
    for name, check in rules.required.items():
        if name not in payload:
            issues += _issue(name, "is required")
        else:
            issues += check(name, payload[name])
    for name, check in rules.optional.items():
        if name in payload:
            issues += check(name, payload[name])
    for name in payload:
        if name not in rules.required and name not in rules.optional:
            issues += _issue(name, f"unknown field ({entity_type} take: {', '.join(rules.fields)})")
    for cross_check in rules.cross_checks:
        issues += cross_check.check(payload)
    return issues


def normalised_payload(entity_type: EntityType, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with each whole number of an integer field written as one (300.0 -> 300),
    as the DSP expects it; the payload itself when there is none (the usual case)."""
    rules = RULES[entity_type]
    whole = {
        name: int(value)
        for name, rule in {**rules.required, **rules.optional}.items()
        if rule is _positive_integer
        and isinstance(value := payload.get(name), float)
        and value.is_integer()
    }
    return {**payload, **whole} if whole else payload


def ref_shape_issues(payload: Any) -> list[FieldIssue]:
    """Every object holding `$ref`, at any depth, must be exactly `{"$ref": "<valid key>"}`."""
    issues: list[FieldIssue] = []
    for path, value in walk(payload):
        if not isinstance(value, dict) or REF not in value:
            continue
        target = value[REF]
        if len(value) != 1:
            others = ", ".join(sorted(k for k in value if k != REF))
            issues += _issue(path, f"a $ref object must have no other keys (found: {others})")
        elif not isinstance(target, str):
            issues += _issue(path, f"$ref must be a key string, got {describe(target)}")
        elif problem := key_problem(target):
            issues += _issue(path, f"$ref {problem}")
    return issues


def payload_issues(entity_type: EntityType, payload: Any) -> list[FieldIssue]:
    if not isinstance(payload, dict):
        return _issue("payload", f"must be an object, got {describe(payload)}")
    return field_issues(entity_type, payload) + ref_shape_issues(payload)


def expected_parent_type(entity_type: EntityType, path: str) -> EntityType | None:
    """The entity type a reference at `path` must point to (`creative_ids[3]` → creatives)."""
    return spec_of(entity_type).references.get(_LIST_ITEM.sub("[]", path))
