"""docker-compose.yml is valid for Debian's docker-compose and wires the service as intended.

No Docker engine runs here: `docker-compose config` validates and resolves the file, and
its output is read with the interpreter docker-compose runs on (PyYAML is a dependency of
the Debian package), so the project needs no YAML library of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devkit.stack.temporal_server import SEARCH_ATTRIBUTES
from dsp_integration.config.settings import PROJECT_ROOT, Settings

SERVICE_ENV = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_TASK_QUEUE",
    "DATABASE_URL",
    "DSP_BASE_URL",
    "DSP_API_TOKEN",
    "DSP_RATE_LIMIT",
    "DSP_RATE_WINDOW",
    "DSP_TIMEOUT",
    "DSP_POLL_MIN_INTERVAL",
    "DSP_POLL_MAX_INTERVAL",
    "METRICS_PORT",
    "CONSOLE_HOST",
    "CONSOLE_PORT",
    "CONSOLE_TOKEN",
    "TEMPORAL_UI_URL",
}
SERVICES = {
    "postgresql",
    "temporal",
    "temporal-setup",
    "temporal-ui",
    "migrate",
    "worker",
    "mock-dsp",
    "console",
    "prometheus",
}
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


PROMETHEUS_DIR = PROJECT_ROOT / "deploy/prometheus"


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is missing: apt-get install docker-compose (.ci/run does)"
    return found


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No inherited variables and an empty env file instead of the developer's own .env.
    options = ["--project-directory", str(PROJECT_ROOT), "--env-file", str(env_file)]
    return subprocess.run(
        [_docker_compose(), *options, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


def _yaml_load(text: str) -> Any:
    first_line = Path(_docker_compose()).read_text(errors="replace").splitlines()[0]
    interpreter = first_line.removeprefix("#!").split() if first_line.startswith("#!") else []
    assert interpreter, "docker-compose is not a Python script; cannot read its YAML"
    result = subprocess.run(
        [*interpreter, "-c", YAML_TO_JSON], input=text, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    env_file.write_text("")
    check = _compose(env_file, "config", "-q")
    assert check.returncode == 0, check.stderr
    result = _compose(env_file, "config")
    assert result.returncode == 0, result.stderr
    return _yaml_load(result.stdout)


def test_services_are_all_there(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES
    assert resolved["services"]["postgresql"]["image"] == "postgres:16"
    assert resolved["services"]["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert resolved["services"]["temporal-ui"]["image"].startswith("temporalio/ui:")


@pytest.mark.parametrize("service", ["worker", "migrate", "console"])
def test_service_containers_get_every_setting_by_its_exact_name(
    resolved: dict[str, Any], service: str
) -> None:
    environment = resolved["services"][service]["environment"]
    assert set(environment) >= SERVICE_ENV
    assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert environment["DSP_BASE_URL"] == "http://mock-dsp:8765"
    assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert environment["DATABASE_URL"].endswith("@postgresql:5432/dsp_service")
    # Every setting of the service is passed (names are the Settings fields upper-cased).
    assert {name.upper() for name in Settings.model_fields} <= set(environment)


def test_commands(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert services["worker"]["command"] == ["python", "worker.py"]
    assert services["migrate"]["command"] == ["python", "starter.py", "migrate"]
    mock = services["mock-dsp"]["command"]
    assert mock[:3] == ["python", "-m", "devkit.mock_dsp"]
    assert mock[mock.index("--host") + 1] == "0.0.0.0"


def test_worker_scales_and_waits_for_what_it_needs(resolved: dict[str, Any]) -> None:
    worker = resolved["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["depends_on"] == {
        "temporal": {"condition": "service_healthy"},
        "temporal-setup": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
        "mock-dsp": {"condition": "service_healthy"},
    }
    assert resolved["services"]["migrate"]["depends_on"] == {
        "postgresql": {"condition": "service_healthy"}
    }
    for name in ("postgresql", "temporal", "mock-dsp", "worker"):
        assert resolved["services"][name]["healthcheck"]["test"], name


def test_console_serves_on_every_interface_with_its_token(resolved: dict[str, Any]) -> None:
    console = resolved["services"]["console"]
    assert console["command"] == ["python", "starter.py", "serve"]
    environment = console["environment"]
    assert environment["CONSOLE_HOST"] == "0.0.0.0"
    assert environment["CONSOLE_PORT"] == "8000"
    assert "CONSOLE_TOKEN" in environment  # empty by default: the console then refuses
    assert environment["TEMPORAL_UI_URL"] == "http://localhost:8080"
    assert [(p["target"], str(p["published"])) for p in console["ports"]] == [(8000, "8000")]
    assert console["depends_on"] == {
        "temporal": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "/healthz" in " ".join(console["healthcheck"]["test"])


def test_temporal_gets_one_partition_and_the_priority_matcher_for_the_dsp_queue(
    resolved: dict[str, Any],
) -> None:
    temporal = resolved["services"]["temporal"]
    path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = [volume for volume in temporal["volumes"] if isinstance(volume, str)]
    assert any(mount.endswith(":/etc/temporal/config/dynamicconfig:ro") for mount in mounts)
    local_dir = PROJECT_ROOT / "deploy/temporal/dynamicconfig"
    config = _yaml_load((local_dir / Path(path).name).read_text())
    dsp_queue = Settings(_env_file=None).dsp_task_queue
    for key in ("matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"):
        assert config[key] == [{"value": 1, "constraints": {"taskQueueName": dsp_queue}}]
    assert config["matching.useNewMatcher"] == [
        {"value": True, "constraints": {"taskQueueName": dsp_queue}}
    ]
    # Fair shares between batches on both queues, as the dev server has it (DYNAMIC_CONFIG).
    both = [dsp_queue, Settings(_env_file=None).temporal_task_queue]
    for key in ("matching.enableFairness", "matching.enableMigration"):
        assert config[key] == [
            {"value": True, "constraints": {"taskQueueName": queue}} for queue in both
        ]


def test_setup_registers_the_search_attributes_the_dev_server_has(
    resolved: dict[str, Any],
) -> None:
    setup = resolved["services"]["temporal-setup"]
    assert setup["depends_on"] == {"temporal": {"condition": "service_healthy"}}
    script = (PROJECT_ROOT / "deploy/temporal/register-search-attributes.sh").read_text()
    registered = dict(re.findall(r"--name (\w+) --type (\w+)", script))
    assert registered == dict(SEARCH_ATTRIBUTES)
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_env_example_lists_every_setting() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} <= listed
    assert SERVICE_ENV <= listed


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run(
        [found, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )


def test_prometheus_loads_the_runbooks_alerts_and_scrapes_every_worker(
    resolved: dict[str, Any],
) -> None:
    prometheus = resolved["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = [volume for volume in prometheus["volumes"] if isinstance(volume, str)]
    assert f"{PROMETHEUS_DIR}:/etc/prometheus:ro" in mounts
    config = _yaml_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # beside the config, in the same mount
    (job,) = config["scrape_configs"]
    (workers,) = job["dns_sd_configs"]
    # Every replica of the worker service, on the port its environment gives METRICS_PORT.
    assert workers["names"] == ["worker"]
    port = resolved["services"]["worker"]["environment"]["METRICS_PORT"]
    assert str(workers["port"]) == port
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_links_its_runbook_section_and_passes_its_unit_tests() -> None:
    rules = _yaml_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    runbook = (PROJECT_ROOT / "docs/runbook.md").read_text()
    anchors = set(re.findall(r"\{#([a-z0-9-]+)\}", runbook)) | {
        _slug(heading) for heading in re.findall(r"^#+ (.+)$", runbook, flags=re.MULTILINE)
    }
    for alert in alerts:
        link = alert["annotations"]["runbook"]
        assert link.startswith("docs/runbook.md#"), alert["alert"]
        assert link.split("#", 1)[1] in anchors, f"{alert['alert']}: no section {link}"
        assert alert["alert"] in runbook, f"the runbook does not name {alert['alert']}"
    tested = _yaml_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tested["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {alert["alert"] for alert in alerts}
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _slug(heading: str) -> str:
    """A heading's anchor as MkDocs makes it (toc's default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s-]+", "-", text).strip("-")
