"""Bad input through the real CLI (`python starter.py ...` as a subprocess) on the real stack:
every broken file is refused whole with exit 2 and a message naming the entity and the field,
nothing is stored, started or sent; bad arguments, unknown keys and unreachable servers get
one clear line on stderr, never a traceback."""

from __future__ import annotations

import asyncio
import codecs
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from temporalio.client import Client

from devkit.mock_dsp.server import MockDspServer
from devkit.stack.ports import free_port
from dsp_integration.database.models import QueuedEntity
from dsp_integration.entities import MAX_FILE_BYTES
from tests.integration.cli_support import CliResult, cli_env, run_cli
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.harness import Stack

EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 2, 3
CONCURRENT_RUNS = 3

Entities = list[dict[str, Any]]


def good_entities() -> Entities:
    return [
        advertiser("cli-adv"),
        campaign("cli-cmp", "cli-adv"),
        creative("cli-cr", "cli-adv"),
        ad_group("cli-ag", "cli-cmp", ["cli-cr"]),
    ]


def document(entities: Entities, batch: str = "cli-bad") -> bytes:
    return json.dumps({"batch": batch, "entities": entities}, indent=1).encode()


def edited(change: Callable[[Entities], object]) -> bytes:
    entities = copy.deepcopy(good_entities())
    change(entities)
    return document(entities)


def payload(entities: Entities, key: str) -> dict[str, Any]:
    return next(e for e in entities if e["key"] == key)["payload"]


def _cycle(entities: Entities) -> None:
    entities.append({**ad_group("cli-ag2", "cli-cmp", []), "depends_on": ["cli-ag3"]})
    entities.append({**ad_group("cli-ag3", "cli-cmp", []), "depends_on": ["cli-ag2"]})


def _huge() -> bytes:
    line = json.dumps(advertiser("cli-huge")).encode() + b"\n"
    return line * (MAX_FILE_BYTES // len(line) + 2)


@dataclass(frozen=True)
class BadFile:
    id: str
    data: bytes | Callable[[], bytes]
    must_say: tuple[str, ...]
    """Every one of these must be on stderr: for an entity, its key and `field <name>`."""
    filename: str = "entities.json"


def entity(key: str, field: str, *words: str) -> tuple[str, ...]:
    return (f"'{key}'", f"field {field}", *words)


PRE_KEY = "cli-pre"

BAD_FILES = [
    BadFile(
        "json-syntax",
        b'{"batch": "cli-bad",\n "entities": [\n  {"key": "cli-adv",, "type": "advertisers"}\n]}',
        ("not valid JSON", "line 3"),
    ),
    BadFile(
        "jsonl-bad-line",
        json.dumps(advertiser("cli-adv")).encode() + b'\n{"key": "cli-x" "type": 1}\n',
        ("not valid JSON", "entity #2", "line 2"),
        filename="entities.jsonl",
    ),
    BadFile(
        "amount-is-a-string",
        edited(lambda e: payload(e, "cli-cmp")["budget"].update(amount="5000")),
        entity("cli-cmp", "budget.amount"),
    ),
    BadFile(
        "missing-name",
        edited(lambda e: payload(e, "cli-cmp").pop("name")),
        entity("cli-cmp", "name", "required"),
    ),
    BadFile(
        "extra-payload-field",
        edited(lambda e: payload(e, "cli-adv").update(colour="red")),
        entity("cli-adv", "colour", "unknown field"),
    ),
    BadFile(
        "extra-entity-field",
        edited(lambda e: e[3].update(dependson=["cli-cr"])),
        entity("cli-ag", "dependson"),
    ),
    BadFile(
        "impossible-date",
        edited(lambda e: payload(e, "cli-cmp").update(start_date="2027-02-30")),
        entity("cli-cmp", "start_date"),
    ),
    BadFile(
        "url-not-http",
        edited(lambda e: payload(e, "cli-cr").update(click_url="ftp://cli-adv.example/x")),
        entity("cli-cr", "click_url"),
    ),
    BadFile(
        "lower-case-currency",
        edited(lambda e: payload(e, "cli-adv").update(currency="usd")),
        entity("cli-adv", "currency"),
    ),
    BadFile(
        "unknown-type",
        edited(lambda e: e[0].update(type="banners")),
        entity("cli-adv", "type", "banners"),
    ),
    BadFile(
        "bad-key-characters",
        edited(lambda e: e.append({**advertiser("cli-x"), "key": "cli adv!"})),
        ("'cli adv!'", "field key"),
    ),
    BadFile(
        "duplicate-key",
        edited(lambda e: e.append(advertiser("cli-adv"))),
        entity("cli-adv", "key", "duplicate key"),
    ),
    BadFile(
        "unknown-reference",
        edited(lambda e: payload(e, "cli-cmp").update(advertiser_id={"$ref": "cli-nobody"})),
        entity("cli-cmp", "advertiser_id", "cli-nobody"),
    ),
    BadFile(
        "unknown-depends-on",
        edited(lambda e: e[3].update(depends_on=["cli-ghost"])),
        entity("cli-ag", "depends_on", "cli-ghost"),
    ),
    BadFile("cycle", edited(_cycle), ("'cli-ag2'", "field depends_on", "cycle")),
    BadFile(
        "key-reused-with-another-payload",
        edited(lambda e: e.append(advertiser(PRE_KEY) | {"payload": {"name": "Other"}})),
        (f"'{PRE_KEY}'", "field payload"),
    ),
    BadFile("empty-file", b"", ("the file is empty",)),
    BadFile("huge-file", _huge, ("over the limit",), filename="huge.jsonl"),
    BadFile(
        "utf-16",
        codecs.BOM_UTF16_LE + document(good_entities()).decode().encode("utf-16-le"),
        ("UTF-16", "UTF-8"),
    ),
    BadFile(
        "latin-1",
        edited(lambda e: payload(e, "cli-adv").update(name="Caf\u00e9")).replace(
            b"\\u00e9", "\u00e9".encode("latin-1")
        ),
        ("UTF-8",),
    ),
]


async def _queue_count(stack: Stack) -> int:
    async with stack.service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(QueuedEntity)) or 0


