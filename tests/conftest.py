"""Session-wide real services and per-test isolation.

A service fixture starts its server once per session, through ``devservices`` (the same code as
``make services`` and the benchmarks), unless the environment already points at one
(``KAFKA_BOOTSTRAP_SERVERS`` with ``EVENT_BUS=kafka``, ``REDIS_URL``, a PostgreSQL
``DATABASE_URL``). When a service cannot be provided, the test fails under ``CI=true`` with the
service's name and the reason, and is skipped (with the same message) elsewhere.

The Django test database is PostgreSQL unless ``TEST_DATABASE=sqlite``.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from devservices import STARTERS, Service, ServiceError

pytest_plugins = ["tests.memory_ceiling"]

IN_CI = os.environ.get("CI", "").lower() == "true"
# The test database: PostgreSQL unless TEST_DATABASE=sqlite.
ON_POSTGRES = os.environ.get("TEST_DATABASE", "postgres") != "sqlite"

# (service, seconds to start, how it was provided), printed in the terminal summary
STARTUP_TIMES: list[tuple[str, float, str]] = []


def service_unavailable(name: str, reason: str) -> None:
    """Fail (in CI) or skip (elsewhere) the requesting test, naming the service and the reason."""
    message = f"{name} could not be started: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _provide(name: str, start: Callable[[], Service]) -> Iterator[Service | None]:
    try:
        service = start()
    except ServiceError as exc:
        service_unavailable(name, exc.reason)
    STARTUP_TIMES.append((name, service.startup_seconds, "started"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker (``host:port``)."""
    if os.environ.get("EVENT_BUS") == "kafka" and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        STARTUP_TIMES.append(("kafka", 0.0, "from KAFKA_BOOTSTRAP_SERVERS"))
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    for service in _provide("kafka", STARTERS["kafka"]):
        yield service.url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server."""
    if os.environ.get("REDIS_URL"):
        STARTUP_TIMES.append(("redis", 0.0, "from REDIS_URL"))
        yield os.environ["REDIS_URL"]
        return
    for service in _provide("redis", STARTERS["redis"]):
        yield service.url


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[Service]:
    yield from _provide("postgresql", STARTERS["postgresql"])


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix) -> None:
    """Point the Django test database at a real PostgreSQL before it is created."""
    from django.conf import settings
    from django.db import connections

    default = settings.DATABASES["default"]
    if default["ENGINE"] == "django.db.backends.postgresql":
        STARTUP_TIMES.append(("postgresql", 0.0, "from DATABASE_URL"))
        return
    if not ON_POSTGRES:
        return
    service = request.getfixturevalue("postgres_service")
    port = int(service.url.rsplit(":", 1)[1].split("/")[0])
    # Update in place: Django's connection handler holds this very dict.
    default.update(
        ENGINE="django.db.backends.postgresql",
        NAME="rideshare",
        USER="postgres",
        PASSWORD="",
        HOST="127.0.0.1",
        PORT=str(port),
        OPTIONS={},
    )
    default.setdefault("TEST", {})["NAME"] = "test_rideshare"
    connections.close_all()
    # Drop this thread's wrapper built on the old settings, if one was built at all.
    with contextlib.suppress(AttributeError):
        del connections["default"]


@pytest.fixture(autouse=True)
def _rate_limit_counts_empty() -> None:
    """No request of an earlier test counts against the rate limits (``frontend.limits``): the
    whole suite comes from one address (the counts are this process's: tests/settings.py)."""
    from django.core.cache import caches

    caches["throttle"].clear()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator:
    """A Redis client whose keys this test puts under ``client.prefix``; they are deleted after."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield client
    keys = list(client.scan_iter(match=f"{client.prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def kafka_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """Return a factory creating topics named for this test only; they are deleted after."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tests")
    created: list[str] = []

    def create(stem: str = "t", partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}.{stem}"
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        # The create response comes before every partition has a leader in the metadata cache.
        admin.wait_for_topics([name], timeout_ms=15_000)
        return name

    yield create
    if created:
        admin.delete_topics(created)
    admin.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> str:
    """Directory for test artifacts (screenshots), kept after the run."""
    path = os.environ.get("TEST_ARTIFACTS_DIR") or os.path.join(os.getcwd(), "artifacts")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's Chromium driven by Playwright, one per session."""
    from devservices import chromium

    try:
        options = chromium.launch_options()
    except ServiceError as exc:
        service_unavailable("chromium", exc.reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django would then refuse the
    # test's own (synchronous) database calls without this flag.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    t0 = time.monotonic()
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(**options)
    except Exception as exc:
        playwright.stop()
        service_unavailable("chromium", f"{type(exc).__name__}: {exc}")
    STARTUP_TIMES.append(("chromium", time.monotonic() - t0, "started"))
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser) -> Iterator:
    """A page of its own; the test fails if the browser refused anything of it under the
    Content-Security-Policy (``page.csp_refused``: Chromium's console reports, which a test
    that provokes one empties), so every page the browser tests walk holds to the policy."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    refused: list[str] = []
    page.csp_refused = refused
    page.on(
        "console",
        lambda message: (
            refused.append(f"{page.url}: {message.text} ({message.location.get('url')})")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not refused, f"refused under the Content-Security-Policy: {refused}"


def pytest_terminal_summary(terminalreporter) -> None:
    if not STARTUP_TIMES:
        return
    terminalreporter.section("real services")
    for name, seconds, how in STARTUP_TIMES:
        terminalreporter.write_line(f"{name:<11} {seconds:6.2f} s  {how}")


# A test that uses a service fixture carries that service's marker, so `-m "not kafka"` works
# without anyone remembering to mark by hand.
FIXTURE_MARKERS = {
    "kafka_bootstrap": "kafka",
    "kafka_topic": "kafka",
    "redis_url": "redis",
    "redis_client": "redis",
    "postgres_service": "postgres",
    "browser": "browser",
    "page": "browser",
}


# Fixtures of pytest-django that open the test database.
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture in fixtures & FIXTURE_MARKERS.keys():
            item.add_marker(FIXTURE_MARKERS[fixture])
        if ON_POSTGRES and (item.get_closest_marker("django_db") or fixtures & DATABASE_FIXTURES):
            item.add_marker("postgres")


@pytest.fixture
def app_store(settings, tmp_path):
    """The app's feature store (``FeatureConfig.from_settings``), fresh for this test."""
    settings.FEAST_PROJECT = f"t{uuid.uuid4().hex[:12]}"
    settings.FEAST_REGISTRY = f"sqlite:///{tmp_path}/registry.sqlite3"
    settings.FEATURES_ONLINE_STORE = "sqlite"
    settings.FEATURES_DATA_DIR = tmp_path / "features"
    from features.repo import apply_repo
    from features.store import FeatureConfig, feature_store

    config = FeatureConfig.from_settings()
    apply_repo(config)
    yield config
    feature_store(config).teardown()
