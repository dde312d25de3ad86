"""Reading a Prometheus endpoint in tests: its samples by name and labels."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of ``text`` (Prometheus' text format): (name, sorted labels) ->
    value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    """Return the value of sample ``name`` with exactly ``labels`` in ``text``, ``None`` if
    absent."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


def scrape(url: str, *, timeout_s: float = 5.0) -> str:
    """Return the text a metrics endpoint answers at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
        return response.read().decode()


def process_sample(name: str, **labels: str) -> float | None:
    """Return the value of sample ``name`` with exactly ``labels`` in this process's metrics
    (``prometheus_client``'s default registry), ``None`` if absent."""
    from prometheus_client import REGISTRY, generate_latest

    return sample(generate_latest(REGISTRY).decode(), name, **labels)


def answers(url: str) -> bool:
    """Return whether a metrics endpoint answers at ``url`` now."""
    try:
        scrape(url, timeout_s=2)
    except OSError:
        return False
    return True
