"""Rate limits on what a person or a script could hammer (signing in, API tokens, booking):
django-ninja's throttle (each client's request times within the period, kept in a cache), its
rate read from a setting at each request, answered 429 with ``Retry-After``.

Counted in the ``throttle`` cache: Redis when ``REDIS_URL`` is set, so every web process counts
together, else this process's memory. A client is its address (``NINJA_NUM_PROXIES``: behind a
TLS proxy the address that proxy appends to ``X-Forwarded-For``, never one the client wrote) or,
for a limit per user, the signed-in user.

A count that cannot be kept (Redis away: restarting, failing over) lets the request through,
logged: a rate limit that answered 500 would take signing in and booking down with its store,
and django-axes' lockout of repeated failed logins, kept in the database, still holds.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from ninja.throttling import SimpleRateThrottle
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from frontend.lockout import too_many_page

CACHE = "throttle"
# What the cache raises when its store is away.
STORE_AWAY = (RedisConnectionError, RedisTimeoutError, OSError)

log = logging.getLogger(__name__)


def _per_thread(name: str) -> property:
    # An attribute of a ``Limit`` kept in its thread-local ``_request``.
    return property(
        lambda self: getattr(self._request, name, None),
        lambda self, value: setattr(self._request, name, value),
    )


class Limit(SimpleRateThrottle):
    """The limit named by the setting ``setting``: a rate such as ``20/m`` (``s``, ``m``, ``h``,
    ``d``), or empty for none. Per client address, or with ``per_user`` per signed-in user
    (``request.auth``, as the API's authentication sets it; an anonymous request: its
    address)."""

    def __init__(self, setting: str, *, per_user: bool = False):
        # Not ninja's constructor: it fixes the rate once, when the routes are declared.
        self.setting = setting
        self.scope = setting.lower()
        self.per_user = per_user
        self._request = threading.local()

    # Ninja's throttle keeps a request's rate, cache key, history and time on the instance from
    # ``allow_request`` to ``wait``, and one instance serves every request of a route: kept per
    # thread, two requests served at once never count against each other's key.
    num_requests = _per_thread("num_requests")
    duration = _per_thread("duration")
    key = _per_thread("key")
    history = _per_thread("history")
    now = _per_thread("now")

    @property
    def cache(self) -> Any:  # type: ignore[override]
        return caches[CACHE]

    def allow_request(self, request: HttpRequest) -> bool:
        rate = getattr(settings, self.setting, "")
        if not rate:
            return True
        self.num_requests, self.duration = self.parse_rate(rate)
        try:
            return super().allow_request(request)
        except STORE_AWAY as exc:
            log.warning("%s: the count cannot be kept (%s); request let through", self.scope, exc)
            return True

    def get_cache_key(self, request: HttpRequest) -> str:
        user = getattr(request, "auth", None) if self.per_user else None
        pk = getattr(user, "pk", None)
        who = f"user:{pk}" if pk is not None else f"address:{self.get_ident(request)}"
        return f"limit:{self.scope}:{who}"

    def retry_after(self) -> int:
        """Whole seconds until the refused client may try again (after ``allow_request``)."""
        return max(1, math.ceil(self.wait() or self.duration or 1))


def limited_page(request: HttpRequest, limit: Limit, what: str) -> HttpResponse:
    """The page answering a person refused by ``limit`` (429, ``Retry-After``)."""
    seconds = limit.retry_after()
    wait = f"{seconds} second{'s' if seconds != 1 else ''}"
    detail = f"Too many {what} from your address. Try again in {wait}."
    return too_many_page(request, detail, seconds)
