"""The simulator's copy of the city is the app's city."""

import json

from rideshare import city as app_city
from simulator.city import ZONES_FILE, city_from_geojson, distance_km


def test_the_shipped_zones_file_is_what_the_app_serves():
    assert json.loads(ZONES_FILE.read_text()) == app_city.zones_geojson()


def test_the_served_geojson_is_the_file(client):
    response = client.get("/city/zones.geojson")

    assert json.loads(response.content) == json.loads(ZONES_FILE.read_text())


def test_zone_lookup_agrees_with_the_app_on_points_and_grid_lines(city):
    points = [
        (52.30, 4.80),
        (52.32, 4.83),
        (52.42, 4.98),
        (52.345, 4.912),
        (52.36, 4.89),
        (52.419999, 4.979999),
    ]
    for lat, lng in points:
        assert city.zone_for(lat, lng) == app_city.zone_for(lat, lng)
    assert city.zone_for(52.29, 4.85) is None
    assert city.zone_for(float("nan"), 4.85) is None


def test_random_points_stay_inside_their_zone(city):
    import random

    rng = random.Random(3)
    for zone in city.zones:
        for _ in range(20):
            assert app_city.zone_for(*city.random_point(rng, zone.id)) == zone.id


def test_geometry_matches_the_app(city):
    assert len(city.zones) == app_city.ROWS * app_city.COLS
    assert city_from_geojson(app_city.zones_geojson()).by_id.keys() == city.by_id.keys()
    a, b = (52.33, 4.845), (52.39, 4.935)
    assert round(distance_km(a, b), 3) == 9.048
