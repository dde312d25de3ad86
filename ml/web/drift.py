"""The ML console's drift page: how far the payments now are from what the champion learned
(the PSI of its score and of each input against its training reference, per hour, with the
drift trigger's threshold), and whether the features served equal those recomputed offline."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from features.consistency.served import last_served_report
from features.store import FeatureConfig
from ml.access import models_viewer_required
from ml.selectors import champion_get, drift_over_time

LIMIT = 20000
SHOWN = 6


@require_GET
@models_viewer_required
def drift_page(request: HttpRequest) -> HttpResponse:
    """Show the champion's drift per hour (score and the inputs that moved most) and the
    latest served-vs-offline report."""
    champion = champion_get()
    periods = drift_over_time(champion, limit=LIMIT) if champion is not None else []
    latest = periods[-1][2] if periods else {}
    worst = [name for name in latest if name != "score"][: SHOWN - 1]
    shown = ["score", *worst] if latest else []
    chart = {
        "threshold": settings.ML_TRIGGER_MAX_PSI,
        "periods": [start.isoformat() for start, _, _ in periods],
        "series": {name: [psi.get(name) for _, _, psi in periods] for name in shown},
    }
    return render(
        request,
        "ml/drift.html",
        {
            "champion": champion,
            "latest": list(latest.items()),
            "latest_payments": periods[-1][1] if periods else 0,
            "threshold": settings.ML_TRIGGER_MAX_PSI,
            "chart": chart,
            "served": last_served_report(FeatureConfig.from_settings()),
            "now": timezone.now(),
        },
    )
