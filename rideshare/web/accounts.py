"""Signing up, logging in and out."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from frontend.limits import Limit, limited_page
from rideshare import selectors, services
from rideshare.errors import InvalidInput
from rideshare.web.access import safe_next, start_page
from rideshare.web.devices import rider_context
from rideshare.web.forms import SignUpForm, errors_onto


@sensitive_post_parameters("password", "password_confirm")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create a rider account and log it in; next, the wallet, to add a card."""
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rider = services.rider_sign_up(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                context=rider_context(request),
            )
        except InvalidInput as exc:
            errors_onto(form, exc)
        else:
            auth_login(request, rider.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! Add a card to book your first ride.")
            return redirect(safe_next(request, reverse("wallet")))
    return render(request, "rideshare/signup.html", {"form": form})


class RiderLoginView(LoginView):
    """Django's login, recording a rider's login (device, address) for the fraud side."""

    template_name = "rideshare/login.html"
    limit = Limit("RATE_LIMIT_LOGIN")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Every sign-in posted counts, right or wrong (django-axes counts the wrong ones per
        # username): one address trying many accounts is slowed down too.
        if not self.limit.allow_request(request):
            return limited_page(request, self.limit, "sign-in attempts")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        user = form.get_user()
        if selectors.rider_of_user(user) is not None:
            services.rider_login(user=user, context=rider_context(self.request))
        return super().form_valid(form)

    def get_default_redirect_url(self) -> str:
        return start_page(self.request.user)
