"""The access matrix: every route of the URL conf, every operation of the REST API and every
websocket route, for every kind of user, with the outcome each must get.

The tables below are the specification; the first tests walk the URL conf, the API's schema and
the websocket router, so a route without an entry (a page added and not thought about) fails,
as does an entry for a route that is gone. Outcomes are classes, not status codes: "ok" is any
answer past the access check (a page, a redirect elsewhere than to the login, a refusal of the
input), "log in" a redirect to a login page or a 401, "forbidden" a 403, "not found" a 404 (another
rider's trip or card answers as if it did not exist). A 5xx fails whatever the row says.

The roles: a rider (who owns the trip and the card in the URLs), another rider, the driver
assigned to that trip, an analyst (the ``analyst`` group), an ML engineer (the ``ml_engineer``
group: the model console, which analysts may read) and staff (the operators'
account, a superuser, as ``seed_demo`` makes it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from config.asgi import application, websocket_urlpatterns
from fraud.models import ListEntry, ReviewItem, Rule
from fraud.services.reviews import analyst_ensure
from ml.services.people import ml_engineer_ensure
from rideshare import services
from rideshare.api import api
from rideshare.services.riders import staff_user_ensure
from simulator.models import SimulationRun
from tests.fraud.live_factories import score_make
from tests.rideshare.factories import DEVICE, bearer, card_make, driver_make, rider_make, trip_make
from tests.rideshare.test_consumers import ORIGIN, fresh_thread, session_cookie

ROLES = ("anonymous", "rider", "other_rider", "driver", "analyst", "ml_engineer", "staff")
OK, LOG_IN, FORBIDDEN, NOT_FOUND = "ok", "log in", "forbidden", "not found"


def outcomes(allowed: Iterable[str], *, refused: str = FORBIDDEN, **exceptions: str) -> dict:
    """A row: ``allowed`` roles get OK, anonymous callers LOG_IN, everyone else ``refused``."""
    allowed = set(allowed)
    row = {role: OK if role in allowed else refused for role in ROLES}
    if "anonymous" not in allowed:
        row["anonymous"] = LOG_IN
    return row | exceptions


EVERYONE = outcomes(ROLES)
RIDERS = outcomes({"rider", "other_rider"})
# The rider's own trip or card; another rider is told it does not exist.
OWNER = outcomes({"rider"}, other_rider=NOT_FOUND)
DRIVERS = outcomes({"driver"})
ANALYSTS = outcomes({"analyst", "staff"})
STAFF = outcomes({"staff"})
ML_VIEWERS = outcomes({"analyst", "ml_engineer", "staff"})
ML_MANAGERS = outcomes({"ml_engineer", "staff"})
# A Prometheus scrape authenticates with METRICS_TOKEN (set below), never with a login.
SCRAPERS = outcomes((), refused=LOG_IN)
# The card processor's endpoints take only its key, whoever is signed in.
PROCESSOR = outcomes((), refused=LOG_IN)
# The admin sends anyone who is not staff to its own login page.
ADMIN = outcomes({"staff"}, refused=LOG_IN)

# route (as the URL conf spells it) -> the requests made to it: (method, URL, expected row).
# URLs name the world's objects in braces: {trip}, {card}, {review}, {entry}, {rule}, {run}.
PAGES: dict[str, list[tuple[str, str, dict]]] = {
    "": [("GET", "/", EVERYONE)],
    "healthz": [("GET", "/healthz", EVERYONE)],
    "metrics": [("GET", "/metrics", SCRAPERS)],
    "metrics/features": [("GET", "/metrics/features", SCRAPERS)],
    "city/zones.geojson": [("GET", "/city/zones.geojson", EVERYONE)],
    "api/openapi.json": [("GET", "/api/openapi.json", EVERYONE)],
    "api/docs": [("GET", "/api/docs", EVERYONE)],
    "signup/": [("GET", "/signup/", EVERYONE), ("POST", "/signup/", EVERYONE)],
    "login/": [("GET", "/login/", EVERYONE), ("POST", "/login/", EVERYONE)],
    "logout/": [("POST", "/logout/", EVERYONE)],
    "wallet/": [("GET", "/wallet/", RIDERS), ("POST", "/wallet/", RIDERS)],
    "wallet/cards/<uuid:card_id>/remove": [("POST", "/wallet/cards/{card}/remove", OWNER)],
    "ride/": [("GET", "/ride/", RIDERS)],
    "ride/quote": [("POST", "/ride/quote", RIDERS)],
    "ride/request": [("POST", "/ride/request", RIDERS)],
    "trips/": [("GET", "/trips/", RIDERS)],
    "trips/<uuid:trip_id>/": [("GET", "/trips/{trip}/", OWNER)],
    "trips/<uuid:trip_id>/cancel": [
        ("GET", "/trips/{trip}/cancel", OWNER),
        ("POST", "/trips/{trip}/cancel", OWNER),
    ],
    "trips/<uuid:trip_id>/receipt": [("GET", "/trips/{completed}/receipt", OWNER)],
    "driver/": [("GET", "/driver/", DRIVERS)],
    "driver/waiting": [("GET", "/driver/waiting", DRIVERS)],
    "driver/trips/<uuid:trip_id>/<slug:step>": [("POST", "/driver/trips/{trip}/pick-up", DRIVERS)],
    "simulator/": [("GET", "/simulator/", STAFF), ("POST", "/simulator/", STAFF)],
    "simulator/runs": [("GET", "/simulator/runs", STAFF)],
    "simulator/runs/<int:run_id>/stop": [("POST", "/simulator/runs/{run}/stop", STAFF)],
    "fraud/": [("GET", "/fraud/", ANALYSTS)],
    "fraud/reviews/": [("GET", "/fraud/reviews/", ANALYSTS)],
    "fraud/reviews/bulk": [("POST", "/fraud/reviews/bulk", ANALYSTS)],
    "fraud/reviews/<int:review_id>/": [("GET", "/fraud/reviews/{review}/", ANALYSTS)],
    "fraud/reviews/<int:review_id>/decide": [("POST", "/fraud/reviews/{review}/decide", ANALYSTS)],
    "fraud/reviews/<int:review_id>/release": [
        ("POST", "/fraud/reviews/{review}/release", ANALYSTS)
    ],
    "fraud/reviews/<int:review_id>/notes": [("POST", "/fraud/reviews/{review}/notes", ANALYSTS)],
    # The fraud desk's JSON API: the same rule as its pages, 401 (not a redirect) when signed
    # out; its schema is open like the booking API's; its root is ninja's, a 404 for all.
    "fraud/api/": [("GET", "/fraud/api/", outcomes((), refused=NOT_FOUND, anonymous=NOT_FOUND))],
    "fraud/api/openapi.json": [("GET", "/fraud/api/openapi.json", EVERYONE)],
    "fraud/api/reviews": [("GET", "/fraud/api/reviews", ANALYSTS)],
    "fraud/api/reviews/<review_id>/decide": [
        ("POST", "/fraud/api/reviews/{review}/decide", ANALYSTS)
    ],
    "fraud/dashboard/": [("GET", "/fraud/dashboard/", ANALYSTS)],
    "fraud/dashboard/data": [("GET", "/fraud/dashboard/data", ANALYSTS)],
    "fraud/lists/": [("GET", "/fraud/lists/", ANALYSTS), ("POST", "/fraud/lists/", ANALYSTS)],
    "fraud/lists/<int:entry_id>/remove": [("POST", "/fraud/lists/{entry}/remove", ANALYSTS)],
    "fraud/rules/": [("GET", "/fraud/rules/", ANALYSTS)],
    "fraud/rules/write": [("POST", "/fraud/rules/write", ANALYSTS)],
    "fraud/rules/<int:rule_id>/mode": [("POST", "/fraud/rules/{rule}/mode", ANALYSTS)],
    "ml/": [("GET", "/ml/", ML_VIEWERS)],
    "ml/bandit/start": [("POST", "/ml/bandit/start", ML_MANAGERS)],
    "ml/bandit/stop": [("POST", "/ml/bandit/stop", ML_MANAGERS)],
    # An unknown version: the access check comes first, then 404 for those let in.
    "ml/models/<str:version>/": [
        (
            "GET",
            "/ml/models/fraud-lgbm-matrix/",
            outcomes({"analyst", "ml_engineer", "staff"})
            | {"analyst": NOT_FOUND, "ml_engineer": NOT_FOUND, "staff": NOT_FOUND},
        )
    ],
    "ml/models/<str:version>/deploy": [
        ("POST", "/ml/models/fraud-lgbm-matrix/deploy", ML_MANAGERS)
    ],
    "ml/drift/": [("GET", "/ml/drift/", ML_VIEWERS)],
    "ml/performance/": [("GET", "/ml/performance/", ML_VIEWERS)],
    "ml/training/": [("GET", "/ml/training/", ML_VIEWERS)],
    "ml/training/runs": [("GET", "/ml/training/runs", ML_VIEWERS)],
    # Refused for the input (no kind): the access check is what is tested, nothing is queued.
    "ml/training/start": [("POST", "/ml/training/start", ML_MANAGERS)],
    "ml/training/triggers": [("POST", "/ml/training/triggers", ML_MANAGERS)],
}

# The REST API, as its schema lists it: (method, path) -> (URL, expected row). Callers send a
# bearer token of their own (none when anonymous), a device header and the body in BODIES.
API: dict[tuple[str, str], tuple[str, dict]] = {
    # Anyone may exchange a username and password for a token (sent here: the rider's).
    ("POST", "/api/auth/token"): ("/api/auth/token", EVERYONE),
    ("GET", "/api/cards"): ("/api/cards", RIDERS),
    ("POST", "/api/cards"): ("/api/cards", RIDERS),
    ("GET", "/api/cards/{card_id}"): ("/api/cards/{card}", OWNER),
    ("DELETE", "/api/cards/{card_id}"): ("/api/cards/{card}", OWNER),
    ("POST", "/api/quotes"): ("/api/quotes", RIDERS),
    # On the rider's card: another rider is told the card does not exist.
    ("POST", "/api/trips"): ("/api/trips", OWNER),
    ("GET", "/api/trips"): ("/api/trips", RIDERS),
    ("GET", "/api/trips/{trip_id}"): ("/api/trips/{trip}", OWNER),
    ("GET", "/api/trips/{trip_id}/cancellation"): ("/api/trips/{trip}/cancellation", OWNER),
    ("POST", "/api/trips/{trip_id}/cancel"): ("/api/trips/{trip}/cancel", OWNER),
    ("GET", "/api/driver/trips"): ("/api/driver/trips", DRIVERS),
    ("POST", "/api/driver/trips/{trip_id}/accept"): ("/api/driver/trips/{trip}/accept", DRIVERS),
    ("POST", "/api/driver/trips/{trip_id}/pick-up"): (
        "/api/driver/trips/{trip}/pick-up",
        DRIVERS,
    ),
    ("POST", "/api/driver/trips/{trip_id}/complete"): (
        "/api/driver/trips/{trip}/complete",
        DRIVERS,
    ),
    ("POST", "/api/driver/trips/{trip_id}/cancel"): ("/api/driver/trips/{trip}/cancel", DRIVERS),
    ("POST", "/api/processor/chargebacks"): ("/api/processor/chargebacks", PROCESSOR),
}

# Valid bodies, so that a refusal is the caller's and not the input's (ninja validates a body
# before the view asks whether the caller is a rider). Strings name the world's objects.
_POINTS = {"pickup": {"lat": 52.33, "lng": 4.845}, "dropoff": {"lat": 52.39, "lng": 4.935}}
BODIES: dict[str, dict] = {
    "/api/auth/token": {"username": "matrix-rider", "password": "pw-matrix-rider"},
    "/api/cards": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123"},
    "/api/quotes": _POINTS,
    "/api/trips": {"card_id": "{card}"} | _POINTS,
}

# Routes of the admin (under DJANGO_ADMIN_PATH) whose row is not ADMIN, by route after the prefix.
_STAFF_REFUSED = outcomes({"staff"}, refused=LOG_IN, staff=FORBIDDEN)
ADMIN_EXCEPTIONS: dict[str, dict] = {
    # Its login page is open to all (a signed-in user who is not staff is told so on it).
    "login/": EVERYONE,
    # Anyone not staff is sent to the admin's index, which asks them to log in.
    "logout/": EVERYONE,
    # Staff reach it; named no model and field to complete, it refuses them too.
    "autocomplete/": _STAFF_REFUSED,
    # Staff reach them; a user has no page on the site, and the catch-all no page at all.
    "r/<path:content_type_id>/<path:object_id>/": outcomes(
        {"staff"}, refused=LOG_IN, staff=NOT_FOUND
    ),
    "(?P<url>.*)$": outcomes({"staff"}, refused=LOG_IN, staff=NOT_FOUND),
    # Bookings are written by the booking services only: staff read them here, never add or
    # delete them; API tokens are made by logging in, and django-axes records its own logs.
    **{
        f"rideshare/{model}/{action}": _STAFF_REFUSED
        for model in ("card", "payment", "quote", "trip")
        for action in ("add/", "<path:object_id>/delete/")
    },
    "rideshare/apitoken/add/": _STAFF_REFUSED,
    # The learning loop's records are read-only in the admin: staff read, never add or delete.
    **{
        f"ml/{model}/{action}": _STAFF_REFUSED
        for model in ("label", "modelversion", "trainingrun", "triggerfiring")
        for action in ("add/", "<path:object_id>/delete/")
    },
    **{
        f"axes/{model}/add/": _STAFF_REFUSED
        for model in ("accessattempt", "accessfailurelog", "accesslog")
    },
}

# websocket route -> (path, expected row): "ok" the socket is accepted, "refused" it is closed
# before the handshake completes.
REFUSED = "refused"
SOCKETS: dict[str, tuple[str, dict]] = {
    "ws/trips/<uuid:trip_id>/": (
        "/ws/trips/{trip}/",
        outcomes({"rider"}, refused=REFUSED, anonymous=REFUSED),
    ),
    "ws/fraud/flags/": (
        "/ws/fraud/flags/",
        outcomes({"analyst", "staff"}, refused=REFUSED, anonymous=REFUSED),
    ),
}


def _routes(patterns, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern)


def _admin_prefix() -> str:
    return settings.ADMIN_PATH + "/"


def _api_route(path: str) -> str:
    # "/api/cards/{card_id}" -> "api/cards/<card_id>", as ninja writes it in the URL conf.
    return re.sub(r"\{(\w+)\}", r"<\1>", path.lstrip("/"))


def test_every_route_has_an_entry_and_every_entry_a_route():
    routes = set(_routes(get_resolver().url_patterns))
    admin = {route for route in routes if route.startswith(_admin_prefix())}
    operations = {
        (method.upper(), path)
        for path, methods in api.get_openapi_schema()["paths"].items()
        for method in methods
    }
    # ninja's own route for /api/ itself answers 404 for every path it does not know.
    api_routes = {_api_route(path) for _, path in operations} | {"api/"}

    assert routes - admin - api_routes == set(PAGES)
    assert operations == set(API)
    stale = {route for route in ADMIN_EXCEPTIONS if _admin_prefix() + route not in admin}
    assert not stale, f"admin exceptions for routes that are gone: {stale}"
    assert set(_routes(websocket_urlpatterns)) == set(SOCKETS)


@dataclass
class World:
    """The objects the URLs name and a user of every role (None: anonymous)."""

    users: dict
    names: dict[str, object]

    def url(self, template: str) -> str:
        return template.format(**self.names)

    def body(self, template: dict) -> dict:
        return {
            key: self.url(value) if isinstance(value, str) else value
            for key, value in template.items()
        }


@pytest.fixture
def world(settings) -> World:
    settings.METRICS_TOKEN = "matrix-metrics-token"
    settings.PROCESSOR_API_KEY = "matrix-processor-key"
    rider = rider_make("matrix-rider")
    card = card_make(rider)
    # A completed trip (for its receipt), then the trip the driver is on now.
    completed = trip_make(rider, card=card)
    earlier_driver = driver_make("matrix-earlier-driver")
    services.trip_assign(trip=completed, driver=earlier_driver)
    services.trip_pick_up(trip=completed, driver=earlier_driver)
    services.trip_complete(trip=completed, driver=earlier_driver)
    trip = trip_make(rider, card=card)
    driver = driver_make("matrix-driver")
    services.trip_assign(trip=trip, driver=driver)
    ml_engineer = ml_engineer_ensure(username="matrix-ml", password="pw")
    users = {
        "anonymous": None,
        "rider": rider.user,
        "other_rider": rider_make("matrix-other").user,
        "driver": driver.user,
        "analyst": analyst_ensure(username="matrix-analyst", password="pw"),
        "ml_engineer": ml_engineer,
        "staff": staff_user_ensure(username="matrix-staff", password="pw"),
    }
    review = ReviewItem.objects.create(score=score_make(), device_id="dev-9", ip="198.51.100.4")
    names = {
        "trip": trip.public_id,
        "completed": completed.public_id,
        "card": card.public_id,
        "review": review.pk,
        "entry": ListEntry.objects.create(
            kind="card", value="card-x", action="block", reason="matrix"
        ).pk,
        "rule": Rule.objects.create(name="r", expression="amount_cents > 1", action="review").pk,
        "run": SimulationRun.objects.create(mode="load", params={"rate": 1, "duration_s": 1}).pk,
    }
    return World(users, names)


LOGIN_PATHS = {"/login/"}


def _outcome(response, *, login_paths: set[str]) -> str:
    status = response.status_code
    assert status < 500, (status, response.content[:300])
    assert status != 405, "the matrix sends a method the route does not take"
    if status in (301, 302, 303) and urlsplit(response["Location"]).path in login_paths:
        return LOG_IN
    return {401: LOG_IN, 403: FORBIDDEN, 404: NOT_FOUND}.get(status, OK)


def _observe(world: World, send) -> dict[str, str]:
    """Send one request as every role, each undone afterwards (a savepoint rolled back), and
    return each role's outcome."""
    observed = {}
    for role in ROLES:
        with transaction.atomic():
            observed[role] = send(role, world.users[role])
            transaction.set_rollback(True)
    return observed


