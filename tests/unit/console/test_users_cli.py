"""`starter.py users ...` against real PostgreSQL: a password asked twice on a terminal, a
one-time password printed otherwise, roles, disabling, tokens shown once."""

from __future__ import annotations

import json

import pytest

from dsp_integration.commands import users
from dsp_integration.commands.starter import main
from dsp_integration.database.engine import SessionFactory


@pytest.fixture
def cli_database(
    clean_database: SessionFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.chdir("/")  # no .env


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["users", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_users_from_the_command_line(
    cli_database: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not on a terminal (as here): a one-time password is printed.
    code, out, _ = _run(capsys, "add", "alice", "--role", "operator")
    assert code == 0 and "added alice (role operator, one-time password)" in out
    assert len(out.rsplit(": ", 1)[1].strip()) == 20
    # On a terminal: asked twice; two different answers change nothing.
    monkeypatch.setattr(users.sys.stdin, "isatty", lambda: True)
    answers = iter(["a long password 1", "a long password 2"])
    monkeypatch.setattr(users.getpass, "getpass", lambda prompt="": next(answers))
    code, _, err = _run(capsys, "add", "bob", "--role", "viewer")
    assert code == 2 and "the two passwords differ" in err
    answers = iter(["a long password 1", "a long password 1"])
    code, out, _ = _run(capsys, "add", "bob", "--role", "viewer")
    assert code == 0 and out.strip() == "added bob (role viewer)"
    code, _, err = _run(capsys, "add", "carol", "--role", "owner")
    assert code == 2 and "unknown role 'owner'" in err
    code, out, _ = _run(capsys, "set-role", "bob", "admin")
    assert code == 0 and "bob: role viewer -> admin" in out
    code, out, _ = _run(capsys, "disable", "alice")
    assert code == 0 and "alice: enabled -> disabled" in out
    code, _, err = _run(capsys, "disable", "bob")
    assert code == 2 and "last enabled admin" in err
    code, out, _ = _run(capsys, "list", "--json")
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed["alice"]["disabled"] and listed["alice"]["password_change_required"]
    assert listed["bob"]["role"] == "admin" and not listed["bob"]["disabled"]
    code, out, _ = _run(capsys, "tokens", "create", "bob", "--label", "reports")
    token = out.rsplit(": ", 1)[1].strip()
    assert code == 0 and token.startswith("dsp_")
    code, out, _ = _run(capsys, "tokens", "list", "--json")
    [row] = json.loads(out)
    assert token not in out and token.startswith(row["prefix"]) and row["revoked_at"] is None
    code, out, _ = _run(capsys, "tokens", "revoke", str(row["id"]))
    assert code == 0 and "revoked" in out
    code, _, err = _run(capsys, "set-role", "nobody", "viewer")
    assert code == 2 and "unknown account 'nobody'" in err
