import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from events.models import OutboxEvent
from rideshare.models import Card, Driver, Rider

from .factories import VISA_OK, card_make, rider_make, trip_make

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_drivers_and_a_rider_with_a_card_idempotently(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")
    drivers = Driver.objects.order_by("vehicle_plate")
    assert [(d.user.username, d.status, d.zone) for d in drivers] == [
        ("driver1", "available", "Z-1-1"),
        ("driver2", "available", "Z-2-4"),
        ("driver3", "available", "Z-4-2"),
        ("driver4", "available", "Z-5-5"),
    ]
    rider = Rider.objects.get(user__username="rider")
    assert rider.user.check_password("rider")
    assert rider.home_zone == "Z-2-2"
    [card] = Card.objects.filter(rider=rider)
    assert (card.brand, card.last4, card.is_active) == ("visa", "4242", True)
    assert OutboxEvent.objects.filter(topic="cards.added.v1").count() == 1
    assert get_user_model().objects.get(username="admin").is_staff


@pytest.fixture
def staff_client():
    user = get_user_model().objects.create_superuser(username="ops", password="ops-pass")
    client = Client()
    client.force_login(user)
    return client


def test_admin_pages_show_last4_and_never_the_number(staff_client):
    rider = rider_make()
    card = card_make(rider)
    trip = trip_make(rider, card=card)
    pages = [
        "/admin/rideshare/card/",
        f"/admin/rideshare/card/{card.pk}/change/",
        "/admin/rideshare/trip/",
        f"/admin/rideshare/trip/{trip.pk}/change/",
        "/admin/rideshare/payment/",
        f"/admin/rideshare/payment/{trip.payment.pk}/change/",
        "/admin/rideshare/rider/",
        "/admin/rideshare/driver/",
        "/admin/rideshare/quote/",
        "/admin/rideshare/apitoken/",
    ]
    for page in pages:
        response = staff_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert VISA_OK not in html
        assert card.processor_token not in html
    card_page = staff_client.get(f"/admin/rideshare/card/{card.pk}/change/").content.decode()
    assert "4242" in card_page
    assert staff_client.get("/admin/rideshare/card/add/").status_code == 403


def test_admin_refund_action_refunds_through_the_service(staff_client):
    from rideshare import services

    from .factories import driver_make

    trip = trip_make()
    driver = driver_make()
    for step in (services.trip_assign, services.trip_pick_up, services.trip_complete):
        trip = step(trip=trip, driver=driver)
    response = staff_client.post(
        "/admin/rideshare/payment/",
        {"action": "refund_in_full", "_selected_action": [trip.payment.pk]},
    )
    assert response.status_code == 302
    trip.payment.refresh_from_db()
    assert (trip.payment.status, trip.payment.refunded_cents) == ("refunded", 2014)
    assert OutboxEvent.objects.filter(topic="payments.refunded.v1").count() == 1