async def _workflow_count(client: Client, task_queue: str) -> int:
    return (await client.count_workflows(f'TaskQueue="{task_queue}"')).count


def _one_clear_line(result: CliResult) -> str | None:
    lines = result.stderr.strip().splitlines()
    if "Traceback" in result.stderr:
        return "a traceback on stderr"
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr, wanted one"
    return None


async def test_every_broken_file_is_refused_whole(
    stack: Stack, mock_dsp: MockDspServer, temporal_client: Client, tmp_path: Path
) -> None:
    assert len(BAD_FILES) >= 15
    env = cli_env(stack.settings)
    pre = tmp_path / "pre.json"
    pre.write_bytes(document([advertiser(PRE_KEY)], batch="cli-pre"))
    first = await run_cli(["submit", pre, "--wait"], env)
    assert first.code == EXIT_OK, first
    assert "Traceback" not in first.stderr
    stored = await _queue_count(stack)
    workflows = await _workflow_count(temporal_client, stack.settings.temporal_task_queue)
    sent = len(mock_dsp.dsp.request_log)
    assert (stored, workflows) == (1, 1) and sent > 0

    gate = asyncio.Semaphore(CONCURRENT_RUNS)

    async def attempt(case: BadFile) -> str | None:
        path = tmp_path / case.id / case.filename
        path.parent.mkdir()
        path.write_bytes(case.data() if callable(case.data) else case.data)
        async with gate:
            result = await run_cli(["submit", path], env)
        wrong = []
        if result.code != EXIT_REFUSED:
            wrong.append(f"exit {result.code}, wanted {EXIT_REFUSED}")
        if "Traceback" in result.stderr:
            wrong.append("a traceback")
        if not result.stderr.startswith("refused:"):
            wrong.append("stderr does not start with 'refused:'")
        wrong += [f"no {text!r}" for text in case.must_say if text not in result.stderr]
        return f"{case.id}: {'; '.join(wrong)}\n{result}" if wrong else None

    failures = [f for f in await asyncio.gather(*map(attempt, BAD_FILES)) if f]
    assert not failures, "\n\n".join(failures)
    assert await _queue_count(stack) == stored
    assert await _workflow_count(temporal_client, stack.settings.temporal_task_queue) == workflows
    assert len(mock_dsp.dsp.request_log) == sent


