"""Admin pages of the booking side.

Cards, quotes, trips and payments are read-only here: their changes go through the services,
which publish the events the rest of the system learns from. A card shows its brand and last
four digits, never more (the processor token and the processor's tables are not shown at all).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from rideshare import services
from rideshare.errors import DomainError
from rideshare.models import ApiToken, Card, Driver, Payment, Quote, Rider, Trip


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Rider)
class RiderAdmin(admin.ModelAdmin):
    list_display = ("user", "public_id", "home_zone", "signed_up_at", "last_device_id")
    search_fields = ("user__username", "public_id", "last_device_id")
    readonly_fields = ("public_id", "last_device_id")
    raw_id_fields = ("user",)


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = ("name", "vehicle_plate", "status", "zone", "public_id")
    list_filter = ("status", "zone")
    search_fields = ("name", "vehicle_plate", "user__username", "public_id")
    readonly_fields = ("public_id",)
    raw_id_fields = ("user",)


@admin.register(Card)
class CardAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "rider", "exp_month", "exp_year", "is_active", "added_at")
    list_filter = ("brand", "is_active")
    search_fields = ("public_id", "rider__user__username", "last4", "fingerprint")
    fields = (
        "public_id",
        "rider",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "fingerprint",
        "is_active",
        "added_at",
    )


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "rider", "pickup_zone", "dropoff_zone", "fare_cents", "expires_at")
    search_fields = ("public_id", "rider__user__username")


@admin.register(Trip)
class TripAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "rider",
        "driver",
        "status",
        "pickup_zone",
        "dropoff_zone",
        "fare_cents",
        "requested_at",
    )
    list_filter = ("status", "cancelled_by", "pickup_zone")
    search_fields = ("public_id", "rider__user__username", "driver__name")
    date_hierarchy = "requested_at"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "trip",
        "card",
        "status",
        "amount_cents",
        "captured_cents",
        "refunded_cents",
        "decline_code",
    )
    list_filter = ("status", "decline_code")
    search_fields = ("public_id", "trip__public_id", "rider__user__username")
    actions = ("refund_in_full",)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The refund action needs the change permission on the list; a payment's own page
        # stays read-only.
        return obj is None and admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Refund what is left of the selected captured payments")
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        done = 0
        for payment in queryset:
            try:
                services.payment_refund(
                    payment=payment, refunded_by=request.user, reason="admin_refund"
                )
                done += 1
            except DomainError as exc:
                self.message_user(request, exc.message, level=messages.WARNING)
        self.message_user(request, f"Refunded {done} payment(s).")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at")
    search_fields = ("user__username",)
    fields = ("user", "created_at")
    readonly_fields = ("user", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
