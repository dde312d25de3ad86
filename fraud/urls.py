from django.urls import path

from fraud.web import dashboard, flags, policy, reviews

app_name = "fraud"

urlpatterns = [
    path("", flags.flags, name="flags"),
    path("reviews/", reviews.queue, name="queue"),
    path("reviews/bulk", reviews.bulk, name="bulk"),
    path("reviews/<int:review_id>/", reviews.case, name="case"),
    path("reviews/<int:review_id>/decide", reviews.decide, name="decide"),
    path("reviews/<int:review_id>/release", reviews.release, name="release"),
    path("reviews/<int:review_id>/notes", reviews.note, name="note"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/data", dashboard.dashboard_data, name="dashboard-data"),
    path("lists/", policy.lists, name="lists"),
    path("lists/<int:entry_id>/remove", policy.list_remove, name="list-remove"),
    path("rules/", policy.rules, name="rules"),
    path("rules/write", policy.rule_write, name="rule-write"),
    path("rules/<int:rule_id>/mode", policy.rule_mode, name="rule-mode"),
]