async def test_bad_arguments_and_unknown_keys_get_one_clear_line(
    stack: Stack, tmp_path: Path
) -> None:
    env = cli_env(stack.settings)
    not_json = tmp_path / "payload.txt"
    not_json.write_text("{name: Acme")
    good = tmp_path / "good.json"
    good.write_bytes(document([advertiser("cli-arg")], batch="cli-args"))
    # argparse's own errors: its usage line, then one `starter.py: error: ...` line.
    usage_errors = [
        [],
        ["frobnicate"],
        ["submit"],
        ["status", "--bogus"],
        ["resubmit"],
    ]
    ours = [
        (["submit", tmp_path / "missing.json"], "no such file"),
        (["status", "cli-nobody"], "unknown entity key 'cli-nobody'"),
        (["cancel", "cli-nobody"], "unknown entity key 'cli-nobody'"),
        (["resubmit", "cli-nobody"], "unknown entity key 'cli-nobody'"),
        (["audit", "cli-nobody"], "unknown entity key 'cli-nobody'"),
        (["resubmit", "cli-nobody", "--payload", tmp_path / "none.json"], "no such file"),
        (["resubmit", "cli-nobody", "--payload", not_json], "not JSON"),
    ]
    gate = asyncio.Semaphore(CONCURRENT_RUNS)

    async def run(args: list[Any]) -> CliResult:
        async with gate:
            return await run_cli(args, env)

    usage_results = await asyncio.gather(*(run(args) for args in usage_errors))
    our_results = await asyncio.gather(*(run(args) for args, _ in ours))
    failures = []
    for result in usage_results:
        last = result.stderr.strip().splitlines()[-1:] or [""]
        if result.code != EXIT_REFUSED or "Traceback" in result.stderr:
            failures.append(str(result))
        elif not re.match(r"starter\.py( \w+)?: error: ", last[0]):
            failures.append(f"no 'starter.py: error:' line\n{result}")
    for result, (_, text) in zip(our_results, ours, strict=True):
        problem = _one_clear_line(result)
        if result.code != EXIT_REFUSED:
            problem = f"exit {result.code}"
        elif problem is None and (text not in result.stderr or "error:" not in result.stderr):
            problem = f"no {text!r}"
        if problem:
            failures.append(f"{problem}\n{result}")
    assert not failures, "\n\n".join(failures)


async def test_unreachable_database_or_temporal_is_one_line_and_exit_3(
    stack: Stack, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(document([advertiser("cli-down")], batch="cli-down"))
    closed = free_port()
    no_database = cli_env(
        stack.settings, DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/x"
    )
    no_temporal = cli_env(stack.settings, TEMPORAL_ADDRESS=f"127.0.0.1:{closed}")
    no_namespace = cli_env(stack.settings, TEMPORAL_NAMESPACE="no-such-namespace")
    runs = [
        (["submit", good], no_database, "PostgreSQL"),
        (["status", "cli-down"], no_database, "PostgreSQL"),
        (["cancel", "cli-down"], no_database, "PostgreSQL"),
        (["submit", good], no_temporal, "Temporal"),
        (["submit", good], no_namespace, "Temporal"),
    ]
    results = await asyncio.gather(*(run_cli(args, env) for args, env, _ in runs))
    failures = []
    for result, (_, _, server) in zip(results, runs, strict=True):
        problem = _one_clear_line(result)
        if result.code != EXIT_UNAVAILABLE:
            problem = f"exit {result.code}, wanted {EXIT_UNAVAILABLE}"
        elif problem is None and f"cannot reach {server}" not in result.stderr:
            if f"cannot use {server}" not in result.stderr:
                problem = f"does not say which server ({server})"
        if problem:
            failures.append(f"{problem}\n{result}")
    assert not failures, "\n\n".join(failures)
    # Temporal was down: nothing may be left stored but never started.
    assert await _queue_count(stack) == 0
