"""The mock DSP over real HTTP on loopback: `MockDspServer` in a thread and
`python -m devkit.mock_dsp` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from devkit.mock_dsp.config import MockDspConfig
from devkit.mock_dsp.examples import advertiser_body, campaign_body
from devkit.mock_dsp.server import MockDspServer
from dsp_integration.config.settings import PROJECT_ROOT

TOKEN = "server-token-1c4d"


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_mock_dsp_server_serves_on_a_free_loopback_port() -> None:
    config = MockDspConfig(token=TOKEN, propagation_delay=0.0, pending_seconds=0.0)
    with MockDspServer(config) as server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            adv = client.post("/v1/advertisers", json=advertiser_body()).json()["id"]
            created = client.post(
                "/v1/campaigns", json=campaign_body(adv), headers={"Idempotency-Key": "c1"}
            )
            replayed = client.post(
                "/v1/campaigns", json=campaign_body(adv), headers={"Idempotency-Key": "c1"}
            )
            stats = client.get("/_mock/stats").json()

        assert created.status_code == 201
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == created.json()
        assert created.headers["X-RateLimit-Remaining"] == "38"
        assert stats["total"] == 3
        assert [(r.method, r.path, r.status) for r in server.dsp.request_log] == [
            ("POST", "/v1/advertisers", 201),
            ("POST", "/v1/campaigns", 201),
            ("POST", "/v1/campaigns", 201),
        ]
        # Tests swap the config and reset the state between runs, from their own thread.
        server.dsp.reset()
        server.dsp.config = MockDspConfig(token="next-token")
        assert httpx.get(f"{server.base_url}/v1/campaigns/x/status").status_code == 401
        assert len(server.dsp.request_log) == 1
    assert not port_accepts(port)


def test_a_slow_answer_does_not_hold_up_stopping() -> None:
    config = MockDspConfig(token=TOKEN, fault_rate=1.0, fault_kinds=["slow"], slow_seconds=30)
    server = MockDspServer(config)
    server.start()
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(
                f"{server.base_url}/v1/advertisers/adv_1/status",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=0.3,
            )
        assert server.dsp.request_log[0].fault == "slow"
    finally:
        began = time.monotonic()
        server.stop()
    assert time.monotonic() - began < 5


def wait_for_port(process: subprocess.Popen[str], port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"python -m mock_dsp did not start:\n{process.communicate()[0]}")
        time.sleep(0.05)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_python_m_mock_dsp_logs_requests_without_the_token_and_exits_cleanly(
    stop_signal: signal.Signals,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DSP_API_TOKEN": "from-the-environment"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devkit.mock_dsp",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--rate-limit",
            "5",
            "--rate-window",
            "2.5",
            "--review-seconds",
            "0.5",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(process, port)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        created = httpx.post(f"{base}/v1/advertisers", json=advertiser_body(), headers=auth)
        missing = httpx.get(f"{base}/v1/advertisers/adv_nope/status", headers=auth)
        config = httpx.get(f"{base}/_mock/config").json()
    finally:
        process.send_signal(stop_signal)
        output = process.communicate(timeout=15)[0]

    assert process.returncode == 0, output
    assert created.status_code == 201
    assert missing.headers["X-RateLimit-Limit"] == "5"
    assert (config["rate_window"], config["review_seconds"]) == (2.5, 0.5)
    assert f"POST /v1/advertisers 201 created={created.json()['id']}" in output
    assert "GET /v1/advertisers/adv_nope/status 404" in output
    assert TOKEN not in output
    assert "from-the-environment" not in output
    assert "Traceback" not in output