def _page_client(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


PAGE_REQUESTS = [
    pytest.param(method, url, row, id=f"{method} {url}")
    for requests in PAGES.values()
    for method, url, row in requests
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "row"), PAGE_REQUESTS)
def test_a_page_answers_each_role_as_the_matrix_says(world, method, url, row):
    def send(role, user):
        response = _page_client(user).generic(method, world.url(url))
        return _outcome(response, login_paths=LOGIN_PATHS)

    assert _observe(world, send) == row


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "row"),
    [
        pytest.param(method, url, row, id=f"{method} {path}")
        for (method, path), (url, row) in API.items()
    ],
)
def test_an_api_operation_answers_each_role_as_the_matrix_says(world, method, url, row):
    def send(role, user):
        headers = bearer(user) if user is not None else {"X-Device-Id": DEVICE}
        body = world.body(BODIES.get(url, {}))
        response = Client().generic(
            method,
            world.url(url),
            data=json.dumps(body),
            content_type="application/json",
            headers=headers,
        )
        return _outcome(response, login_paths=set())

    assert _observe(world, send) == row


def _admin_url(route: str, world: World) -> str:
    """A URL of the admin's ``route`` (after the prefix): object ids the staff user's, an app's
    index the first app's, the catch-all a page that does not exist."""
    staff_id = str(world.users["staff"].pk)
    url = route.replace("(?P<url>.*)$", "no-such-page/")
    url = re.sub(r"\^\(\?P<app_label>(\w+)[^)]*\)/\$", r"\1/", url)
    url = re.sub(r"<(?:\w+:)?\w+>", staff_id, url)
    return "/" + _admin_prefix() + url


