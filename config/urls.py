"""The project's URLs: each room's pages, included by dotted path, and the admin."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from fraud.api import api as fraud_api

urlpatterns = [
    # The booking domain: rider web UI, driver console, REST API, health and metrics.
    path("", include("rideshare.urls")),
    # Staff only: the simulator's load runs.
    path("simulator/", include("simulator.urls")),
    # The feature platform's gauges.
    path("metrics/features", include("features.urls")),
    # The fraud desk's JSON API (its own namespace, so ninja's schema view can reverse it).
    path("fraud/api/", fraud_api.urls),
    # The analyst's flagged payments (staff only).
    path("fraud/", include("fraud.urls")),
    # The ML console: analysts read, ML engineers and staff act.
    path("ml/", include("ml.urls")),
    # Staff only, wherever it is mounted (DJANGO_ADMIN_PATH).
    path(f"{settings.ADMIN_PATH}/", admin.site.urls),
]
