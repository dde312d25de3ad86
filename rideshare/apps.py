from django.apps import AppConfig


class RideshareConfig(AppConfig):
    name = "rideshare"
    verbose_name = "Ride booking"
