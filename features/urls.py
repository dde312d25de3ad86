from django.urls import path

from features.metrics import metrics

urlpatterns = [path("", metrics, name="feature-metrics")]
