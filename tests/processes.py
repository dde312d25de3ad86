"""Components run as their own processes in integration tests (``manage.py relay``, ``manage.py
consume <name>``), as in production: their environment, start, stop and kill -9."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from features.store import FeatureConfig
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[1]


# Set by Feast in this process when it is imported (a directory of its own for its metrics): a
# child inheriting them would count its metrics in files shared with every other child.
FEAST_SET = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def manage_env(**variables: str) -> dict[str, str]:
    """Return this process's environment with the Django settings of a child process and
    ``variables`` on top."""
    return {
        **{k: v for k, v in os.environ.items() if k not in FEAST_SET},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "tests-only",
        "LOG_LEVEL": "WARNING",
        **variables,
    }


def database_env() -> dict[str, str]:
    """Return the variables pointing a child process at this test's database; fail (never
    skip) when the test database is SQLite, which a second process cannot share here."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        service_unavailable("postgresql", "the test database is SQLite (TEST_DATABASE=sqlite)")
    return {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}


def features_env(config: FeatureConfig) -> dict[str, str]:
    """Return the variables pointing a child process at the feature store of ``config``."""
    return {
        "REDIS_URL": config.redis_url,
        "FEATURES_ONLINE_STORE": config.online,
        "FEAST_PROJECT": config.project,
        "FEAST_REGISTRY": config.registry_url,
        "FEATURES_DATA_DIR": str(config.data_dir),
    }


def manage_start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``manage.py <argv>`` with its output appended to ``log``; faulthandler on, so a
    hung child can be made to print every thread's stack."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "manage.py", *argv],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


def manage_stop(process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """SIGTERM and wait; a process that does not stop dumps its threads' stacks and fails."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        process.wait(timeout=10)
        pytest.fail(f"{process.args[3:]} did not stop on SIGTERM:\n{log.read_text()[-5000:]}")


def kill9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@contextlib.contextmanager
def redis_database(redis_url: str, db: int) -> Iterator[str]:
    """Yield the URL of database ``db`` of the test Redis (a Celery broker's, say), emptied
    before and after."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