ADMIN_ROUTES = sorted(
    route.removeprefix(_admin_prefix())
    for route in _routes(get_resolver().url_patterns)
    if route.startswith(_admin_prefix())
)


@pytest.mark.django_db
@pytest.mark.parametrize("route", ADMIN_ROUTES)
def test_an_admin_route_answers_each_role_as_the_matrix_says(world, route):
    url = _admin_url(route, world)
    # Its logout takes a POST only; every other route is read.
    method = "POST" if route == "logout/" else "GET"
    login = {reverse("admin:login"), "/login/"}

    def send(role, user):
        response = _page_client(user).generic(method, url)
        return _outcome(response, login_paths=login)

    observed = _observe(world, send)
    assert observed == ADMIN_EXCEPTIONS.get(route, ADMIN), (url, observed)


def _cookies(user) -> list[tuple[bytes, bytes]]:
    return [] if user is None else [session_cookie(user)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("route", list(SOCKETS))
@fresh_thread
def test_a_websocket_answers_each_role_as_the_matrix_says(world, route):
    # Each role's handshake through the whole ASGI stack (origin check, session, consumer).
    # Opening a socket changes nothing, so no savepoint is needed between roles.
    path, row = SOCKETS[route]
    path = world.url(path)

    async def handshake(headers) -> str:
        socket = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
        connected, _ = await socket.connect(timeout=5)
        await socket.disconnect()
        return OK if connected else REFUSED

    observed = {role: async_to_sync(handshake)(_cookies(world.users[role])) for role in ROLES}
    assert observed == row
