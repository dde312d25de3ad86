"""Online feature reads with a time budget: a store that is down or slow degrades a batch
instead of stalling the scorer.

With Feast 0.67 and redis-py 7, Feast builds its Redis client with no socket timeout and
redis-py's default retries (3, exponential backoff with jitter), so one read with Redis down
blocks for seconds and a Redis that stops answering blocks it forever (docs/performance.md). So:

- the Redis client of the store gets socket timeouts equal to the budget and no retry: a
  Redis that is down fails at once, one that hangs fails when its reply is a budget late. The
  read runs on the caller's thread: a hop to a worker thread and back cost two more wake-ups
  per batch, each a wait for a core on a busy machine;
- on another store (SQLite: a file whose lock a writer can hold for seconds) the read runs in
  a worker thread and the caller waits at most the budget; a read still running when the next
  batch comes is not waited for either (that batch is degraded too).

Feast refreshes its registry cache inside a read once the cache is older than its ttl, and on
the SQL registry that refresh spends a batch's budget (docs/performance.md), so a background
thread refreshes it well before (``REGISTRY_REFRESH_S``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from events.bus import EndsRequest
from features.serving import ServedVector, online_vector
from features.store import FeatureConfig, feature_store
from features.stream_serving import Served, StreamServing

log = logging.getLogger(__name__)

# Under the registry cache ttl of ``features.store.repo_config`` (60 s).
REGISTRY_REFRESH_S = 20.0
# A first read loads the registry and the store's clients: not within a batch's budget.
WARM_TIMEOUT_S = 30.0


def redis_client_bound(config: FeatureConfig, *, timeout_s: float) -> None:
    """Give the Redis online store of ``config`` a client that fails within ``timeout_s`` and
    never retries. No-op on other stores."""
    if config.online != "redis":
        return
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    online = feature_store(config).provider.online_store
    # Feast exposes no setting for these (its connection string cannot carry a Retry), so its
    # lazily built client is replaced with one that has them.
    online._client = Redis.from_url(
        config.redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


class FeatureReader:
    """Reads served vectors for a batch within ``timeout_s``; ``read`` returns ``None`` when the
    store failed or did not answer in time, with the reason in ``last_error``."""

    def __init__(
        self,
        config: FeatureConfig,
        *,
        service: str,
        timeout_s: float,
        stream: StreamServing | None = None,
    ):
        self.config = config
        self.service = service
        self.timeout_s = timeout_s
        # Serves the stream views at each payment's instant (``features.stream_serving``); None:
        # as the online store holds them, unmarked.
        self.stream = stream
        self.last_error = ""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-read")
        self._running: Future | None = None
        self._stop = threading.Event()
        redis_client_bound(config, timeout_s=timeout_s)
        self._refresher = threading.Thread(
            target=self._refresh_registry, name="feast-registry-refresh", daemon=True
        )
        self._refresher.start()

    def _refresh_registry(self) -> None:
        store = feature_store(self.config)
        while not self._stop.wait(REGISTRY_REFRESH_S):
            try:
                # Swaps the cached registry in one assignment: reads in flight keep theirs.
                store.registry.refresh(self.config.project)
            except Exception:
                log.warning("feature registry refresh failed", exc_info=True)

    def warm(self, request: Mapping[str, Any] | None = None) -> bool:
        """Make a first read with no budget (registry, connections); return whether the store
        answered within ``WARM_TIMEOUT_S``."""
        probe = request or {"card_id": "warm-up", "rider_id": "warm-up", "pickup_zone": ""}
        future = self._pool.submit(online_vector, self.config, [probe], self.service)
        try:
            future.result(timeout=WARM_TIMEOUT_S)
        except Exception as exc:
            log.warning("feature store did not answer the warm-up read: %s", exc)
            return False
        return True

    def read(
        self,
        requests: Sequence[Mapping[str, Any]],
        served: Sequence[Served] = (),
        ends: EndsRequest | None = None,
    ) -> list[ServedVector] | None:
        """Return the served vector of each of ``requests`` (payment payloads), or ``None``;
        ``served``: the payment events, applied to the window state first; ``ends``: this
        batch's ``prefetch``."""
        if self.config.online == "redis":
            try:
                vectors = self._read(requests, served, ends)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                return None
            self.last_error = ""
            return vectors
        if self._running is not None and not self._running.done():
            self.last_error = "the previous read has not finished"
            return None
        self._running = self._pool.submit(self._read, requests, served, ends)
        try:
            vectors = self._running.result(timeout=self.timeout_s)
        except FutureTimeout:
            self.last_error = f"no answer within {self.timeout_s * 1000:.0f} ms"
            return None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None
        self.last_error = ""
        return vectors

    def prefetch(self) -> EndsRequest | None:
        """Start what the next ``read`` can ask before its requests are known (the log's ends:
        ``StreamServing.prefetch``) and return it for that read's ``ends``; None when there is
        nothing to start or it failed (the read asks again and reports a failure)."""
        if self.stream is None:
            return None
        try:
            return self.stream.prefetch()
        except Exception as exc:
            log.debug("feature read prefetch failed: %s", exc)
            return None

    def _read(
        self,
        requests: Sequence[Mapping[str, Any]],
        served: Sequence[Served],
        ends: EndsRequest | None,
    ) -> list[ServedVector]:
        return online_vector(
            self.config, requests, self.service, stream=self.stream, served=served, ends=ends
        )

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
