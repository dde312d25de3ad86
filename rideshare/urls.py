from django.contrib import admin
from django.urls import path

from rideshare import views
from rideshare.api import api
from rideshare.metrics import metrics

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("city/zones.geojson", views.city_zones, name="city-zones"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]
