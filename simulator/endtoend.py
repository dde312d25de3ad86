"""End-to-end mode: riders and drivers using the booking app over HTTP on loopback, as people do.

The app's API has no sign-up and no driver registration, so:

- riders sign up through the web sign-up form (``/signup/``, with its CSRF cookie and token),
  as a person would, then get an API token (``POST /api/auth/token``) and add cards through the
  API; ``--riders-from`` (a CSV of ``username,password``) uses existing rider accounts instead;
- drivers are existing accounts (``--driver user:password``, repeatable; by default the demo
  drivers ``driver1``..``driver4`` / ``driver`` that ``seed_demo`` creates).

Each step is an action: a legitimate trip (quote, request, then a driver accepts, picks up and
completes, or the rider cancels), or a fraud incident played through the same API (card testing
with the processor's declining test numbers, an account takeover from a new device, a stolen
card added to several accounts, collusion with one driver, promo abuse from one device). The
app publishes the events; the simulator records the ground truth of each trip it booked
(``GroundTruth`` with ``trip_id``, no ``event_id``). No chargebacks are sent in this mode.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from simulator.city import City
from simulator.config import SimConfig
from simulator.engine import Truth
from simulator.report import Stats

DEMO_DRIVERS = tuple((f"driver{n}", "driver") for n in range(1, 5))
DECLINING_NUMBERS = ("4000000000000002", "4000000000009995")
STEPS = ("accept", "pick-up", "complete")


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: dict):
        super().__init__(f"{method} {path}: HTTP {status} {body.get('code', '')}".strip())
        self.status = status
        self.body = body


def loopback_address(base_url: str) -> tuple[str, int]:
    """Return (host, port) of ``base_url``; raise ``ValueError`` unless it is http on loopback."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--base-url {base_url!r}: expected http://<loopback host>:<port>")
    host = parts.hostname
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ValueError(f"--base-url {base_url!r}: the simulator only drives an app on loopback")
    return host, parts.port or 80


def luhn_number(rng: random.Random, prefix: str = "4") -> str:
    """Return a 16-digit card number with a valid Luhn check digit."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    total = 0
    for i, digit in enumerate(reversed(body)):
        d = int(digit)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


class Http:
    """One keep-alive connection to the app, with a cookie jar for the web forms."""

    def __init__(self, base_url: str, *, timeout: float = 30.0):
        self.host, self.port = loopback_address(base_url)
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.jar = SimpleCookie()  # the session of ``log_in``
        self.set_cookies: list[str] = []

    def call(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                # Several Set-Cookie headers fold into one dict key: keep each for the jar.
                self.set_cookies = response.msg.get_all("Set-Cookie") or []
                return response.status, dict(response.getheaders()), response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed the idle keep-alive connection: open a new one once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        device: str = "",
        payload=None,
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if device:
            headers["X-Device-Id"] = device
        body = json.dumps(payload).encode() if payload is not None else None
        status, _, raw = self.call(method, "/api" + path, body=body, headers=headers)
        data = json.loads(raw) if raw else {}
        if status not in expect:
            raise ApiError(method, path, status, data if isinstance(data, dict) else {})
        return status, data

    def _form_post(self, path: str, fields: dict, jar: SimpleCookie) -> int:
        """GET ``path`` for its CSRF cookie, then POST the form as a browser does; the cookies
        the server sets (the session) land in ``jar``. Return the POST's status."""
        self.call("GET", path, headers=self._cookie_header(jar))
        for cookie in self.set_cookies:
            jar.load(cookie)
        token = jar["csrftoken"].value if "csrftoken" in jar else ""
        form = urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        status, _, _ = self.call(
            "POST",
            path,
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"http://{self.host}:{self.port}{path}",
                **self._cookie_header(jar),
            },
        )
        for cookie in self.set_cookies:
            jar.load(cookie)
        return status

    @staticmethod
    def _cookie_header(jar: SimpleCookie) -> dict[str, str]:
        cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        return {"Cookie": cookie} if cookie else {}

    def sign_up(self, username: str, password: str, device: str) -> None:
        """Sign up through the web form (GET for the CSRF cookie, then POST)."""
        jar = SimpleCookie()
        jar["device_id"] = device
        fields = {"username": username, "password": password, "password_confirm": password}
        status = self._form_post("/signup/", fields, jar)
        if status != 302:
            raise ApiError("POST", "/signup/", status, {"code": "sign_up_failed"})

    def log_in(self, username: str, password: str) -> None:
        """Log in through the web form; later ``session_json`` calls carry the session."""
        self.jar = SimpleCookie()
        status = self._form_post("/login/", {"username": username, "password": password}, self.jar)
        if status != 302 or "sessionid" not in self.jar:
            raise ApiError("POST", "/login/", status, {"code": "log_in_failed"})

    def session_json(
        self, method: str, path: str, *, payload=None, expect: tuple[int, ...] = (200,)
    ) -> tuple[int, Any]:
        """Call a JSON endpoint as the user ``log_in`` logged in (CSRF header on writes)."""
        headers = {"Content-Type": "application/json", **self._cookie_header(self.jar)}
        if "csrftoken" in self.jar:
            headers["X-CSRFToken"] = self.jar["csrftoken"].value
        body = json.dumps(payload).encode() if payload is not None else None
        status, _, raw = self.call(method, path, body=body, headers=headers)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:  # an error page, not JSON (a 500 from a server in trouble)
            data = {"code": "not_json"}
        if status not in expect:
            raise ApiError(method, path, status, data if isinstance(data, dict) else {})
        return status, data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Account:
    username: str
    password: str
    device: str
    token: str = ""
    cards: list[str] = field(default_factory=list)


