from django.urls import path

from fraud import web

app_name = "fraud"

urlpatterns = [
    path("", web.flags, name="flags"),
]
