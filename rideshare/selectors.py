"""Read-only queries of the booking side."""

from django.conf import settings
from django.db import DatabaseError, connection


def platform_status() -> dict:
    """Return which backends this process is configured with and whether its database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = {"ok": True, "vendor": connection.vendor}
    except DatabaseError as exc:
        database = {"ok": False, "vendor": connection.vendor, "error": str(exc)}
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split(":", 1)[0]
    return {
        "database": database,
        "event_bus": settings.EVENT_BUS,
        "channel_layer": layer,
        "celery_broker": broker,
    }
