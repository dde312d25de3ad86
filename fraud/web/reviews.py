"""The review queue and the case page: analysts claim, note and decide reviews.

Thin: each view parses the request, calls one service or read, and renders. A refused action
(another analyst's claim, a closed review, an unknown outcome) answers 409 or 422 with the
reason in words, on the page the analyst was on; nothing is written then.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from fraud.access import analyst_required
from fraud.cases import QueueFilter, review_case, review_next, reviews_queue
from fraud.models import ReviewItem
from fraud.services.reviews import (
    ReviewError,
    claim_holder,
    claim_lapse,
    review_claim,
    review_decide,
    review_note_add,
    review_release,
    reviews_decide,
)

PAGE_SIZE = 50
# One key per outcome on the case page and the queue (``?`` shows them).
KEYS = {"a": "approved", "f": "confirmed_fraud", "l": "legitimate", "r": "refunded_as_fraud"}


def _filters(request: HttpRequest) -> QueueFilter:
    def number(name: str, cast, default):
        try:
            return max(cast(request.GET.get(name) or default), 0)
        except ValueError:
            return default

    claim = request.GET.get("claim", "all")
    return QueueFilter(
        claim=claim if claim in ("all", "mine", "unclaimed") else "all",
        min_amount_cents=round(number("min_amount", float, 0) * 100),
        min_score=min(number("min_score", float, 0.0), 1.0),
        zone=request.GET.get("zone", "").strip()[:32],
    )


@require_GET
@analyst_required
def queue(request: HttpRequest) -> HttpResponse:
    """List the open reviews by priority (escalated first, then score x amount, then age)."""
    filters = _filters(request)
    reviews = reviews_queue(analyst_id=request.user.pk, filters=filters)
    now = timezone.now()
    rows = list(reviews[:PAGE_SIZE])
    for row in rows:
        row.holder = claim_holder(row, now=now)
        row.at_stake_cents = round(row.priority)
    return render(
        request,
        "fraud/queue.html",
        {
            "rows": rows,
            "total": reviews.count(),
            "filters": filters,
            "min_amount": request.GET.get("min_amount", ""),
            "keys": KEYS,
            "outcomes": ReviewItem.Outcome.choices,
            "now": now,
        },
    )


@require_GET
@analyst_required
def case(request: HttpRequest, review_id: int) -> HttpResponse:
    """Show a review's case; an open one is claimed by whoever opens it, unless another
    analyst holds it (then the page says who, and its decisions are disabled)."""
    review = get_object_or_404(ReviewItem.objects.select_related("score"), pk=review_id)
    taken = None
    if review.status == ReviewItem.Status.OPEN:
        try:
            review = review_claim(review=review, analyst=request.user)
        except ReviewError as exc:
            taken = exc.message
    return _case_page(request, review, taken=taken)


def _case_page(
    request: HttpRequest, review: ReviewItem, *, taken: str | None, status: int = 200
) -> HttpResponse:
    """Render ``review``'s case; ``taken`` says why it cannot be decided now."""
    return render(
        request,
        "fraud/case.html",
        {
            "case": review_case(review=review),
            "taken": taken,
            "keys": KEYS,
            "outcomes": ReviewItem.Outcome.choices,
        },
        status=status,
    )


def _next_url(request: HttpRequest, review: ReviewItem) -> str:
    following = review_next(
        analyst_id=request.user.pk, after=review, now=timezone.now(), claim_lapse=claim_lapse()
    )
    if following is None:
        return reverse("fraud:queue")
    return reverse("fraud:case", args=[following.pk])


@require_POST
@analyst_required
def decide(request: HttpRequest, review_id: int) -> HttpResponse:
    """Decide a review with the posted ``outcome`` (and ``note``), then open the next one."""
    review = get_object_or_404(ReviewItem, pk=review_id)
    outcome = request.POST.get("outcome", "")
    try:
        review_decide(
            review=review,
            analyst=request.user,
            outcome=outcome,
            note=request.POST.get("note", ""),
        )
    except ReviewError as exc:
        return _refused(request, review, exc)
    messages.success(request, f"Review closed: {ReviewItem.Outcome(outcome).label.lower()}.")
    return redirect(_next_url(request, review))


def _refused(request: HttpRequest, review: ReviewItem, exc: ReviewError) -> HttpResponse:
    review.refresh_from_db()
    return _case_page(request, review, taken=exc.message, status=exc.status)


@require_POST
@analyst_required
def release(request: HttpRequest, review_id: int) -> HttpResponse:
    """Give the review back to the queue."""
    review_release(review=get_object_or_404(ReviewItem, pk=review_id), analyst=request.user)
    messages.info(request, "Review released to the queue.")
    return redirect("fraud:queue")


@require_POST
@analyst_required
def note(request: HttpRequest, review_id: int) -> HttpResponse:
    """Add a note to the review's case."""
    review = get_object_or_404(ReviewItem, pk=review_id)
    try:
        review_note_add(review=review, analyst=request.user, text=request.POST.get("text", ""))
    except ReviewError as exc:
        return _refused(request, review, exc)
    messages.success(request, "Note saved.")
    return redirect("fraud:case", review_id=review.pk)


@require_POST
@analyst_required
def bulk(request: HttpRequest) -> HttpResponse:
    """Decide the selected reviews with one outcome; say which could not be (taken, closed)."""
    outcome = request.POST.get("outcome", "")
    if outcome not in ReviewItem.Outcome.values:
        messages.error(request, "Choose what to decide the selected reviews as.")
        return redirect("fraud:queue")
    ids = [int(i) for i in request.POST.getlist("review") if i.isdigit()]
    if not ids:
        messages.error(request, "Select the reviews to decide first.")
        return redirect("fraud:queue")
    chosen = list(ReviewItem.objects.filter(pk__in=ids).order_by("pk"))
    decided, refused = reviews_decide(reviews=chosen, analyst=request.user, outcome=outcome)
    label = ReviewItem.Outcome(outcome).label.lower()
    if decided:
        count = len(decided)
        messages.success(request, f"{count} review{'' if count == 1 else 's'} closed: {label}.")
    for review, reason in refused:
        messages.error(request, f"Review {review.pk} not decided: {reason}")
    return redirect("fraud:queue")
