"""Keep docker-compose.yml, the Procfile, the settings, the README and docs/ in agreement.

No Docker engine runs on the development machines, so these checks are what stands between the
compose file and rot: every Procfile component is a compose service running that same entry,
every variable the settings read is set for every app container and documented in
docs/operations.md. The README stays a short front door that links every page of docs/.
"""

import ast
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
OPERATIONS = (DOCS / "operations.md").read_text()
EVENTS = (DOCS / "events.md").read_text()


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def settings_variables() -> dict[str, bool]:
    """Return {variable: required} for every ``env.<cast>("NAME", ...)`` call in the settings."""
    tree = ast.parse((ROOT / "config" / "settings.py").read_text())
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "env"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            required = not any(k.arg == "default" for k in node.keywords)
            found[node.args[0].value] = found.get(node.args[0].value, False) or required
    return found


def app_services() -> dict[str, dict]:
    return {name: svc for name, svc in SERVICES.items() if svc.get("build") == "."}


def readme_variables() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", OPERATIONS, flags=re.MULTILINE))


def test_settings_read_the_expected_variables():
    variables = settings_variables()
    # A production secret has no default; the service URLs do (the embedded defaults).
    assert variables["DJANGO_SECRET_KEY"] is True
    assert variables["DATABASE_URL"] is False
    assert {"REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS", "EVENT_BUS"} <= set(
        variables
    )


@pytest.mark.parametrize("process", sorted(procfile()))
def test_every_procfile_component_is_a_compose_service_running_that_entry(process):
    service = SERVICES.get(process)
    assert service is not None, f"docker-compose.yml has no service for Procfile '{process}'"
    assert service["build"] == "."
    assert service["command"] == ["honcho", "start", "--no-prefix", process]


def test_every_setting_variable_is_set_for_every_app_container():
    variables = settings_variables()
    assert set(app_services()) >= {"migrate", *procfile()}
    for name, service in app_services().items():
        missing = sorted(set(variables) - set(service["environment"]))
        assert not missing, f"compose service '{name}' does not set {missing}"


def test_every_variable_is_documented_in_the_readme():
    procfile_variables = set(re.findall(r"\$\{([A-Z_]+)", "\n".join(procfile().values())))
    undocumented = sorted((set(settings_variables()) | procfile_variables) - readme_variables())
    assert not undocumented, f"docs/operations.md's configuration table lacks {undocumented}"


def test_the_demo_loop_sets_only_variables_the_settings_read():
    # A misspelt name in config/loop.env would be ignored without a word.
    lines = (ROOT / "config" / "loop.env").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line.strip() and not line.startswith("#")}
    assert names - {"PYTHONUNBUFFERED"} <= set(settings_variables())
    assert "ML_TRIGGER_CHECK_SECONDS" in names


def test_app_containers_point_at_the_compose_services():
    env = SERVICES["web"]["environment"]
    assert urlparse(env["DATABASE_URL"]).hostname == "postgres"
    assert urlparse(env["REDIS_URL"]).hostname == "redis"
    assert urlparse(env["CELERY_BROKER_URL"]).hostname == "redis"
    assert env["EVENT_BUS"] == "kafka"
    kafka_env = SERVICES["kafka"]["environment"]
    assert (
        kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}"
    )
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert env["WEB_HOST"] == "0.0.0.0"  # noqa: S104 (inside its container)


def test_compose_runs_the_same_kafka_version_as_the_tests():
    pom = (ROOT / "devservices" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([\d.]+)</kafka.version>", pom).group(1)
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{version}"
    assert version.startswith("4.")
    assert SERVICES["postgres"]["image"] == "postgres:15"


def test_readme_topic_catalogue_lists_every_declared_topic_with_its_key():
    from events.contracts import TOPICS

    rows = dict(re.findall(r"^\| `([a-z_.]+\.v\d+)` \| `([a-z_]+)` \|", EVENTS, re.MULTILINE))
    assert rows == {topic: schema.key_field for topic, schema in TOPICS.items()}


def test_readme_is_short_and_links_every_docs_page():
    assert len(README.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#\s]+)", README))
    pages = {path.relative_to(ROOT).as_posix() for path in DOCS.rglob("*") if path.is_file()}
    assert sorted(pages - linked) == []
    assert sorted(linked - pages) == []


def test_the_observability_profile_scrapes_every_metrics_endpoint():
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target.split(":")[0]
        for job in prometheus["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    # Every process of the Procfile but beat, which runs no task and serves nothing.
    assert targets == set(procfile()) - {"beat"}
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["observability"]
    for volume in SERVICES["grafana"]["volumes"] + SERVICES["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        assert not source.startswith("./") or (ROOT / source).exists(), volume


def test_the_dashboard_charts_only_metrics_the_processes_export():
    from prometheus_client import REGISTRY

    import fraud.scorer.metrics  # noqa: F401 (the modules that define the metrics)
    import ml.metrics  # noqa: F401
    from config import celery  # noqa: F401
    from events import telemetry  # noqa: F401
    from features.processor import step  # noqa: F401

    exported = {name for names in REGISTRY._collector_to_names.values() for name in names}
    # The web's gauges, read from the database and the feature store at each scrape.
    collected = set(
        re.findall(
            r'"((?:outbox|feature)_[a-z_]+)"',
            (ROOT / "rideshare" / "metrics.py").read_text()
            + (ROOT / "features" / "metrics.py").read_text(),
        )
    )
    collected |= {f"feature_served_{n}" for n in ("mismatched_share", "stale_share")}
    dashboard = json.loads(
        (ROOT / "deploy" / "grafana" / "dashboards" / "rideshare.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {
        name
        for expr in exprs
        for name in re.findall(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b(?=[\[{)])", expr)
    }
    assert used, "no metric found in the dashboard"
    unknown = sorted(used - exported - collected)
    assert not unknown, f"the dashboard charts metrics nothing exports: {unknown}"
