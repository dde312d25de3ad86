from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    """The feature platform: management commands and Celery tasks; no models."""

    name = "features"
    verbose_name = "Features"
