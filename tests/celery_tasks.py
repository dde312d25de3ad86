"""Tasks a Celery worker started by a test also runs (``celery worker -I tests.celery_tasks``):
each leaves its trace in a file the test reads."""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.note", ignore_result=True)
def note(path: str, text: str) -> None:
    with Path(path).open("a") as out:
        out.write(text + "\n")


@shared_task(name="tests.slow_the_first_time", ignore_result=True)
def slow_the_first_time(path: str, seconds: float) -> None:
    """Write ``started``; the first run then sleeps ``seconds`` (long enough to be killed in),
    a later one goes straight on; write ``done``."""
    trace = Path(path)
    first = not trace.exists()
    with trace.open("a") as out:
        out.write("started\n")
    if first:
        time.sleep(seconds)
    with trace.open("a") as out:
        out.write("done\n")
