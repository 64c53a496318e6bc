"""An answer gate: the mock DSP acts on the request at once, and the client hears of it only
when the test releases the gate."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest

import devkit.mock_dsp.api
from devkit.mock_dsp.answer_gates import AnswerGate
from devkit.mock_dsp.api import ApiAnswer, ApiCall
from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.examples import advertiser_body
from devkit.mock_dsp.server import MockDspServer
from devkit.mock_dsp.state import MockDsp

TOKEN = "gates-token-9a1e"


def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_held_answer_reaches_the_client_only_once_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = AnswerGate()
    original = devkit.mock_dsp.api.answer

    def held(dsp: MockDsp, call: ApiCall) -> ApiAnswer:
        return replace(original(dsp, call), gate=gate)

    monkeypatch.setattr(devkit.mock_dsp.api, "answer", held)
    config = MockDspConfig(token=TOKEN, propagation_delay=0.0)
    with MockDspServer(config) as server, ThreadPoolExecutor(1) as pool:
        sent = pool.submit(
            httpx.post,
            f"{server.base_url}/v1/advertisers",
            json=advertiser_body(),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        _until(lambda: len(server.dsp.entity_views()) == 1)
        # The entity exists, its answer is still held: the client has heard nothing.
        [record] = server.dsp.request_log
        assert record.status == 201 and record.created_id
        assert not sent.done() and not gate.released

        gate.release()
        answer = sent.result(timeout=5)

    assert answer.status_code == 201
    assert answer.json()["id"] == record.created_id


def test_an_answer_without_a_gate_is_not_held() -> None:
    config = MockDspConfig(token=TOKEN, propagation_delay=0.0)
    with MockDspServer(config) as server:
        answer = httpx.post(
            f"{server.base_url}/v1/advertisers",
            json=advertiser_body(),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=2,
        )
    assert answer.status_code == 201
