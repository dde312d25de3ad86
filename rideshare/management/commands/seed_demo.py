from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from events.contracts import RiderContext
from rideshare import selectors, services

# (username, name, make, model, plate, zone): spread over the city so quotes find a driver near.
DEMO_DRIVERS = (
    ("driver1", "Anouk de Vries", "Toyota", "Prius", "DEMO-01", "Z-1-1"),
    ("driver2", "Bram Jansen", "Kia", "Niro", "DEMO-02", "Z-2-4"),
    ("driver3", "Chaima El Idrissi", "Tesla", "Model 3", "DEMO-03", "Z-4-2"),
    ("driver4", "Daan Bakker", "Skoda", "Octavia", "DEMO-04", "Z-5-5"),
)
DEMO_CARD_NUMBER = "4242424242424242"  # Stripe's test card: always approved
SEED_CONTEXT = RiderContext(device_id="seed-demo", ip="127.0.0.1")


class Command(BaseCommand):
    help = (
        "Load the demo data (DEBUG only), idempotently: a staff account for the admin and "
        "analyst pages, a few available drivers and a demo rider with a test card."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")
        parser.add_argument("--rider-username", default="rider")
        parser.add_argument("--rider-password", default="rider")
        parser.add_argument("--driver-password", default="driver")

    def handle(
        self,
        *args,
        username: str,
        password: str,
        rider_username: str,
        rider_password: str,
        driver_password: str,
        **options,
    ):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates a known password; it runs only with DJANGO_DEBUG=true."
            )
        staff_user = services.staff_user_ensure(username=username, password=password)
        self.stdout.write(f"demo staff account: {staff_user.get_username()} / {password}")

        for driver_username, name, make, model, plate, zone in DEMO_DRIVERS:
            services.driver_ensure(
                username=driver_username,
                password=driver_password,
                name=name,
                vehicle_make=make,
                vehicle_model=model,
                vehicle_plate=plate,
                zone=zone,
            )
        names = ", ".join(d[0] for d in DEMO_DRIVERS)
        self.stdout.write(f"demo drivers (password {driver_password}): {names}")

        rider = services.rider_ensure(
            username=rider_username, password=rider_password, home_zone="Z-2-2"
        )
        if selectors.card_of_rider_by_number(rider=rider, number=DEMO_CARD_NUMBER) is None:
            services.card_add(
                rider=rider,
                number=DEMO_CARD_NUMBER,
                exp_month=12,
                exp_year=timezone.now().year + 3,
                cvc="123",
                context=SEED_CONTEXT,
            )
        self.stdout.write(f"demo rider: {rider_username} / {rider_password} (visa ending 4242)")
        self.stdout.write(
            "web UI: log in at /login/ (the rider lands on /ride/ to book, a driver on the "
            "/driver/ console to accept and drive trips)"
        )
