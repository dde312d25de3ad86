"""The fraud desk's JSON API, mounted at ``/fraud/api/``: the open reviews and their decisions.

For tools that work the queue without the pages: a case-management integration, a script that
bulk-closes a backlog, and the simulator's analyst in the live demo (``simulate live``), which
decides the reviews of its own payments from its ground truth. Same rules as the pages: an
analyst (or staff) logged in with the Django session, CSRF enforced on every POST; one service
(``fraud.services.reviews``) decides, so a decision here is a decision there (the outbox event,
the card blocked on confirmed fraud, the booking acting on it). Errors answer
``{"code", "detail"}`` as the booking API does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import SessionAuth

from fraud.access import DENIED, is_analyst
from fraud.cases import QueueFilter, reviews_queue
from fraud.models import ReviewItem
from fraud.services.reviews import ReviewError, review_decide
from frontend.api_errors import field_name

MAX_LIMIT = 500


class AnalystSession(SessionAuth):
    """The Django session of an analyst or staff member (CSRF checked by ninja on writes).

    A logged-in user who is not an analyst is told 403 with the pages' words, not 401."""

    def authenticate(self, request: HttpRequest, key: str | None):
        user = super().authenticate(request, key)
        if user is None:
            return None
        if not is_analyst(user):
            raise HttpError(403, DENIED)
        return user


api = NinjaAPI(
    title="Fraud desk API",
    version="1",
    description=__doc__,
    auth=AnalystSession(),
    urls_namespace="fraud-api",
    docs_url=None,
)


class ReviewOut(Schema):
    id: int
    payment_id: str
    card_id: str
    rider_id: str
    score: float
    amount_cents: int
    currency: str
    pickup_zone: str
    paid_at: datetime
    opened_at: datetime
    escalated: bool
    claimed_by: str | None
    status: str
    outcome: str
    decided_by: str | None
    decided_at: datetime | None


class QueueParams(Schema):
    limit: int = 100
    unclaimed: bool = False


class DecisionIn(Schema):
    outcome: Literal["approved", "legitimate", "refunded_as_fraud", "confirmed_fraud"]
    note: str = ""


class ErrorOut(Schema):
    code: str
    detail: str


def _out(review: ReviewItem) -> ReviewOut:
    score = review.score
    return ReviewOut(
        id=review.pk,
        payment_id=score.payment_id,
        card_id=score.card_id,
        rider_id=score.rider_id,
        score=score.score,
        amount_cents=score.amount_cents,
        currency=score.currency,
        pickup_zone=score.pickup_zone,
        paid_at=score.occurred_at,
        opened_at=review.created_at,
        escalated=review.escalated_at is not None,
        claimed_by=review.claimed_by.get_username() if review.claimed_by else None,
        status=review.status,
        outcome=review.outcome,
        decided_by=review.decided_by.get_username() if review.decided_by else None,
        decided_at=review.decided_at,
    )


@api.get("/reviews", response=list[ReviewOut], summary="The open reviews, in queue order")
def reviews(request: HttpRequest, params: Query[QueueParams]) -> list[ReviewOut]:
    """The open reviews in the queue's order (escalated first, then expected loss, then age),
    at most ``limit`` (1-500); ``unclaimed`` leaves out those another analyst holds."""
    if not 1 <= params.limit <= MAX_LIMIT:
        raise HttpError(422, f"limit must be between 1 and {MAX_LIMIT}.")
    filters = QueueFilter(claim="unclaimed" if params.unclaimed else "all")
    rows = reviews_queue(analyst_id=request.auth.pk, filters=filters).select_related("decided_by")
    return [_out(review) for review in rows[: params.limit]]


@api.post(
    "/reviews/{review_id}/decide",
    response={200: ReviewOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
    summary="Decide a review",
)
def decide(request: HttpRequest, review_id: int, decision: DecisionIn):
    """Close the review with ``outcome``; 409 says who holds it or that it is closed."""
    review = get_object_or_404(ReviewItem.objects.select_related("score"), pk=review_id)
    try:
        review = review_decide(
            review=review, analyst=request.auth, outcome=decision.outcome, note=decision.note
        )
    except ReviewError as exc:
        code = "invalid" if exc.status == 422 else "conflict"
        return Status(exc.status, {"code": code, "detail": exc.message})
    # The service's row: its score and claim read with it, ``decided_by`` the caller.
    return Status(200, _out(review))


CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 422: "invalid"}


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    body = {"code": CODES.get(exc.status_code, "error"), "detail": exc.message}
    return api.create_response(request, body, status=exc.status_code)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    body = {"code": "unauthenticated", "detail": "Log in as an analyst first."}
    return api.create_response(request, body, status=401)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"code": "not_found", "detail": "Not found."}, status=404)


@api.exception_handler(ValidationError)
def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = {field_name(tuple(e["loc"])): e["msg"] for e in exc.errors}
    body = {"code": "invalid", "detail": "The request is not valid.", "errors": errors}
    return api.create_response(request, body, status=422)
