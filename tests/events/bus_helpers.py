import time

from events.bus import Message


def drain(consumer, expected: int, timeout: float = 30.0) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:
        received.extend(consumer.poll(timeout=0.5, max_records=expected - len(received)))
    return received


def values_by_key(messages: list[Message], keys: str) -> dict[str, list[bytes]]:
    """The values of ``messages`` of each of ``keys`` (one character each), in order read."""
    return {key: [m.value for m in messages if m.key == key] for key in keys}


def numbered(keys: str, count: int) -> dict[str, list[bytes]]:
    """The values ``key:0`` .. ``key:count-1`` of each of ``keys``: as the tests send them."""
    return {key: [f"{key}:{i}".encode() for i in range(count)] for key in keys}
