"""``/metrics``: the web process's metrics (``events.telemetry``) and the outbox's gauges, in
Prometheus' text format.

- ``outbox_backlog_events``: events committed to the outbox and not yet on the stream;
- ``outbox_oldest_age_seconds``: the age of the oldest of them (0 when there is none).
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from events.outbox import outbox_backlog
from events.telemetry import exposition, process_registry
from frontend.access import metrics_access


class OutboxCollector(Collector):
    """The outbox's backlog, read from the database at each scrape."""

    def collect(self):
        backlog = outbox_backlog()
        yield GaugeMetricFamily(
            "outbox_backlog_events",
            "Events committed to the outbox and not yet on the stream.",
            value=backlog.events,
        )
        yield GaugeMetricFamily(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox event.",
            value=backlog.oldest_age_seconds,
        )


OUTBOX = CollectorRegistry(auto_describe=False)
OUTBOX.register(OutboxCollector())


@metrics_access
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        exposition(process_registry(settings.METRICS_MULTIPROCESS_DIR), OUTBOX),
        content_type=CONTENT_TYPE_LATEST,
    )
