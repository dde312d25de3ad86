"""How API callers authenticate: a bearer token (API clients) or the Django session (browser)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from rideshare import selectors


class BearerToken(HttpBearer):
    """``Authorization: Bearer <key>`` with a key from ``POST /api/auth/token``."""

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        return selectors.api_token_user(key=token)


class BrowserSession(SessionAuth):
    """Django's session login, with Django's CSRF check enforced (ninja's ``django_auth``).

    A request without a session cookie is passed over unchecked: it has no session to forge,
    so a token client with a wrong key is told 401 rather than failing the CSRF check.
    """

    def _get_key(self, request: HttpRequest) -> str | None:
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)
