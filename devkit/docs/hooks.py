"""MkDocs hooks (`mkdocs.yml`): generated parts are put into the pages at build time, so
the site says what the code says.

A page asks for a part with a marker line `<!-- generated: NAME -->` (NAME one of
`GENERATORS`); an unknown name fails the build. The benchmarks' long log,
`devkit/bench/RESULTS.md`, joins the site as `results-log.md`, its image links pointed at
the site's copies."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:  # mkdocs loads this file by path
    sys.path.insert(0, str(REPOSITORY))

from devkit.docs import (  # noqa: E402
    benchmarks_page,
    cli_reference,
    openapi_reference,
    settings_reference,
)

MARKER = re.compile(r"^<!-- generated: ([a-z_-]+) -->$", re.MULTILINE)
RESULTS_LOG = REPOSITORY / "devkit/bench/RESULTS.md"
RESULTS_LOG_PAGE = "results-log.md"

GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings_reference.render,
    "cli-starter": cli_reference.render_starter,
    "cli-dev": cli_reference.render_dev,
    "http-api": openapi_reference.render,
    "benchmarks": benchmarks_page.render,
}


class UnknownGenerator(ValueError):
    pass


def expand(markdown: str, source: str = "a page") -> str:
    """`markdown` with every marker replaced by its generated part."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise UnknownGenerator(f"{source}: no generator {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def results_log() -> str:
    text = RESULTS_LOG.read_text()
    note = (
        "<!-- Generated from devkit/bench/RESULTS.md at build time: edit that file. -->\n"
        '!!! note "The long log"\n'
        "    Every benchmark pass, as written at the time (`devkit/bench/RESULTS.md`). "
        "The current figures are on [Benchmarks](benchmarks.md).\n\n"
    )
    return note + text.replace("](../docs/", "](")


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, RESULTS_LOG_PAGE, content=results_log()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return expand(markdown, page.file.src_uri)
