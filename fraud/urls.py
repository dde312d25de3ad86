from django.urls import path

from fraud.web import flags, reviews

app_name = "fraud"

urlpatterns = [
    path("", flags.flags, name="flags"),
    path("reviews/", reviews.queue, name="queue"),
    path("reviews/bulk", reviews.bulk, name="bulk"),
    path("reviews/<int:review_id>/", reviews.case, name="case"),
    path("reviews/<int:review_id>/decide", reviews.decide, name="decide"),
    path("reviews/<int:review_id>/release", reviews.release, name="release"),
    path("reviews/<int:review_id>/notes", reviews.note, name="note"),
]
