"""Celery tasks of the booking; each calls one service."""

from __future__ import annotations

from celery import shared_task

from rideshare.services.verdicts import captures_overdue_settle


@shared_task(name="rideshare.captures_overdue", ignore_result=True)
def captures_overdue() -> int:
    """Capture the fares whose capture checkpoint's verdict is overdue
    (``rideshare.services.verdicts.captures_overdue_settle``); return how many. Safe to
    repeat."""
    return captures_overdue_settle()
