"""Writes of the booking side, one module per subdomain. Keyword-only, named <noun>_<verb>.

Every function that changes booking state publishes its events through the outbox inside the
same transaction as its rows; each docstring names the topics it publishes. Functions taking
``now`` use it for every timestamp they write and publish, so tests and replays control time.
"""

from rideshare.services.payments import (
    payment_authorize,
    payment_capture,
    payment_refund,
    payment_void,
)
from rideshare.services.riders import (
    api_token_create,
    driver_ensure,
    rider_device_record,
    rider_ensure,
    rider_lock,
    rider_login,
    rider_sign_up,
    staff_user_ensure,
)
from rideshare.services.trips import (
    QUOTE_TTL,
    trip_assign,
    trip_cancel,
    trip_cancel_by_driver,
    trip_complete,
    trip_pick_up,
    trip_quote,
    trip_request,
)
from rideshare.services.wallet import card_add, card_deactivate

__all__ = [
    "QUOTE_TTL",
    "api_token_create",
    "card_add",
    "card_deactivate",
    "driver_ensure",
    "payment_authorize",
    "payment_capture",
    "payment_refund",
    "payment_void",
    "rider_device_record",
    "rider_ensure",
    "rider_lock",
    "rider_login",
    "rider_sign_up",
    "staff_user_ensure",
    "trip_assign",
    "trip_cancel",
    "trip_cancel_by_driver",
    "trip_complete",
    "trip_pick_up",
    "trip_quote",
    "trip_request",
]
