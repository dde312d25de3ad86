from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from rideshare import selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "rideshare/home.html", {"status": selectors.platform_status()})


def healthz(request: HttpRequest) -> JsonResponse:
    status = selectors.platform_status()
    return JsonResponse(status, status=200 if status["database"]["ok"] else 503)
