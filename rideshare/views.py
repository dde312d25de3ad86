from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from rideshare import city, selectors


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "rideshare/home.html", {"status": selectors.platform_status()})


def healthz(request: HttpRequest) -> JsonResponse:
    status = selectors.platform_status()
    return JsonResponse(status, status=200 if status["database"]["ok"] else 503)


@require_GET
def city_zones(request: HttpRequest) -> JsonResponse:
    """Serve the city's zones as GeoJSON (fixed for the life of a deployment: cacheable)."""
    response = JsonResponse(city.zones_geojson(), content_type="application/geo+json")
    response["Cache-Control"] = "public, max-age=3600"
    return response
