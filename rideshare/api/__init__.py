"""The REST API (django-ninja), mounted at ``/api/``; OpenAPI at ``/api/openapi.json``.

Callers authenticate with a bearer token (``POST /api/auth/token``) or, in the browser, with
the Django session, CSRF enforced. Rider actions need an ``X-Device-Id`` header. Errors answer
``{"code", "detail"}``, plus ``errors`` (field -> message) for invalid input and the fields the
error carries (``fee_cents``, ``decline_code``, ...).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import HttpError, ValidationError

from frontend.api_errors import field_name
from rideshare.api import drivers, processor, riders, trips
from rideshare.api.auth import BearerToken, BrowserSession
from rideshare.api.context import DeviceIdRequired
from rideshare.errors import (
    CancellationFeeUnconfirmed,
    CardDeclined,
    DomainError,
    DriverUnavailable,
    IllegalTransition,
    InvalidInput,
    NotPermitted,
    NotTripDriver,
    PaymentStateError,
    UnknownPayment,
)

# The most specific class listed wins (a subclass is looked up before its base).
STATUS_OF: dict[type[DomainError], int] = {
    DeviceIdRequired: 400,
    CardDeclined: 402,
    NotPermitted: 403,
    NotTripDriver: 403,
    InvalidInput: 422,
    IllegalTransition: 409,
    CancellationFeeUnconfirmed: 409,
    DriverUnavailable: 409,
    PaymentStateError: 409,
    UnknownPayment: 404,
}

# What any operation may answer through the exception handlers below, besides what its own
# responses list: an unreadable or invalid request (any operation), and on an authenticated
# one a missing or unknown credential and a caller of the wrong kind (a rider on a driver's
# endpoint).
COMMON_RESPONSES = {
    "400": "The request cannot be read (its body is not JSON, or a header is missing).",
    "422": "The request is not valid.",
}
AUTHENTICATED_RESPONSES = {
    "401": "No valid credentials.",
    "403": "Not allowed for this caller.",
}


class RideshareAPI(NinjaAPI):
    """Ninja's API with the answers every operation shares written into its OpenAPI schema, so
    the schema says every status a client can get (schemathesis holds the API to it)."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                shared = dict(COMMON_RESPONSES)
                if operation.get("security"):
                    shared.update(AUTHENTICATED_RESPONSES)
                for status, description in shared.items():
                    # Ninja keys responses by int; one status must not appear twice.
                    if status not in responses and int(status) not in responses:
                        responses[int(status)] = {"description": description, "content": error}
        return schema


api = RideshareAPI(
    title="Rideshare API",
    version="1",
    description=__doc__,
    auth=[BearerToken(), BrowserSession()],
    # Swagger UI from ninja's bundled static files (ninja is an installed app): no CDN. Its
    # validator badge would send the schema to validator.swagger.io; switch it off.
    docs=Swagger(settings={"validatorUrl": None}),
    urls_namespace="api",
)
api.add_router("", riders.router)
api.add_router("", trips.router)
api.add_router("", drivers.router)
api.add_router("", processor.router)


def _status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


INVALID = "The request is not valid."
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    429: "rate_limited",
}


@api.exception_handler(DomainError)
def domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    if isinstance(exc, InvalidInput):
        body = {"code": exc.code, "detail": INVALID, "errors": exc.errors}
    else:
        body = {"code": exc.code, "detail": exc.message, **exc.details()}
    return api.create_response(request, body, status=_status_of(exc))


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    body = {"code": HTTP_CODES.get(exc.status_code, "error"), "detail": exc.message}
    return api.create_response(request, body, status=exc.status_code)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # The same answer whether the row does not exist or belongs to someone else.
    return api.create_response(request, {"code": "not_found", "detail": "Not found."}, status=404)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, str] = {}
    for error in exc.errors:
        field = field_name(tuple(error.get("loc", ())))
        errors[field] = f"{errors[field]}; {error['msg']}" if field in errors else error["msg"]
    body = {"code": "invalid", "detail": INVALID, "errors": errors}
    return api.create_response(request, body, status=422)
