from django.apps import AppConfig


class FraudConfig(AppConfig):
    """The fraud room: the scorer, decisions, explanations, review queue and deployments."""

    name = "fraud"
    verbose_name = "Fraud"
