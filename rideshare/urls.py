"""The booking domain's pages, REST API, health and metrics (included by ``config.urls``)."""

from django.contrib.auth.views import LogoutView
from django.urls import path

from rideshare import views
from rideshare.api import api
from rideshare.metrics import metrics
from rideshare.web import accounts, booking, drivers, trips, wallet

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("city/zones.geojson", views.city_zones, name="city-zones"),
    path("api/", api.urls),
    # The rider web UI (session login, CSRF on every POST).
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.RiderLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="home"), name="logout"),
    path("wallet/", wallet.wallet, name="wallet"),
    path("wallet/cards/<uuid:card_id>/remove", wallet.card_remove, name="card-remove"),
    path("ride/", booking.book, name="book"),
    path("ride/quote", booking.quote, name="quote"),
    path("ride/request", booking.trip_request, name="trip-request"),
    path("trips/", trips.trip_list, name="trips"),
    path("trips/<uuid:trip_id>/", trips.trip_detail, name="trip"),
    path("trips/<uuid:trip_id>/cancel", trips.trip_cancel, name="trip-cancel"),
    path("trips/<uuid:trip_id>/receipt", trips.trip_receipt, name="receipt"),
    # The driver console.
    path("driver/", drivers.console, name="driver-console"),
    path("driver/waiting", drivers.waiting_trips, name="driver-waiting"),
    path("driver/trips/<uuid:trip_id>/<slug:step>", drivers.step, name="driver-step"),
]
