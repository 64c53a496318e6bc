"""Table of broken entity files: each is refused, and its problem names the entity and field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from dsp_integration.contracts import EntityType
from dsp_integration.entities import (
    MAX_FILE_BYTES,
    ExistingEntity,
    Problem,
    SubmissionRefused,
    check_submission,
    keys_to_look_up,
    parse_submission,
)
from tests.unit.entities.test_entities_parser import as_json, as_jsonl, example_entities

Entities = list[dict[str, Any]]


@dataclass(frozen=True)
class Expect:
    """A problem that must be among those listed: `text` in its message, and the entity
    (key and position) and field it must name (None: a problem of the whole file)."""

    text: str
    key: str | None = None
    position: int | None = None
    field: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    expect: list[Expect]
    filename: str = "entities.json"
    batch: str | None = None
    existing: dict[str, ExistingEntity] = field(default_factory=dict)


def edited(change: Callable[[Entities], object], *, jsonl: bool = False) -> bytes:
    entities = example_entities()
    change(entities)
    return as_jsonl(entities) if jsonl else as_json(entities)


def payload(entities: Entities, position: int) -> dict[str, Any]:
    return entities[position - 1]["payload"]


def _huge_file() -> bytes:
    line = json.dumps(example_entities()[0]).encode() + b"\n"
    return line * (MAX_FILE_BYTES // len(line) + 1)


CASES = [
    Case(
        "json-syntax-error",
        b'{"batch": "b",\n "entities": [\n  {"key": "a",, "type": "advertisers"}\n]}',
        [Expect("not valid JSON at line 3, column 15")],
    ),
    Case(
        "json-lines-bad-line",
        as_jsonl(example_entities()[:2]) + b'{"key": "x" "type": 1}\n' + as_jsonl([]),
        [Expect("not valid JSON", position=3, line=3)],
        filename="entities.jsonl",
    ),
    Case(
        "top-level-array",
        json.dumps(example_entities()).encode(),
        [Expect("the top level must be an object")],
    ),
    Case("top-level-string", b'"acme"', [Expect("got string 'acme'")]),
    Case(
        "entities-not-a-list",
        b'{"batch": "b", "entities": {"key": "acme"}}',
        [Expect("must be a list of entity objects", field="entities")],
    ),
    Case(
        "entity-not-an-object",
        edited(lambda e: e.insert(1, ["acme"])),
        [Expect("must be an entity object", position=2)],
    ),
    Case(
        "unknown-top-level-field",
        json.dumps({"batch": "b", "entities": example_entities(), "owner": "me"}).encode(),
        [Expect("unknown top-level field", field="owner")],
    ),
    Case(
        "missing-payload-field",
        edited(lambda e: payload(e, 2).pop("budget")),
        [Expect("is required", "acme-spring", 2, "budget")],
    ),
    Case(
        "missing-entity-type",
        edited(lambda e: e[0].pop("type")),
        [Expect("is required", "acme", 1, "type")],
    ),
    Case(
        "extra-payload-field",
        edited(lambda e: payload(e, 1).update(colour="red")),
        [Expect("unknown field", "acme", 1, "colour")],
    ),
    Case(
        "extra-entity-field",
        edited(lambda e: e[3].update(dependson=["acme"])),
        [Expect("unknown entity field", "acme-spring-ag1", 4, "dependson")],
    ),
    Case(
        "extra-budget-field",
        edited(lambda e: payload(e, 2)["budget"].update(daily=True)),
        [Expect("unknown field", "acme-spring", 2, "budget.daily")],
    ),
    Case(
        "impossible-date",
        edited(lambda e: payload(e, 2).update(start_date="2027-02-30")),
        [Expect("not a real calendar date", "acme-spring", 2, "start_date")],
    ),
    Case(
        "date-not-iso",
        edited(lambda e: payload(e, 2).update(end_date="31/05/2027")),
        [Expect("must be an ISO date (YYYY-MM-DD)", "acme-spring", 2, "end_date")],
    ),
    Case(
        "end-before-start",
        edited(lambda e: payload(e, 2).update(end_date="2027-02-28")),
        [Expect("must not be before start_date", "acme-spring", 2, "end_date")],
    ),
    Case(
        "url-not-http",
        edited(lambda e: payload(e, 3).update(click_url="javascript:alert(1)")),
        [Expect("http or https URL", "acme-banner", 3, "click_url")],
    ),
    Case(
        "url-without-host",
        edited(lambda e: payload(e, 3).update(asset_url="https:///banner.png")),
        [Expect("with a host", "acme-banner", 3, "asset_url")],
    ),
    Case(
        "url-with-spaces",
        edited(lambda e: payload(e, 3).update(asset_url="https://cdn.acme.example/a b.png")),
        [Expect("without spaces", "acme-banner", 3, "asset_url")],
    ),
    Case(
        "lower-case-currency",
        edited(lambda e: payload(e, 1).update(currency="usd")),
        [Expect("3 upper-case letters", "acme", 1, "currency")],
    ),
    Case(
        "budget-currency-too-short",
        edited(lambda e: payload(e, 2)["budget"].update(currency="US")),
        [Expect("3 letters", "acme-spring", 2, "budget.currency")],
    ),
    Case(
        "budget-amount-zero",
        edited(lambda e: payload(e, 2)["budget"].update(amount=0)),
        [Expect("must be a number greater than 0", "acme-spring", 2, "budget.amount")],
    ),
    Case(
        "budget-amount-nan",
        as_json(example_entities()).replace(b'"amount": 5000', b'"amount": NaN'),
        [Expect("number greater than 0", "acme-spring", 2, "budget.amount")],
    ),
    Case(
        "domain-not-a-host-name",
        edited(lambda e: payload(e, 1).update(domain="https://acme.example/")),
        [Expect("must be a host name", "acme", 1, "domain")],
    ),
    Case(
        "name-too-long",
        edited(lambda e: payload(e, 1).update(name="A" * 256)),
        [Expect("1 to 255 characters", "acme", 1, "name")],
    ),
    Case(
        "display-without-width",
        edited(lambda e: payload(e, 3).pop("width")),
        [Expect("required when format is display", "acme-banner", 3, "width")],
    ),
    Case(
        "boolean-as-integer",
        edited(lambda e: payload(e, 3).update(height=True)),
        [Expect("whole number greater than 0, got true", "acme-banner", 3, "height")],
    ),
    Case(
        "float-as-integer",
        edited(lambda e: payload(e, 3).update(width=300.5)),
        [Expect("whole number", "acme-banner", 3, "width")],
    ),
    Case(
        "unknown-format",
        edited(lambda e: payload(e, 3).update(format="banner")),
        [Expect("display, video, native", "acme-banner", 3, "format")],
    ),
    Case(
        "bid-as-string",
        edited(lambda e: payload(e, 4).update(bid_cpm="2.5")),
        [Expect("number greater than 0, got string '2.5'", "acme-spring-ag1", 4, "bid_cpm")],
    ),
    Case(
        "creative-ids-not-a-list",
        edited(lambda e: payload(e, 4).update(creative_ids={"$ref": "acme-banner"})),
        [Expect("must be a list", "acme-spring-ag1", 4, "creative_ids")],
    ),
    Case(
        "reference-neither-ref-nor-id",
        edited(lambda e: payload(e, 2).update(advertiser_id=42)),
        [Expect('{"$ref": "<key>"} object or a DSP id', "acme-spring", 2, "advertiser_id")],
    ),
    Case(
        "ref-with-extra-keys",
        edited(lambda e: payload(e, 4)["creative_ids"].append({"$ref": "acme", "w": 1})),
        [Expect("no other keys", "acme-spring-ag1", 4, "creative_ids[1]")],
    ),
    Case(
        "ref-not-a-string",
        edited(lambda e: payload(e, 2).update(advertiser_id={"$ref": 7})),
        [Expect("$ref must be a key string", "acme-spring", 2, "advertiser_id")],
    ),
    Case(
        "reference-to-wrong-type",
        edited(lambda e: payload(e, 4).update(campaign_id={"$ref": "acme-banner"})),
        [Expect("must refer to one of campaigns", "acme-spring-ag1", 4, "campaign_id")],
    ),
    Case(
        "duplicate-keys",
        edited(lambda e: e.append(copy.deepcopy(e[0]))),
        [Expect("duplicate key: entities #1, #5", "acme", 5, "key")],
    ),
    Case(
        "unknown-reference",
        edited(lambda e: payload(e, 2).update(advertiser_id={"$ref": "acme-old"})),
        [Expect("unknown key 'acme-old'", "acme-spring", 2, "advertiser_id")],
    ),
    Case(
        "unknown-depends-on",
        edited(lambda e: e[3].update(depends_on=["acme", "launch-approval"])),
        [Expect("unknown key 'launch-approval'", "acme-spring-ag1", 4, "depends_on[1]")],
    ),
    Case(
        "self-reference",
        edited(lambda e: payload(e, 3).update(advertiser_id={"$ref": "acme-banner"})),
        [Expect("cannot depend on itself", "acme-banner", 3, "advertiser_id")],
    ),
    Case(
        "cycle",
        edited(lambda e: e[0].update(depends_on=["acme-spring-ag1"]), jsonl=True),
        [
            Expect(
                "dependency cycle: 'acme' -> 'acme-spring-ag1' -> 'acme-spring' -> 'acme'",
                "acme",
                1,
                "depends_on[0]",
                line=1,
            )
        ],
        filename="cycle.jsonl",
    ),
    Case(
        "key-reused-with-other-payload",
        as_json(example_entities()),
        [
            Expect(
                "already submitted in batch 'winter' with a different payload", "acme", 1, "payload"
            )
        ],
        existing={
            "acme": ExistingEntity(
                key="acme",
                type=EntityType.ADVERTISERS,
                payload={"name": "Acme Corp", "domain": "acme.example", "currency": "USD"},
                batch="winter",
            )
        },
    ),
    Case(
        "key-reused-with-other-type",
        as_json(example_entities()),
        [Expect("already submitted in batch 'winter' as one of creatives", "acme", 1, "type")],
        existing={
            "acme": ExistingEntity(
                key="acme", type="creatives", payload={"name": "Acme"}, batch="winter"
            )
        },
    ),
    Case("empty-file", b"", [Expect("the file is empty")]),
    Case("whitespace-only-file", b" \n\t\r\n  \n", [Expect("only whitespace")]),
    Case("bom-only-file", b"\xef\xbb\xbf\n", [Expect("only whitespace")]),
    Case(
        "file-over-the-size-limit",
        _huge_file(),
        [Expect(f"over the limit of {MAX_FILE_BYTES:,} bytes")],
        filename="huge.jsonl",
    ),
    Case(
        "latin-1-file",
        as_json(example_entities()).replace(b'"Spring"', '"Printemps été"'.encode("latin-1")),
        [Expect("not UTF-8: byte 0xe9 at byte offset")],
    ),
    Case(
        "utf-16-file-with-bom",
        as_json(example_entities()).decode().encode("utf-16"),
        [Expect("the file is UTF-16 (byte order mark at byte offset 0)")],
    ),
    Case(
        "utf-16-file-without-bom",
        as_json(example_entities()).decode().encode("utf-16-le"),
        [Expect("NUL byte at byte offset 1")],
    ),
    Case(
        "invalid-key-characters",
        edited(lambda e: e[0].update(key="acme corp/2027")),
        [Expect("not a valid key", "acme corp/2027", 1, "key")],
    ),
    Case(
        "key-too-long",
        edited(lambda e: e[0].update(key="k" * 129)),
        [Expect("1 to 128 characters", "k" * 129, 1, "key")],
    ),
    Case(
        "key-not-a-string",
        edited(lambda e: e[0].update(key=17)),
        [Expect("must be a string, got number 17", None, 1, "key")],
    ),
    Case(
        "unknown-type",
        edited(lambda e: e[1].update(type="campaign")),
        [Expect("must be one of advertisers, campaigns", "acme-spring", 2, "type")],
    ),
    Case(
        "payload-not-an-object",
        edited(lambda e: e[0].update(payload="Acme")),
        [Expect("must be an object", "acme", 1, "payload")],
    ),
    Case(
        "depends-on-not-a-list",
        edited(lambda e: e[3].update(depends_on="acme")),
        [Expect("must be a list of keys", "acme-spring-ag1", 4, "depends_on")],
    ),
    Case(
        "bad-batch-in-file",
        as_json(example_entities(), batch="spring launch"),
        [Expect("1 to 128 characters", field="batch")],
    ),
    Case(
        "bad-batch-argument",
        as_jsonl(example_entities()),
        [Expect("got string 'my batch!'", field="batch")],
        filename="x.jsonl",
        batch="my batch!",
    ),
    Case(
        "batch-argument-contradicts-file",
        as_json(example_entities(), batch="spring"),
        [Expect("the file names batch 'spring' but --batch says 'autumn'", field="batch")],
        batch="autumn",
    ),
]


def _problems(case: Case) -> list[Problem]:
    with pytest.raises(SubmissionRefused) as caught:
        submission = parse_submission(case.data, filename=case.filename, batch=case.batch)
        wanted = keys_to_look_up(submission)
        check_submission(submission, {k: v for k, v in case.existing.items() if k in wanted})
    return caught.value.problems


def test_the_table_covers_enough_broken_files() -> None:
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_broken_file_is_refused_naming_entity_and_field(case: Case) -> None:
    problems = _problems(case)
    listing = "\n".join(str(p) for p in problems)
    for expect in case.expect:
        matching = [
            p
            for p in problems
            if expect.text in p.message
            and (p.key, p.position, p.field) == (expect.key, expect.position, expect.field)
            and (expect.line is None or p.line == expect.line)
        ]
        assert matching, f"no problem like {expect} among:\n{listing}"
        shown = str(matching[0])
        if expect.position is not None:
            assert shown.startswith(f"entity #{expect.position}"), shown
        if expect.key is not None:
            assert repr(expect.key[:77])[:-1] in shown, shown
        if expect.field is not None:
            assert f"field {expect.field}: " in shown, shown
        assert shown.endswith(matching[0].message)
