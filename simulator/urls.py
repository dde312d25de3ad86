from django.urls import path

from simulator import views

app_name = "simulator"

urlpatterns = [
    path("", views.runs, name="runs"),
    path("runs", views.runs_table, name="runs-table"),
    path("runs/<int:run_id>/stop", views.run_stop, name="run-stop"),
]
