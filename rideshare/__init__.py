"""The ride-booking domain: riders, drivers, cards, trips, payments; the rider UI and REST API."""
