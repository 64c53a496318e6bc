"""Schemathesis against the real console on the stack, with a batch submitted: every check
(the answers conform to the document, valid requests are accepted and invalid ones refused,
no server error, authentication is not ignored), the stateful phase included.

CI runs a fixed seed and a few examples per operation; `make api-fuzz` runs many more
(API_FUZZ_MAX_EXAMPLES, API_FUZZ_SEED)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.integration.console_support import running_console
from tests.integration.dag import ad_group, advertiser, campaign, creative
from tests.integration.harness import Stack

CONFIG = Path(__file__).with_name("api_fuzz.toml")
SCHEMATHESIS = Path(sys.executable).with_name("st")
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("API_FUZZ_SEED", "26"))
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.mark.timeout(int(os.environ.get("API_FUZZ_TIMEOUT", "170")))
async def test_schemathesis_finds_no_disagreement(stack: Stack, tmp_path: Path) -> None:
    entities = [
        advertiser("fz-adv"),
        campaign("fz-cmp", "fz-adv"),
        creative("fz-cr", "fz-adv"),
        ad_group("fz-ag", "fz-cmp", ["fz-cr"]),
    ]
    async with running_console(stack.settings, stack.service) as console:
        async with console.client() as api:
            body = json.dumps({"batch": "fz", "entities": entities}).encode()
            submitted = await api.post("/api/batches", content=body)
            assert submitted.status_code == 201, submitted.text
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{console.url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            PHASES,
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--header",
            f"Authorization: Bearer {console.token}",
            "--report-dir",
            str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, f"Schemathesis found disagreements:\n{report}"
    assert "No issues found" in report or "passed" in report, report
