"""Turn SIGTERM and SIGINT into a stop flag, so a stream process finishes its batch and exits."""

import signal
from threading import Event


def stop_on_signals() -> Event:
    stop = Event()

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