class EndToEnd:
    """Plays riders and drivers against the app; one action per ``step()``."""

    def __init__(
        self,
        *,
        base_url: str,
        config: SimConfig,
        city: City,
        stats: Stats,
        username_prefix: str,
        drivers: list[tuple[str, str]],
        on_truth: Callable[[list[dict]], None] | None = None,
        fraud_share: float = 0.1,
    ):
        self.http = Http(base_url)
        self.config = config
        self.city = city
        self.stats = stats
        self.rng = random.Random(f"end-to-end:{config.seed}")
        self.prefix = username_prefix
        self.on_truth = on_truth
        self.fraud_share = fraud_share
        self.riders: list[Account] = []
        self.drivers: list[Account] = []
        self._driver_logins = drivers
        self._made = 0

    # Accounts.

    def _device(self) -> str:
        return f"e2e-{self.rng.getrandbits(64):016x}"

    def login(self, account: Account) -> Account:
        _, data = self.http.api(
            "POST",
            "/auth/token",
            device=account.device,
            payload={"username": account.username, "password": account.password},
        )
        account.token = data["token"]
        return account

    def new_rider(self, *, device: str | None = None, with_card: bool = True) -> Account:
        self._made += 1
        account = Account(
            username=f"{self.prefix}-{self._made}",
            password=f"Sim-{self.rng.getrandbits(64):016x}",
            device=device or self._device(),
        )
        self.http.sign_up(account.username, account.password, account.device)
        self.stats.count("rider_signed_up")
        self.login(account)
        if with_card:
            self.add_card(account, luhn_number(self.rng))
        return account

    def add_card(self, account: Account, number: str) -> str:
        _, card = self.http.api(
            "POST",
            "/cards",
            token=account.token,
            device=account.device,
            payload={
                "number": number,
                "exp_month": 12,
                "exp_year": datetime.now(UTC).year + 3,
                "cvc": "123",
            },
        )
        account.cards.append(card["id"])
        self.stats.count("card_added")
        return card["id"]

    def setup(self, *, riders: int, existing: list[tuple[str, str]] = ()) -> None:
        """Log the drivers in, then sign up ``riders`` riders (or log ``existing`` ones in)."""
        for username, password in self._driver_logins:
            self.drivers.append(self.login(Account(username, password, self._device())))
        for username, password in existing:
            account = self.login(Account(username, password, self._device()))
            _, cards = self.http.api("GET", "/cards", token=account.token)
            account.cards = [c["id"] for c in cards]
            if not account.cards:
                self.add_card(account, luhn_number(self.rng))
            self.riders.append(account)
        for _ in range(riders):
            self.riders.append(self.new_rider())
        if not self.riders or not self.drivers:
            raise ValueError("end-to-end needs at least one rider and one driver")

    # Trips.

    def _points(self, *, short: bool = False, long: bool = False) -> tuple[dict, dict]:
        zones = self.city.zones
        if long:
            a, b = zones[0], zones[-1]
            if self.rng.random() < 0.5:
                a, b = b, a
        else:
            a = self.rng.choice(zones)
            b = a if short else self.rng.choice(zones)
        pickup = self.city.random_point(self.rng, a.id)
        dropoff = self.city.random_point(self.rng, b.id)
        if short:
            dropoff = (round(pickup[0] + 0.001, 6), pickup[1])
            if self.city.zone_for(*dropoff) is None:
                dropoff = pickup
        return {"lat": pickup[0], "lng": pickup[1]}, {"lat": dropoff[0], "lng": dropoff[1]}

    def _truth(self, trip_id: str, card_id: str, truth: Truth, payment_id: str = "") -> None:
        if self.on_truth is None:
            return
        self.on_truth(
            [
                {
                    "event_id": None,
                    "topic": "",
                    "occurred_at": datetime.now(UTC),
                    "payment_id": payment_id,
                    "trip_id": trip_id,
                    "card_id": card_id,
                    "rider_id": "",
                    "is_fraud": truth.is_fraud,
                    "scenario": truth.scenario,
                    "incident_id": truth.incident_id,
                }
            ]
        )

    def book(
        self,
        rider: Account,
        card_id: str,
        truth: Truth,
        *,
        short: bool = False,
        long: bool = False,
    ) -> str | None:
        """Quote and request a trip; return its id, or None when the card was declined."""
        pickup, dropoff = self._points(short=short, long=long)
        _, quote = self.http.api(
            "POST",
            "/quotes",
            token=rider.token,
            device=rider.device,
            payload={"pickup": pickup, "dropoff": dropoff},
        )
        status, trip = self.http.api(
            "POST",
            "/trips",
            token=rider.token,
            device=rider.device,
            payload={"card_id": card_id, "quote_id": quote["id"]},
            expect=(201, 402),
        )
        if truth.is_fraud:
            self.stats.fraud_payments[truth.scenario] += 1
        if status == 402:
            self.stats.count("payment_declined", truth)
            self._truth(trip.get("trip_id", ""), card_id, truth, trip.get("payment_id", ""))
            return None
        self.stats.count("trip_requested", truth)
        self._truth(trip["id"], card_id, truth)
        return trip["id"]

    def drive(self, trip_id: str, truth: Truth, *, driver: Account | None = None) -> bool:
        """Have a driver accept, pick up and complete the trip; False if none could take it."""
        candidates = [driver] if driver else self.rng.sample(self.drivers, len(self.drivers))
        for candidate in candidates:
            try:
                self.http.api("POST", f"/driver/trips/{trip_id}/accept", token=candidate.token)
            except ApiError as exc:
                if exc.status == 409:  # on another trip: ask the next driver
                    continue
                raise
            for step in STEPS[1:]:
                self.http.api("POST", f"/driver/trips/{trip_id}/{step}", token=candidate.token)
            self.stats.count("trip_completed", truth)
            return True
        return False

    def cancel(self, rider: Account, trip_id: str, truth: Truth) -> None:
        """Cancel as the rider, confirming whatever fee the preview shows."""
        _, preview = self.http.api(
            "GET", f"/trips/{trip_id}/cancellation", token=rider.token, device=rider.device
        )
        self.http.api(
            "POST",
            f"/trips/{trip_id}/cancel",
            token=rider.token,
            device=rider.device,
            payload={"confirm_fee_cents": preview["fee_cents"]},
        )
        self.stats.count("trip_cancelled", truth)

    def trip(self, rider: Account, truth: Truth, *, card_id: str | None = None, **where) -> None:
        trip_id = self.book(rider, card_id or self.rng.choice(rider.cards), truth, **where)
        if trip_id is None:
            return
        if self.rng.random() < 0.08 or not self.drive(trip_id, truth):
            self.cancel(rider, trip_id, truth)

    # Actions.

    def step(self, n: int) -> None:
        """Play one action: a legitimate trip or, with ``fraud_share``, a fraud incident."""
        rates = {k: v for k, v in self.config.scenarios.items() if v > 0}
        if rates and self.rng.random() < self.fraud_share:
            name = self.rng.choices(list(rates), weights=list(rates.values()))[0]
            truth = Truth(True, name, f"e2e-{name}-{n}")
            getattr(self, f"_{name}")(truth)
        else:
            self.trip(self.rng.choice(self.riders), Truth(False))

    def _card_testing(self, truth: Truth) -> None:
        rider = self.new_rider(with_card=False)
        cards = [self.add_card(rider, number) for number in DECLINING_NUMBERS]
        cards.append(self.add_card(rider, luhn_number(self.rng)))
        for _ in range(self.rng.randint(5, 8)):
            card = cards[-1] if self.rng.random() < 0.15 else self.rng.choice(cards[:2])
            trip_id = self.book(rider, card, truth, short=True)
            if trip_id is not None:
                self.cancel(rider, trip_id, truth)

    def _account_takeover(self, truth: Truth) -> None:
        victim = self.rng.choice(self.riders)
        attacker = Account(victim.username, victim.password, self._device(), cards=victim.cards)
        self.login(attacker)
        for _ in range(self.rng.randint(1, 2)):
            self.trip(attacker, truth, long=True)

    def _stolen_card_burst(self, truth: Truth) -> None:
        number = luhn_number(self.rng)
        accounts = [self.new_rider(with_card=False) for _ in range(self.rng.randint(2, 3))]
        cards = [self.add_card(account, number) for account in accounts]
        for i in range(self.rng.randint(4, 6)):
            k = i % len(accounts)
            self.trip(accounts[k], truth, card_id=cards[k])

    def _collusion(self, truth: Truth) -> None:
        rider, driver = self.new_rider(), self.drivers[0]
        for _ in range(3):
            trip_id = self.book(rider, rider.cards[0], truth, short=True)
            if trip_id is not None and not self.drive(trip_id, truth, driver=driver):
                self.cancel(rider, trip_id, truth)

    def _promo_abuse(self, truth: Truth) -> None:
        farm = self._device()
        for _ in range(self.rng.randint(2, 3)):
            rider = self.new_rider(device=farm)
            trip_id = self.book(rider, rider.cards[0], truth)
            if trip_id is not None:
                self.cancel(rider, trip_id, truth)

    def run(
        self,
        *,
        actions: int | None,
        duration_s: float | None,
        rate: float,
        should_stop: Callable[[], bool] = lambda: False,
        on_progress: Callable[[int], None] | None = None,
    ) -> Stats:
        """Play actions at ``rate`` per second until ``actions`` or ``duration_s``."""
        start = time.monotonic()
        n = 0
        try:
            while actions is None or n < actions:
                now = time.monotonic()
                if duration_s is not None and now - start >= duration_s:
                    break
                if should_stop():
                    self.stats.stopped = True
                    break
                due = start + n / rate
                if due > now:
                    time.sleep(due - now)
                try:
                    self.step(n)
                except (ApiError, OSError, KeyError, ValueError) as exc:
                    self.stats.error(f"action {n}: {type(exc).__name__}: {exc}")
                n += 1
                if on_progress is not None:
                    on_progress(n)
        finally:
            self.http.close()
            self.stats.finish()
        return self.stats
