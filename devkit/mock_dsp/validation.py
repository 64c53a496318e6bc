"""Field rules of every entity type (dsp-api.md, "Entity types and their fields").

The first broken rule is reported as `422 validation_error` with the field's path, written
like `budget.amount` or `creative_ids[2]`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from devkit.mock_dsp.replies import validation_error

NAME_MAX_CHARS = 255
CREATIVE_FORMATS = ("display", "video", "native")
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
EXTERNAL_ID = "external_id"

_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_UPPER_CURRENCY = re.compile(r"[A-Z]{3}")
_ANY_CURRENCY = re.compile(r"[A-Za-z]{3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,255}")

Check = Callable[[str, Any], None]


class Reference(NamedTuple):
    field: str
    entity_type: str
    entity_id: str


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise validation_error(None, f"the body is not valid JSON: {error}") from error


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not _PRINTABLE_ASCII.fullmatch(key):
        raise validation_error(
            IDEMPOTENCY_KEY_HEADER, "must be 1 to 255 printable ASCII characters"
        )


def check_external_id(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _PRINTABLE_ASCII.fullmatch(value):
        raise validation_error(
            path, f"must be 1 to 255 printable ASCII characters, got {_show(value)}"
        )


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name(path: str, value: Any) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= NAME_MAX_CHARS:
        raise validation_error(
            path, f"must be a string of 1 to {NAME_MAX_CHARS} characters, got {_show(value)}"
        )


def _host(path: str, value: Any) -> None:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 253
        or not all(_HOST_LABEL.fullmatch(label) for label in value.split("."))
    ):
        raise validation_error(path, f"must be a host name like acme.example, got {_show(value)}")


def _currency(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _UPPER_CURRENCY.fullmatch(value):
        raise validation_error(path, f"must be 3 upper-case letters, got {_show(value)}")


def _budget_currency(path: str, value: Any) -> None:
    if not isinstance(value, str) or not _ANY_CURRENCY.fullmatch(value):
        raise validation_error(path, f"must be 3 letters, got {_show(value)}")


def _positive_number(path: str, value: Any) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise validation_error(path, f"must be a number greater than 0, got {_show(value)}")


def _positive_integer(path: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise validation_error(path, f"must be a positive integer, got {_show(value)}")


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _date(path: str, value: Any) -> None:
    if parse_date(value) is None:
        raise validation_error(path, f"must be an ISO date (YYYY-MM-DD), got {_show(value)}")


def _format(path: str, value: Any) -> None:
    if value not in CREATIVE_FORMATS:
        raise validation_error(
            path, f"must be one of {', '.join(CREATIVE_FORMATS)}, got {_show(value)}"
        )


def _url(path: str, value: Any) -> None:
    problem = "must be an http or https URL"
    if isinstance(value, str) and not any(c.isspace() or ord(c) < 0x20 for c in value):
        try:
            parts = urlsplit(value)
            if parts.scheme.lower() in ("http", "https") and parts.hostname:
                parts.port  # noqa: B018 - raises ValueError for a bad port
                return
        except ValueError:
            pass
    raise validation_error(path, f"{problem}, got {_show(value)}")


def _id(path: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise validation_error(path, f"must be an id string, got {_show(value)}")


def _id_list(path: str, value: Any) -> None:
    if not isinstance(value, list):
        raise validation_error(path, f"must be a list of ids (may be empty), got {_show(value)}")
    for index, item in enumerate(value):
        _id(f"{path}[{index}]", item)


def _budget(path: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise validation_error(
            path, f'must be {{"amount": ..., "currency": ...}}, got {_show(value)}'
        )
    _check_object(path, value, {"amount": _positive_number, "currency": _budget_currency}, {})


def _campaign_dates(payload: dict[str, Any]) -> None:
    start, end = parse_date(payload["start_date"]), parse_date(payload["end_date"])
    if start and end and end < start:
        raise validation_error("end_date", f"must not be before start_date ({end} < {start})")


def _display_size(payload: dict[str, Any]) -> None:
    if payload["format"] == "display":
        for name in ("width", "height"):
            if name not in payload:
                raise validation_error(name, "is required when format is display")


@dataclass(frozen=True)
class TypeRules:
    required: dict[str, Check]
    optional: dict[str, Check]
    cross_check: Callable[[dict[str, Any]], None] | None
    # reference field -> the entity type it points to
    parents: dict[str, str]


RULES: dict[str, TypeRules] = {
    "advertisers": TypeRules(
        required={"name": _name, "domain": _host, "currency": _currency},
        optional={},
        cross_check=None,
        parents={},
    ),
    "campaigns": TypeRules(
        required={
            "advertiser_id": _id,
            "name": _name,
            "budget": _budget,
            "start_date": _date,
            "end_date": _date,
        },
        optional={},
        cross_check=_campaign_dates,
        parents={"advertiser_id": "advertisers"},
    ),
    "creatives": TypeRules(
        required={
            "advertiser_id": _id,
            "name": _name,
            "format": _format,
            "click_url": _url,
            "asset_url": _url,
        },
        optional={"width": _positive_integer, "height": _positive_integer},
        cross_check=_display_size,
        parents={"advertiser_id": "advertisers"},
    ),
    "ad_groups": TypeRules(
        required={
            "campaign_id": _id,
            "name": _name,
            "bid_cpm": _positive_number,
            "creative_ids": _id_list,
        },
        optional={},
        cross_check=None,
        parents={"campaign_id": "campaigns", "creative_ids": "creatives"},
    ),
}

ENTITY_TYPES = tuple(RULES)


def _check_object(
    prefix: str, value: dict[str, Any], required: dict[str, Check], optional: dict[str, Check]
) -> None:
    def path(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    for name in value:
        if name not in required and name not in optional:
            known = ", ".join(sorted([*required, *optional]))
            raise validation_error(path(name), f"unknown field (allowed: {known})")
    for name, check in required.items():
        if name not in value:
            raise validation_error(path(name), "is required")
        check(path(name), value[name])
    for name, check in optional.items():
        if name in value:
            check(path(name), value[name])


def validate_payload(entity_type: str, body: Any, *, external_id: bool = False) -> dict[str, Any]:
    """The entity's fields, or `ApiError` for the first rule `body` breaks. `external_id`:
    the version-2 contract, where every type takes the client's reference."""
    if not isinstance(body, dict):
        raise validation_error(None, "the body must be a JSON object")
    rules = RULES[entity_type]
    optional = {**rules.optional, EXTERNAL_ID: check_external_id} if external_id else rules.optional
    _check_object("", body, rules.required, optional)
    if rules.cross_check is not None:
        rules.cross_check(body)
    return body


def references(entity_type: str, fields: dict[str, Any]) -> list[Reference]:
    """Every parent id in validated `fields`, with the path and type each must have."""
    found: list[Reference] = []
    for name, parent_type in RULES[entity_type].parents.items():
        value = fields[name]
        if isinstance(value, list):
            found += [Reference(f"{name}[{i}]", parent_type, v) for i, v in enumerate(value)]
        else:
            found.append(Reference(name, parent_type, value))
    return found
