"""The ML console's performance page: each model's decisions and their quality per period, on
the newest payments, as charts and a table."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from fraud.selectors import scored_event_time_latest
from ml.access import models_viewer_required
from ml.performance import performance_table
from ml.selectors import performance_of

LIMIT = 50000
K = 20


@require_GET
@models_viewer_required
def performance_page(request: HttpRequest) -> HttpResponse:
    """Show per model and period: decided, flagged share, review load, latency, precision,
    recall, average precision and Card Precision@K on the newest payments."""
    now = scored_event_time_latest() or timezone.now()
    frame, period = performance_of(
        now=now, maturity=timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS), limit=LIMIT
    )
    rows = performance_table(
        frame, period=period, k=K, review_minutes=settings.FRAUD_REVIEW_MINUTES
    )
    chart = [{**row, "period": row["period"].isoformat()} for row in rows]
    return render(
        request,
        "ml/performance.html",
        {
            "rows": list(reversed(rows)),
            "chart": {"period": period, "rows": chart},
            "period": "hour" if period == "h" else "day",
            "payments": len(frame),
            "limit": LIMIT,
            "k": K,
            "now": timezone.now(),
        },
    )
