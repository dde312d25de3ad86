"""The Celery application; configuration comes from Django settings (``CELERY_*``), beat
schedule included, and tasks are discovered in every installed app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("rideshare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
