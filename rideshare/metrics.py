"""``/metrics``: operational gauges in Prometheus' text format."""

from django.http import HttpRequest, HttpResponse

from events.outbox import outbox_backlog
from frontend.access import metrics_access


@metrics_access
def metrics(request: HttpRequest) -> HttpResponse:
    backlog = outbox_backlog()
    lines = [
        "# HELP outbox_backlog_events Events committed to the outbox and not yet on the stream.",
        "# TYPE outbox_backlog_events gauge",
        f"outbox_backlog_events {backlog.events}",
        "# HELP outbox_oldest_age_seconds Age of the oldest unpublished outbox event.",
        "# TYPE outbox_oldest_age_seconds gauge",
        f"outbox_oldest_age_seconds {backlog.oldest_age_seconds:.3f}",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
