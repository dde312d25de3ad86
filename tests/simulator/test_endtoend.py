"""End-to-end mode: riders and drivers book and drive through the app's HTTP interfaces."""

import pytest
from django.core.management import CommandError, call_command

from rideshare import services
from rideshare.models import Card, Rider, Trip
from simulator.city import city_from_url
from simulator.config import SCENARIOS, SimConfig
from simulator.endtoend import EndToEnd, loopback_address, luhn_number
from simulator.models import GroundTruth, SimulationRun
from simulator.report import Stats


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000", "https://127.0.0.1:8000", "http://example.com", "ftp://localhost"],
)
def test_only_an_app_on_loopback_over_http_is_driven(url):
    with pytest.raises(ValueError, match="base-url"):
        loopback_address(url)


def test_loopback_addresses_are_accepted():
    assert loopback_address("http://127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert loopback_address("http://localhost:8123/") == ("localhost", 8123)
    assert loopback_address("http://[::1]:9000") == ("::1", 9000)


def test_generated_card_numbers_pass_the_luhn_check():
    import random

    rng = random.Random(5)
    for _ in range(100):
        number = luhn_number(rng)
        digits = [int(d) for d in reversed(number)]
        total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
        assert len(number) == 16
        assert total % 10 == 0


@pytest.mark.django_db
def test_the_command_refuses_a_remote_base_url():
    with pytest.raises(CommandError, match="only drives an app on loopback"):
        call_command(
            "simulate", "end-to-end", "--base-url", "http://192.0.2.1:80", "--actions", "1"
        )


@pytest.mark.django_db(transaction=True)
def test_riders_sign_up_book_and_drivers_complete_through_the_app(live_server):
    for n in (1, 2):
        services.driver_ensure(
            username=f"e2e-driver{n}", password="driver-pass", name=f"Driver {n}",
            vehicle_make="Kia", vehicle_model="Niro", vehicle_plate=f"E2E-{n}", zone="Z-2-2",
        )  # fmt: skip
    truth: list[dict] = []
    stats = Stats(mode="end-to-end")
    player = EndToEnd(
        base_url=live_server.url,
        config=SimConfig(seed=4, scenarios=dict.fromkeys(SCENARIOS, 1.0)),
        city=city_from_url(live_server.url),
        stats=stats,
        username_prefix="e2e",
        drivers=[("e2e-driver1", "driver-pass"), ("e2e-driver2", "driver-pass")],
        on_truth=truth.extend,
        fraud_share=0.5,
    )

    player.setup(riders=2)
    player.run(actions=8, duration_s=None, rate=100)

    assert stats.errors == 0, stats.error_samples
    assert (
        Rider.objects.filter(user__username__startswith="e2e-").count()
        == stats.events["rider_signed_up"]
    )
    assert Card.objects.count() == stats.events["card_added"]
    trips = Trip.objects.all()
    assert trips.count() == stats.events["trip_requested"] + stats.events["payment_declined"]
    assert trips.filter(status="completed").count() == stats.events["trip_completed"]
    assert trips.filter(status="cancelled").count() == stats.events["trip_cancelled"]
    assert trips.filter(status="payment_declined").count() == stats.events["payment_declined"]
    assert sorted(row["trip_id"] for row in truth) == sorted(str(t.public_id) for t in trips)
    assert {row["scenario"] for row in truth if row["is_fraud"]} == set(stats.fraud_events)
    assert stats.events["trip_completed"] > 0
    assert stats.fraud_events


@pytest.mark.django_db(transaction=True)
def test_the_end_to_end_command_records_the_run_and_truth_of_each_trip(live_server, capsys):
    services.driver_ensure(
        username="cmd-driver", password="driver-pass", name="Driver", vehicle_make="Kia",
        vehicle_model="Niro", vehicle_plate="CMD-1", zone="Z-2-2",
    )  # fmt: skip

    call_command(
        "simulate", "end-to-end", "--base-url", live_server.url, "--actions", "3",
        "--riders", "1", "--driver", "cmd-driver:driver-pass", "--no-fraud", "--rate", "50",
    )  # fmt: skip

    run = SimulationRun.objects.get()
    assert (run.mode, run.status, run.errors) == ("end-to-end", "finished", 0)
    trips = Trip.objects.all()
    assert trips.count() == 3
    assert sorted(GroundTruth.objects.filter(run=run).values_list("trip_id", flat=True)) == sorted(
        str(t.public_id) for t in trips
    )
    assert not GroundTruth.objects.filter(is_fraud=True).exists()
    assert "end-to-end finished" in capsys.readouterr().out
