"""The Django project (settings, urls, asgi, Celery app) and the ride-booking domain."""

from rideshare.celery import app as celery_app

__all__ = ["celery_app"]
