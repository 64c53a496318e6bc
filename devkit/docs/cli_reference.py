"""The command-line reference, rendered from the argparse parsers the commands run."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from devkit.stack.cli import build_parser as dev_parser
from dsp_integration.commands.starter import build_parser as starter_parser

HELP_WIDTH = 92


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    def formatter(prog: str) -> argparse.HelpFormatter:
        return argparse.HelpFormatter(prog, width=HELP_WIDTH)

    parser.formatter_class = formatter


def _help(parser: argparse.ArgumentParser) -> str:
    _fixed_width(parser)
    return f"```text\n{parser.format_help().rstrip()}\n```"


def render_parser(parser: argparse.ArgumentParser, script: str) -> str:
    sections = [_help(parser)]
    for name, sub in _subcommands(parser):
        sections.append(f"### `{script} {name}`")
        sections.append(_help(sub))
    return "\n\n".join(sections)


def render_starter() -> str:
    return render_parser(starter_parser(), "starter.py")


def render_dev() -> str:
    return render_parser(dev_parser(), "dev.py")
