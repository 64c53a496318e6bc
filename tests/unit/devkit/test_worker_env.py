"""The dev stack's worker environment: against the mock DSP, a worker reads back every seat
with the secret the mock was given, although DSP_BASE_URL now names the mock."""

from __future__ import annotations

import pytest

from devkit.stack.workers import worker_env
from dsp_integration.config import Settings
from dsp_integration.config.seat_config import SeatConfig


def test_every_seat_gets_its_development_secret_at_the_mock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DSP_SEATS", "DSP_BASE_URL", "DSP_API_TOKEN", "DSP_SEAT_EAST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    parent = Settings(  # type: ignore[call-arg]
        _env_file=None,
        dsp_seats=[SeatConfig(name="east", client_id="east-client"), SeatConfig(name="west")],
    )
    env = worker_env(parent)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    child = Settings(_env_file=None).seats()  # type: ignore[call-arg]

    assert env["DSP_BASE_URL"] == parent.effective_dsp_base_url
    assert {seat.name: seat.secret for seat in child} == {
        seat.name: seat.secret for seat in parent.seats()
    }
    assert child["east"].client_id == "east-client"
