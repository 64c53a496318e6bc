"""DSP faults on the real stack: broken answers to creates never make a second entity, and a
run under 20% injected faults ends exactly as the DSP decides, every request audited."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from devkit.mock_dsp.config import FAULT_KINDS
from devkit.mock_dsp.server import MockDspServer
from dsp_integration.client import queries
from dsp_integration.client.actors import cli_actor
from dsp_integration.client.submission import read_submission, submit
from tests.integration.conftest import mock_config
from tests.integration.dag import advertiser, campaign, launch_dag
from tests.integration.fault_support import (
    ScriptedFaults,
    assert_audit_accounts_for,
    assert_one_dsp_entity_per_key,
    audit_rows,
    created_entities_by_key,
    end_statuses,
    summarize,
)
from tests.integration.harness import Stack, write_entities

# `slow` answers come after DSP_TIMEOUT (2 s in stack_settings): the client gives up.
SLOW_SECONDS = 2.5


def _slug(kind: str) -> str:
    return kind.replace("_", "-")


@pytest.fixture
def scripted(mock_dsp: MockDspServer, monkeypatch: pytest.MonkeyPatch) -> ScriptedFaults:
    mock_dsp.dsp.config = mock_config().model_copy(update={"slow_seconds": SLOW_SECONDS})
    return ScriptedFaults(monkeypatch)


async def test_a_create_whose_answer_broke_is_retried_without_a_second_entity(
    stack: Stack, mock_dsp: MockDspServer, scripted: ScriptedFaults, tmp_path: Path
) -> None:
    kinds = list(FAULT_KINDS)
    entities = [advertiser(f"idem-{_slug(kind)}") for kind in kinds]
    entities.append(campaign("idem-campaign", "idem-503-after"))
    for kind in kinds:
        scripted.add(kind, "POST", idempotency_key=f"idem-{_slug(kind)}:v1")
    # Twice in a row for the campaign: the retry of a retry is a replay too.
    scripted.add("truncated", "POST", idempotency_key="idem-campaign:v1")
    scripted.add("slow", "POST", idempotency_key="idem-campaign:v1")
    path = write_entities(tmp_path / "idem.json", "idem", entities)

    counts = await stack.submit_file(path, wait_seconds=90)

    assert counts == {"succeeded": len(entities)}
    assert scripted.pending == 0
    views = {v.key: v for v in await queries.entity_views(stack.service, batch="idem")}
    log = mock_dsp.dsp.request_log
    assert_one_dsp_entity_per_key(mock_dsp.dsp, {k: v.dsp_id for k, v in views.items()})
    created = created_entities_by_key(log)
    assert set(created) == set(views)
    for kind in kinds:
        idem = f"idem-{_slug(kind)}:v1"
        posts = [r for r in log if r.method == "POST" and r.idempotency_key == idem]
        first, *retries = [r for r in posts if r.status != 429]
        assert first.fault == kind
        if kind == "503_before":
            assert first.created_id is None and not retries[-1].replayed
        else:
            # The DSP created the entity although the service never read the answer...
            assert first.created_id == views[f"idem-{_slug(kind)}"].dsp_id
            # ...and the retry with the same Idempotency-Key got that entity back.
            assert retries[-1].replayed and retries[-1].status == 201
    campaign_posts = [r for r in log if r.idempotency_key == "idem-campaign:v1"]
    assert [r.fault for r in campaign_posts if r.fault] == ["truncated", "slow"]
    assert campaign_posts[-1].replayed and campaign_posts[-1].status == 201
    assert_audit_accounts_for(log, await audit_rows(stack.service.sessions))

    # The very same file again: nothing new is stored, started or sent.
    report = await submit(stack.service, read_submission(path), actor=cli_actor())
    assert (report.stored, report.started, report.already_ended) == (0, 0, len(entities))
    assert len(mock_dsp.dsp.request_log) == len(log)


@pytest.mark.slow
@pytest.mark.timeout(240)  # its own wait for the outcome is 150 s
async def test_twenty_percent_faults_end_as_the_dsp_decides(
    stack: Stack, mock_dsp: MockDspServer, tmp_path: Path
) -> None:
    mock_dsp.dsp.config = mock_config().model_copy(
        update={
            "fault_rate": 0.2,
            "slow_seconds": SLOW_SECONDS,
            "seed": 20,
            # Children are posted while their parents still propagate: natural 409s.
            "propagation_delay": 1.5,
        }
    )
    entities, expected = launch_dag("flt", advertisers=4)
    path = write_entities(tmp_path / "faults.json", "flt", entities)

    await submit(stack.service, read_submission(path), actor=cli_actor())
    statuses = await end_statuses(stack.service, expected, within=150)

    assert statuses == expected
    log = mock_dsp.dsp.request_log
    summary = summarize(log)
    faults = Counter(r.fault for r in log if r.fault)
    assert sum(faults.values()) >= max(6, len(log) // 10), summary
    assert len(faults) >= 4, summary
    not_ready = [r for r in log if r.status == 409]
    assert not_ready, summary
    views = {v.key: v for v in await queries.entity_views(stack.service, batch="flt")}
    assert_one_dsp_entity_per_key(mock_dsp.dsp, {k: v.dsp_id for k, v in views.items()})
    for key, view in views.items():
        if view.dsp_id:
            assert mock_dsp.dsp.status_of(view.dsp_id) == view.dsp_status, key
    assert_audit_accounts_for(log, await audit_rows(stack.service.sessions))
