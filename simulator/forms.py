"""The staff page's form: the bounds of a run started from the web UI."""

from __future__ import annotations

from django import forms

from simulator.config import SCENARIO_HELP, SCENARIOS, SimConfig
from simulator.services import WEB_MAX_DURATION_S, WEB_MAX_RATE


class LoadRunForm(forms.Form):
    rate = forms.FloatField(
        label="Events per second", min_value=1, max_value=WEB_MAX_RATE, initial=100
    )
    duration_s = forms.IntegerField(
        label="Duration (seconds)", min_value=1, max_value=int(WEB_MAX_DURATION_S), initial=60
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31, initial=1)
    riders = forms.IntegerField(label="Riders", min_value=10, max_value=100_000, initial=2000)
    scenarios = forms.MultipleChoiceField(
        label="Fraud scenarios",
        choices=[(name, f"{name}: {SCENARIO_HELP[name]}") for name in SCENARIOS],
        initial=list(SCENARIOS),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    topic_prefix = forms.RegexField(
        label="Topic namespace (optional)",
        regex=r"^[a-z0-9][a-z0-9_-]{0,40}$",
        required=False,
        help_text="Publish to <namespace>.<topic> instead of the app's topics.",
    )

    def params(self) -> dict:
        """Return the run's parameters (``services.simulation_start``)."""
        data = self.cleaned_data
        rates = {
            name: rate if name in data["scenarios"] else 0.0 for name, rate in SCENARIOS.items()
        }
        config = SimConfig(seed=data["seed"], riders=data["riders"], scenarios=rates)
        return {
            "rate": data["rate"],
            "duration_s": data["duration_s"],
            "topic_prefix": data["topic_prefix"] or "",
            "config": config.to_json(),
        }
