"""A DAG on the real stack: Temporal dev server, PostgreSQL, mock DSP over HTTP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from dsp_integration.database import audit_log
from tests.integration.dag import launch_dag
from tests.integration.harness import Stack, write_entities


async def test_dag_with_a_rejection_ends_exactly_right(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    entities, expected = launch_dag("e2e", advertisers=4)
    assert len(entities) >= 20
    path = write_entities(tmp_path / "launch.json", "e2e-launch", entities)

    counts = await stack.submit_file(path)

    views = {v.key: v for v in await queries.entity_views(stack.service, batch="e2e-launch")}
    assert {key: view.status for key, view in views.items()} == expected
    assert counts == dict(Counter(expected.values()))
    for key, view in views.items():
        if view.status == "succeeded":
            assert view.dsp_id, key
    assert views["e2e-cr0b"].reason
    assert "e2e-cr0b" in (views["e2e-ag0b"].reason or "")
    assert views["e2e-ag0b"].blocked_by == "e2e-cr0b"
    assert views["e2e-ag-follow"].blocked_by == "e2e-cr0b"
    assert views["e2e-ag0b"].dsp_id is None

    # Parents went first: every child's POST carries its parents' DSP ids. A child may be
    # faster than its parent's propagation at the DSP: `409 reference_not_ready` is the
    # contract's answer then, retried with the same key; exactly one POST creates.
    posts = [r for r in mock_dsp.dsp.request_log if r.method == "POST"]
    created = [p for p in posts if p.status == 201]
    assert len(created) == len({p.idempotency_key for p in created})
    assert len(created) == sum(1 for s in expected.values() if s != "blocked")
    assert {p.status for p in posts} <= {201, 409}
    by_id = {v.dsp_id: v.key for v in views.values() if v.dsp_id}
    for post in posts:
        for field in ("advertiser_id", "campaign_id"):
            if field in (post.body or {}):
                assert post.body[field] in by_id


async def test_audit_rows_match_the_dsp_request_log(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    entities, _ = launch_dag("aud", advertisers=1)
    await stack.submit_file(write_entities(tmp_path / "a.json", "aud", entities))

    async with stack.service.sessions() as session:
        audited = await audit_log.all_requests(session)
    seen = mock_dsp.dsp.request_log
    assert len(audited) == len(seen) > 0
    assert sorted((a.method, a.path, a.response_status) for a in audited) == sorted(
        (r.method, r.path, r.status) for r in seen
    )
    assert all(a.finished_at is not None and a.finished_at >= a.started_at for a in audited)
    for row in audited:
        assert "token" not in (row.response_body or "").lower()


async def test_submitting_the_same_file_twice_creates_nothing_new(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    entities, expected = launch_dag("twice", advertisers=1)
    path = write_entities(tmp_path / "twice.json", "twice", entities)
    await stack.submit_file(path)
    before = await queries.entity_views(stack.service, batch="twice")
    posts_before = sum(1 for r in mock_dsp.dsp.request_log if r.method == "POST")

    report = await submit(stack.service, read_submission(path), actor=cli_actor())

    assert report.stored == 0
    assert report.started == 0
    assert report.already_ended == len(expected)
    after = await queries.entity_views(stack.service, batch="twice")
    assert [(v.key, v.status, v.dsp_id) for v in after] == [
        (v.key, v.status, v.dsp_id) for v in before
    ]
    assert sum(1 for r in mock_dsp.dsp.request_log if r.method == "POST") == posts_before


async def test_the_rate_limit_holds_at_the_dsp(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    entities, _ = launch_dag("rate", advertisers=4)
    await stack.submit_file(write_entities(tmp_path / "r.json", "rate", entities))

    statuses = Counter(r.status for r in mock_dsp.dsp.request_log)
    assert statuses[429] == 0
    assert mock_dsp.dsp.max_in_window(stack.settings.dsp_rate_window) <= (
        stack.settings.dsp_rate_limit
    )
