from django.contrib import admin

from simulator.models import GroundTruth, SimulationRun


@admin.register(SimulationRun)
class SimulationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "mode", "status", "events_published", "errors", "created_at")
    list_filter = ("mode", "status")
    readonly_fields = ("counters", "params")


@admin.register(GroundTruth)
class GroundTruthAdmin(admin.ModelAdmin):
    list_display = ("event_id", "topic", "occurred_at", "is_fraud", "scenario", "run")
    list_filter = ("is_fraud", "scenario", "topic")
    search_fields = ("event_id", "payment_id", "trip_id", "incident_id")
