"""The analyst's live list of flagged payments: what a flag is, how the list is read, the push.

A flag is a ``FraudScore`` whose decision (by the champion or a canary: shadow models write
``ShadowScore`` rows and never flag) is review or decline. The scorer calls
``flags_broadcast(score_ids=...)`` after its commit; the websocket consumers
(``fraud.consumers``) then read the new flags from the database and send them. The message names
no row's content, so a page never shows what the database does not hold. With the in-memory
channel layer the scorer's message never reaches the web process, which is why every consumer
also reads the database about once a second: the push only makes a flag arrive sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from fraud.models import Decision, FraudScore

logger = logging.getLogger(__name__)

FLAGGED = (Decision.REVIEW, Decision.DECLINE)
FLAGS_GROUP = "fraud-flags"
# The message type; Channels calls the consumer's ``fraud_flags`` method for it.
FLAGS_NEW = "fraud.flags"
# The page lists this many flags; a page that was away longer catches up on this many.
PAGE_SIZE = 100


def flags_recent(*, limit: int = PAGE_SIZE) -> list[FraudScore]:
    """Return the newest ``limit`` flags, newest first."""
    return list(FraudScore.objects.filter(decision__in=FLAGGED).order_by("-id")[:limit])


def flag_ids_after(*, after_id: int, limit: int) -> list[int]:
    """Return the ids of the newest ``limit`` flags whose id is above ``after_id``, newest first."""
    flags = FraudScore.objects.filter(decision__in=FLAGGED, id__gt=after_id).order_by("-id")
    return list(flags.values_list("id", flat=True)[:limit])


def flags_by_id(*, ids: Iterable[int]) -> list[FraudScore]:
    """Return the flags among ``ids``, oldest first."""
    return list(FraudScore.objects.filter(decision__in=FLAGGED, id__in=list(ids)).order_by("id"))


def flag_row_html(flag: FraudScore) -> str:
    """Return the table row of ``flag`` as the page shows it (``fraud/_flag_row.html``)."""
    return render_to_string("fraud/_flag_row.html", {"flag": flag})


def _loop_runs_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def flags_broadcast(*, score_ids: Sequence[int]) -> None:
    """Tell the open analyst pages that the scores ``score_ids`` were committed.

    Call it after the commit, with the ids of the new flags (other ids are harmless: the pages
    read only flags). Block until the channel layer took the message. A channel layer that is
    down is logged and otherwise ignored: the scores are committed and every page reads them
    from the database within about a second anyway, so the scorer must not fail for it.
    """
    layer = get_channel_layer()
    if layer is None or not score_ids:
        return
    send = async_to_sync(layer.group_send)
    message = {"type": FLAGS_NEW, "score_ids": [int(i) for i in score_ids]}
    try:
        if _loop_runs_here():
            # A synchronous caller on a thread that runs an event loop (Playwright's sync API,
            # a notebook): async_to_sync will not block such a thread, so send from another.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(send, FLAGS_GROUP, message).result()
        else:
            send(FLAGS_GROUP, message)
    except Exception:
        logger.warning("fraud flags: the channel layer did not take the push", exc_info=True)
