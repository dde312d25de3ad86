from django.apps import AppConfig


class MlConfig(AppConfig):
    """The ml room: datasets from logs and labels, training, the model registry, promotion."""

    name = "ml"
    verbose_name = "Machine learning"
