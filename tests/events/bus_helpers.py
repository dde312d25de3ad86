import time

from events.bus import Message


def drain(consumer, expected: int, timeout: float = 30.0) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:
        received.extend(consumer.poll(timeout=0.5, max_records=expected - len(received)))
    return received
