"""Settings.seats(): DSP_SEATS and the flat DSP_* settings resolved into seats, with every
problem reported at once, one line each, and no secret in any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from dsp_integration.config.seat_config import SeatConfig, default_secret_env
from dsp_integration.config.seats import SeatProblems
from dsp_integration.config.settings import (
    DEV_API_TOKEN,
    MOCK_DSP_PORT,
    PROJECT_ROOT,
    Settings,
    as_environment,
)
from dsp_integration.contracts import DEFAULT_SEAT

REAL = "https://dsp.example.com"
MOCK = f"http://127.0.0.1:{MOCK_DSP_PORT}"
SECRET = "s3cret-value-never-shown"


@pytest.fixture(autouse=True)
def no_seat_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DSP_", "MY_")):
            monkeypatch.delenv(name)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def problems_of(configured: Settings) -> list[str]:
    with pytest.raises(SeatProblems) as raised:
        configured.seats()
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def test_without_seats_there_is_the_default_seat_of_the_flat_settings() -> None:
    seats = settings(dsp_rate_limit=7, dsp_rate_window=3, dsp_api_version=2).seats()
    assert seats.names() == [DEFAULT_SEAT] and seats.default == DEFAULT_SEAT
    seat = seats[DEFAULT_SEAT]
    assert (seat.base_url, seat.api_version, seat.rate_limit, seat.rate_window) == (MOCK, 2, 7, 3)
    assert seat.secret.get_secret_value() == DEV_API_TOKEN and not seat.uses_client_credentials


def test_the_default_seat_uses_dsp_api_token_at_a_real_dsp() -> None:
    seat = settings(dsp_base_url=REAL + "/", dsp_api_token=SECRET).seats()[DEFAULT_SEAT]
    assert seat.base_url == REAL and seat.secret == SecretStr(SECRET)
    assert seat.secret_env == "DSP_API_TOKEN"


def test_the_default_seat_logs_in_with_dsp_client_id() -> None:
    seat = settings(dsp_base_url=REAL, dsp_client_id="cid", dsp_client_secret=SECRET).seats()[
        DEFAULT_SEAT
    ]
    assert seat.client_id == "cid" and seat.secret == SecretStr(SECRET)
    mock = settings(dsp_client_id="cid").seats()[DEFAULT_SEAT]
    assert mock.secret.get_secret_value() == "dev-secret-default"


def test_seats_take_the_flat_settings_they_leave_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSP_SEAT_EMEA_WEST_SECRET", SECRET)
    monkeypatch.setenv("MY_APAC_SECRET", "apac-secret")
    configured = settings(
        dsp_base_url=REAL,
        dsp_api_token="default-token",
        dsp_rate_limit=40,
        dsp_search_lag=3,
        dsp_seats=json.dumps(
            [
                {"name": "emea-west", "client_id": "emea", "rate_limit": 10, "api_version": 2},
                {
                    "name": "apac",
                    "base_url": "https://apac.example.com/",
                    "secret_env": "MY_APAC_SECRET",
                    "rate_window": 1.5,
                },
            ]
        ),
    )
    seats = configured.seats()
    assert seats.names() == ["apac", "default", "emea-west"]
    emea, apac = seats["emea-west"], seats["apac"]
    assert (emea.base_url, emea.api_version, emea.search_lag) == (REAL, 2, 3)
    assert (emea.rate_limit, emea.rate_window, emea.client_id) == (10, 60.0, "emea")
    assert emea.secret == SecretStr(SECRET) and emea.secret_env == "DSP_SEAT_EMEA_WEST_SECRET"
    assert (apac.base_url, apac.rate_limit, apac.rate_window) == (
        "https://apac.example.com",
        40,
        1.5,
    )
    assert apac.secret.get_secret_value() == "apac-secret" and apac.client_id is None


def test_a_default_seat_named_elsewhere_leaves_out_the_implicit_one() -> None:
    seats = settings(dsp_seats=[{"name": "a"}, {"name": "b"}], dsp_default_seat="b").seats()
    assert seats.names() == ["a", "b"] and seats.default == "b"


def test_a_configured_default_seat_replaces_the_implicit_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DSP_SEAT_DEFAULT_SECRET", SECRET)
    seats = settings(
        dsp_base_url=REAL, dsp_api_token="flat", dsp_seats=[{"name": "default", "rate_limit": 5}]
    ).seats()
    assert seats.names() == ["default"]
    assert seats["default"].rate_limit == 5 and seats["default"].secret == SecretStr(SECRET)


def test_the_mock_dsp_gives_each_seat_its_development_secret() -> None:
    seats = settings(dsp_seats=[{"name": "a"}, {"name": "b", "client_id": "b-client"}]).seats()
    assert seats["a"].secret.get_secret_value() == "dev-token-a"
    assert seats["b"].secret.get_secret_value() == "dev-secret-b"
    assert seats[DEFAULT_SEAT].secret.get_secret_value() == DEV_API_TOKEN


def test_a_seat_with_its_own_base_url_is_a_real_dsp_even_without_dsp_base_url() -> None:
    problems = problems_of(settings(dsp_seats=[{"name": "a", "base_url": REAL}]))
    assert problems == [
        f"seat 'a': DSP_SEAT_A_SECRET is not set (the seat's token for the DSP at {REAL}; "
        "development secrets are only for the mock DSP, no base_url and DSP_BASE_URL unset)"
    ]


def test_every_problem_is_one_line_and_all_come_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSP_SEAT_OK_SECRET", SECRET)
    configured = settings(
        dsp_base_url=REAL,
        dsp_seats=json.dumps(
            [
                {"name": "Bad Name"},
                {"name": "ok"},
                {"name": "ok"},
                {"name": "nolimit", "rate_limit": 0, "rate_window": 90000},
                {"name": "url", "base_url": "ftp://x"},
                {"name": "leak", "client_secret": SECRET},
                {"name": "cc", "client_id": "cc-client"},
            ]
        ),
        dsp_default_seat="nowhere",
    )
    problems = problems_of(configured)
    assert problems == [
        "DSP_SEATS[0] (seat 'Bad Name'): name: seat name 'Bad Name' must be 1-32 characters "
        "of a-z, 0-9, '_' and '-', starting with a letter or a digit",
        "DSP_SEATS[3] (seat 'nolimit'): rate_limit: Input should be greater than or equal to 1",
        "DSP_SEATS[3] (seat 'nolimit'): rate_window: Input should be less than or equal to 86400",
        "DSP_SEATS[5] (seat 'leak'): client_secret: secrets do not belong in DSP_SEATS: put it "
        "in the environment variable that secret_env names (default DSP_SEAT_<NAME>_SECRET)",
        "DSP_SEATS: seat 'ok' is configured more than once",
        "seat 'url': base_url 'ftp://x' is not an http(s) URL with a host",
        "seat 'url': DSP_SEAT_URL_SECRET is not set (the seat's token for the DSP at ftp://x; "
        "development secrets are only for the mock DSP, no base_url and DSP_BASE_URL unset)",
        f"seat 'cc': DSP_SEAT_CC_SECRET is not set (the seat's client secret for the DSP at "
        f"{REAL}; development secrets are only for the mock DSP, no base_url and DSP_BASE_URL "
        "unset)",
        "DSP_DEFAULT_SEAT 'nowhere' is not a configured seat (configured: cc, ok, url)",
    ]
    assert not any(SECRET in problem for problem in problems)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('[{"name": "a",}]', "DSP_SEATS is not valid JSON (Expecting property name"),
        ('{"name": "a"}', "DSP_SEATS must be a JSON list of seats, not a dict"),
        ('["a"]', "DSP_SEATS[0]: Input should be a valid dictionary or instance of SeatConfig"),
        ('[{"name": "a", "api_version": 3}]', "DSP_SEATS[0] (seat 'a'): api_version: Input"),
        ('[{"name": "a", "secret_env": "not a name"}]', "DSP_SEATS[0] (seat 'a'): secret_env"),
    ],
)
def test_a_malformed_dsp_seats_is_a_problem_line_not_a_crash(raw: str, problem: str) -> None:
    configured = settings(dsp_seats=raw)  # constructing the settings does not fail
    assert problems_of(configured)[0].startswith(problem)


def test_dsp_seats_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSP_SEATS", '[{"name": "a", "rate_limit": 3}]')
    monkeypatch.setenv("DSP_DEFAULT_SEAT", "a")
    seats = settings().seats()
    assert seats.default == "a" and seats["a"].rate_limit == 3
    monkeypatch.setenv("DSP_SEATS", "not json")
    assert problems_of(settings())[0].startswith("DSP_SEATS is not valid JSON")


def test_the_default_seats_flat_budget_is_checked_too() -> None:
    problems = problems_of(settings(dsp_rate_limit=100_001))
    assert problems == [
        "seat 'default' (DSP_RATE_LIMIT, DSP_RATE_WINDOW): rate limit 100001 is out of range "
        "(1..100000)"
    ]


@pytest.mark.parametrize(
    ("values", "variable"),
    [({}, "DSP_API_TOKEN"), ({"dsp_client_id": "cid"}, "DSP_CLIENT_SECRET")],
)
def test_a_real_dsp_without_the_default_seats_secret(values: dict[str, str], variable: str) -> None:
    configured = settings(dsp_base_url=REAL, **values)
    [problem] = problems_of(configured)
    assert problem.startswith(f"{variable} is not set, and DSP_BASE_URL={REAL} is a real DSP")
    with pytest.raises(SeatProblems):
        configured.dsp_token()


def test_seat_secrets_come_from_the_env_file_the_settings_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "service.env"
    env_file.write_text(f"DSP_SEAT_A_SECRET={SECRET}\nDSP_SEAT_B_SECRET=from-file\n")
    monkeypatch.setenv("DSP_SEAT_B_SECRET", "from-environment")
    seats_config = [{"name": "a", "base_url": REAL}, {"name": "b", "base_url": REAL}]
    seats = Settings(_env_file=env_file, dsp_seats=seats_config).seats()  # type: ignore[call-arg]
    assert seats["a"].secret == SecretStr(SECRET)
    assert seats["b"].secret.get_secret_value() == "from-environment"  # the environment wins
    assert problems_of(settings(dsp_seats=seats_config))[0].startswith(
        "seat 'a': DSP_SEAT_A_SECRET is not set"
    )


def test_seats_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = settings(dsp_seats=[{"name": "a", "base_url": REAL}])
    problems_of(configured)
    monkeypatch.setenv("DSP_SEAT_A_SECRET", SECRET)
    problems_of(configured)  # the first answer stands for these settings
    assert settings(dsp_seats=[{"name": "a", "base_url": REAL}]).seats().names() == [
        "a",
        "default",
    ]


def test_the_default_secret_variable_is_named_after_the_seat() -> None:
    assert default_secret_env("emea-west_2") == "DSP_SEAT_EMEA_WEST_2_SECRET"


def test_as_environment_round_trips_dsp_seats(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = settings(
        dsp_seats=[
            SeatConfig(name="a", client_id="cid", rate_limit=5),
            SeatConfig(name="b", base_url=REAL, secret_env="MY_B", rate_window=0.5),
        ],
        dsp_default_seat="a",
        dsp_client_id="flat-cid",
        dsp_client_secret=SECRET,
    )
    env = as_environment(configured)
    assert json.loads(env["DSP_SEATS"]) == [
        {"name": "a", "client_id": "cid", "rate_limit": 5},
        {"name": "b", "base_url": REAL, "secret_env": "MY_B", "rate_window": 0.5},
    ]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert settings() == configured
    assert as_environment(settings(dsp_seats=[]))["DSP_SEATS"] == "[]"


def test_a_worker_with_bad_seats_refuses_to_start_with_a_line_per_problem(
    tmp_path: Path,
) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DSP_", "TEMPORAL_", "DATABASE_", "METRICS_"))
    }
    env |= {
        "DSP_SEATS": json.dumps([{"name": "a", "base_url": REAL}, {"name": "a"}]),
        "DSP_DEFAULT_SEAT": "b",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert all("bad configuration" in line for line in lines)
    assert "DSP_SEAT_A_SECRET is not set" in lines[0]
    assert "seat 'a' is configured more than once" in lines[1]
    assert "DSP_DEFAULT_SEAT 'b' is not a configured seat" in lines[2]


def test_the_cli_refuses_bad_seats_with_a_line_per_problem(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DSP_")}
    env |= {"DSP_SEATS": "[1]", "DSP_DEFAULT_SEAT": "x"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "starter.py"), "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: bad configuration: DSP_SEATS[0]: Input should be a valid dictionary or "
        "instance of SeatConfig",
        "error: bad configuration: DSP_DEFAULT_SEAT 'x' is not a configured seat "
        "(configured: none)",
    ]
