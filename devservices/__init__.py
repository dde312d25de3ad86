"""Real services for tests, benchmarks and local runs: Kafka, Redis, PostgreSQL, Chromium.

One module serves the pytest fixtures (``tests/conftest.py``), ``make services`` (``python -m
devservices up``) and the benchmarks, so all three run against the same real servers.
"""

import os

from devservices.base import Service, ServiceError

__all__ = ["ENV_VARIABLES", "STARTERS", "Service", "ServiceError", "provide"]


def _kafka():
    from devservices import kafka

    return kafka.start()


def _redis():
    from devservices import redis

    return redis.start()


def _postgres():
    from devservices import postgres

    return postgres.start()


# service name -> function that starts it and returns a ready Service
STARTERS = {"postgresql": _postgres, "redis": _redis, "kafka": _kafka}

# service name -> the variable that points the app at an instance of it
ENV_VARIABLES = {
    "postgresql": "DATABASE_URL",
    "redis": "REDIS_URL",
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
}


def provide(names: list[str], started: list[Service]) -> dict[str, str]:
    """Return the environment pointing at each named service: the instance the environment
    already names, or one started here (appended to ``started``, for the caller to stop)."""
    env: dict[str, str] = {}
    for name in names:
        variable = ENV_VARIABLES[name]
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
        else:
            service = STARTERS[name]()
            started.append(service)
            env.update(service.env)
    return env
