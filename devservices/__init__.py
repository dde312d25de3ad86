"""Real services for tests, benchmarks and local runs: Kafka, Redis, PostgreSQL, Chromium.

One module serves the pytest fixtures (``tests/conftest.py``), ``make services`` (``python -m
devservices up``) and the benchmarks, so all three run against the same real servers.
"""

from devservices.base import Service, ServiceError

__all__ = ["STARTERS", "Service", "ServiceError"]


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
