"""The documentation site builds with --strict (a broken link, anchor or reference fails),
its generated pages say what the code says, and every command the tutorial shows is one its
parser accepts."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.docs import benchmarks_page, cli_reference, openapi_reference, settings_reference
from devkit.docs.hooks import UnknownGenerator, expand
from devkit.docs.settings_reference import UndescribedSetting, fields_table
from devkit.docs.tutorial import tutorial_commands
from devkit.stack.cli import build_parser as dev_parser
from dsp_integration.commands.starter import build_parser as starter_parser
from dsp_integration.config import Settings
from dsp_integration.config.settings import PROJECT_ROOT

MAKEFILE = PROJECT_ROOT / "Makefile"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    for page in [
        "index",
        "tutorial",
        "runbook",
        "benchmarks",
        "results-log",
        "reference/configuration",
        "reference/cli",
        "reference/http-api",
        "guides/seats",
        "explanation/rate-ledger",
    ]:
        assert (site / f"{page}.html").is_file(), page
    # Offline: no page loads anything from another site.
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis.com" not in text, page
        assert not re.search(r'<script[^>]+src="https?://', text), page


def test_the_configuration_page_lists_every_setting(site: Path) -> None:
    html = (site / "reference/configuration.html").read_text()
    for name in Settings.model_fields:
        assert f"<code>{name.upper()}</code>" in html, name


def test_a_setting_without_a_description_fails_the_reference() -> None:
    from pydantic import BaseModel

    class Undescribed(BaseModel):
        knob: int = 3

    with pytest.raises(UndescribedSetting, match="knob"):
        fields_table(Undescribed)
    assert "`3`" in fields_table(Settings) or "`40`" in fields_table(Settings)


def test_the_cli_page_has_every_command_and_option(site: Path) -> None:
    html = (site / "reference/cli.html").read_text()
    for script, parser in (("starter.py", starter_parser()), ("dev.py", dev_parser())):
        for name, sub in cli_reference._subcommands(parser):
            assert f"{script} {name}" in html, name
            for action in sub._actions:
                if action.help == argparse.SUPPRESS:
                    continue
                for option in action.option_strings:
                    assert option in html, f"{script} {name} {option}"


def test_the_http_api_page_has_every_operation_of_the_openapi_document(site: Path) -> None:
    html = (site / "reference/http-api.html").read_text()
    document = openapi_reference.openapi_document()
    for path, item in document["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in html, (method, path)
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name.lower()}"' in html, name


def test_the_benchmarks_page_shows_the_latest_run_of_each_configuration(tmp_path: Path) -> None:
    from devkit.bench.results import record_run

    for utilisation in ("90.0%", "99.5%"):
        record_run(
            "rate_limit",
            "backlog-w2",
            parameters={"limit": 20, "window": 5},
            summary={"requests": 100, "utilisation": utilisation},
            details={"requests": [[0.1 * i, "POST", "/v1/advertisers", 201] for i in range(40)]},
            argv=["--workers", "2"],
            folder=tmp_path,
        )
    page = benchmarks_page.render(tmp_path)
    assert "| `backlog-w2` | 100 | 99.5% |" in page and "90.0%" not in page
    assert page.split("\n")[6].endswith("| 2 |")  # both runs kept as its history
    assert "<svg" in page and "limit 20" in page
    with pytest.raises(TypeError, match="not flat"):
        record_run("x", "y", parameters={}, summary={"nested": {}}, folder=tmp_path)


def test_an_unknown_generated_part_fails_the_build() -> None:
    with pytest.raises(UnknownGenerator, match="nope"):
        expand("<!-- generated: nope -->", "page.md")
    assert expand("no markers") == "no markers"
    assert "DSP_RATE_LIMIT" in settings_reference.render()


def _makefile_targets() -> set[str]:
    heads = re.findall(r"^([a-z][a-z -]*):", MAKEFILE.read_text(), flags=re.MULTILINE)
    return {target for head in heads for target in head.split()}


def _accepts(parser: argparse.ArgumentParser, args: list[str]) -> None:
    try:
        parser.parse_args(args)
    except SystemExit as exit_:
        pytest.fail(f"{parser.prog} refuses {args}: exit {exit_.code}")


def test_every_tutorial_command_is_accepted_by_its_parser() -> None:
    commands = tutorial_commands()
    assert len(commands) >= 6
    for command in commands:
        words = list(command.words)
        match words:
            case ["make", *targets]:
                assert targets and set(targets) <= _makefile_targets(), command.text
            case ["python", "starter.py", *args]:
                _accepts(starter_parser(), args)
            case ["python", "dev.py", *args]:
                _accepts(dev_parser(), args)
            case _:
                pytest.fail(f"the tutorial shows a command no test checks: {command.text}")
        for word in words:
            if word.startswith("examples/"):
                assert (PROJECT_ROOT / word).is_file(), word
