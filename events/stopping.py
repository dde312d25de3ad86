"""Turn SIGTERM and SIGINT into a stop flag, so a long-running process finishes its batch (or its
wait) and exits cleanly, and restore the handlers it replaced once it is done.

Pure Python: no Django. The one copy for every process (stream consumers, the relay, the
simulator, devservices).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[threading.Event]:
    """Yield a flag that ``signals`` set instead of interrupting; on exit put back the handlers
    that were there. Off the main thread (where Python refuses signal handlers) the flag is
    only set by whoever holds it."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
