"""`pip install .` installs a complete service: the wheel holds `workflows/` and
`activities/` (which stand at the repository's top, linked into the package) as
`dsp_integration.workflows` and `dsp_integration.activities`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from dsp_integration.config.settings import PROJECT_ROOT


def test_the_wheel_holds_the_workflows_and_activities_at_the_top(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (PROJECT_ROOT / "workflows").glob("*.py"):
        assert f"dsp_integration/workflows/{module.name}" in names
    for module in (PROJECT_ROOT / "activities").glob("*.py"):
        assert f"dsp_integration/activities/{module.name}" in names
    assert "dsp_integration/workflows/entity_machine.py" in names
    assert not any(name.startswith(("workflows/", "activities/", "tests/")) for name in names)
