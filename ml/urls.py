from django.urls import path

from ml.web import console, drift, performance, training

app_name = "ml"

urlpatterns = [
    path("", console.models_page, name="models"),
    path("bandit/start", console.bandit_start_view, name="bandit-start"),
    path("bandit/stop", console.bandit_stop_view, name="bandit-stop"),
    path("models/<str:version>/", console.model_page, name="model"),
    path("models/<str:version>/deploy", console.model_deploy_view, name="model-deploy"),
    path("drift/", drift.drift_page, name="drift"),
    path("performance/", performance.performance_page, name="performance"),
    path("training/", training.training_page, name="training"),
    path("training/runs", training.training_runs, name="training-runs"),
    path("training/start", training.training_start, name="training-start"),
    path("training/triggers", training.triggers_set, name="triggers-set"),
]
