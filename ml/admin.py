"""The learning loop in the admin, read-only: what fired, what trained (with its progress while
it runs), what it registered and how the gates judged it, the labels. The ML console with its
actions (promote, compare, roll back) is the next issue's; here nothing can be changed, so the
registry's rules (a rejected model never serves) cannot be bypassed from a form."""

from django.contrib import admin

from ml.models import Label, ModelVersion, TrainingRun, TriggerFiring


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnly):
    list_display = ("version", "kind", "status", "source", "parent", "created_at")
    list_filter = ("status", "kind", "source")
    search_fields = ("version",)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnly):
    list_display = (
        "id", "reason", "kind", "status", "stage", "percent", "requested_at", "finished_at",
        "model",
    )  # fmt: skip
    list_filter = ("status", "kind", "reason")


@admin.register(TriggerFiring)
class TriggerFiringAdmin(ReadOnly):
    list_display = ("fired_at", "trigger", "kind", "reason", "started", "run")
    list_filter = ("trigger", "started")


@admin.register(Label)
class LabelAdmin(ReadOnly):
    list_display = ("payment_id", "fraud", "source", "known_at", "contradicted")
    list_filter = ("fraud", "source", "contradicted")
    search_fields = ("payment_id",)
