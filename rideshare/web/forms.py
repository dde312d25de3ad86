"""The web UI's forms: they parse and shape input; the services own every business rule.

A service's ``InvalidInput`` carries field -> message; ``errors_onto`` puts those messages on
the form's fields so they show next to the input at fault.
"""

from __future__ import annotations

from django import forms
from django.utils import timezone

from rideshare.errors import InvalidInput


class UnrenderedTextInput(forms.TextInput):
    """A text input that never writes its value back into the page (card numbers, CVCs)."""

    def format_value(self, value):
        return None


def errors_onto(form: forms.Form, exc: InvalidInput) -> None:
    """Add ``exc``'s messages to ``form``, each under its field, else at the top of the form."""
    for name, message in exc.errors.items():
        form.add_error(name if name in form.fields else None, message)


class SignUpForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
        help_text="Letters, digits and @ . + - _ only.",
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password_confirm = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return data


MONTHS = [(month, f"{month:02d}") for month in range(1, 13)]


class CardForm(forms.Form):
    # Loose bounds only: the wallet service checks the number, expiry and code and says why.
    number = forms.CharField(
        label="Card number",
        max_length=40,
        widget=UnrenderedTextInput(
            attrs={
                "autocomplete": "cc-number",
                "inputmode": "numeric",
                "placeholder": "1234 5678 9012 3456",
            }
        ),
    )
    exp_month = forms.TypedChoiceField(label="Month", choices=MONTHS, coerce=int)
    exp_year = forms.IntegerField(
        label="Year",
        widget=forms.NumberInput(attrs={"placeholder": "YYYY", "autocomplete": "cc-exp-year"}),
    )
    cvc = forms.CharField(
        label="Security code",
        max_length=8,
        widget=UnrenderedTextInput(
            attrs={"autocomplete": "cc-csc", "inputmode": "numeric", "placeholder": "123"}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("exp_year", timezone.now().year + 1)


class QuoteForm(forms.Form):
    pickup_lat = forms.FloatField(widget=forms.HiddenInput)
    pickup_lng = forms.FloatField(widget=forms.HiddenInput)
    dropoff_lat = forms.FloatField(widget=forms.HiddenInput)
    dropoff_lng = forms.FloatField(widget=forms.HiddenInput)


class TripRequestForm(forms.Form):
    quote_id = forms.UUIDField(widget=forms.HiddenInput)
    card_id = forms.UUIDField()


class CancelForm(forms.Form):
    confirm_fee_cents = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
