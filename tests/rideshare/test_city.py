import json

import pytest

from rideshare import city


def test_zone_for_names_the_grid_cell():
    assert city.zone_for(52.33, 4.845) == "Z-1-1"
    assert city.zone_for(52.39, 4.935) == "Z-4-4"
    assert city.zone_for(52.301, 4.979) == "Z-0-5"


def test_zone_for_puts_grid_lines_in_the_cell_to_the_north_east():
    assert city.zone_for(52.32, 4.83) == "Z-1-1"
    assert city.zone_for(52.3199999, 4.8299999) == "Z-0-0"


def test_zone_for_includes_the_city_edges():
    assert city.zone_for(52.30, 4.80) == "Z-0-0"
    assert city.zone_for(52.42, 4.98) == "Z-5-5"


@pytest.mark.parametrize(
    ("lat", "lng"), [(52.29, 4.85), (52.43, 4.85), (52.35, 4.79), (52.35, 4.99), (0.0, 0.0)]
)
def test_zone_for_refuses_points_outside_the_city(lat, lng):
    with pytest.raises(ValueError, match=r"is outside the city: latitude must be within 52\.30"):
        city.zone_for(lat, lng)


def test_zone_for_refuses_nan():
    with pytest.raises(ValueError, match="is not a point on the map"):
        city.zone_for(float("nan"), 4.85)


def test_zone_ids_are_a_six_by_six_grid():
    ids = city.zone_ids()
    assert len(ids) == 36
    assert ids[:7] == ["Z-0-0", "Z-0-1", "Z-0-2", "Z-0-3", "Z-0-4", "Z-0-5", "Z-1-0"]
    assert ids[-1] == "Z-5-5"


def test_zone_centre_is_inside_its_zone():
    assert city.zone_centre("Z-2-3") == (52.35, 4.905)
    for zone in city.zone_ids():
        assert city.zone_for(*city.zone_centre(zone)) == zone


def test_zone_bounds_refuses_unknown_zones():
    with pytest.raises(ValueError, match="'Z-6-0' is not a zone of the city"):
        city.zone_bounds("Z-6-0")
    with pytest.raises(ValueError, match="'nowhere' is not a zone of the city"):
        city.zone_bounds("nowhere")


def test_zones_geojson_is_a_feature_collection_of_closed_polygons():
    collection = city.zones_geojson()
    assert collection["type"] == "FeatureCollection"
    assert collection["bbox"] == [4.8, 52.3, 4.98, 52.42]
    assert len(collection["features"]) == 36
    first = collection["features"][0]
    assert first == {
        "type": "Feature",
        "id": "Z-0-0",
        "properties": {"zone": "Z-0-0", "row": 0, "col": 0},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[4.8, 52.3], [4.83, 52.3], [4.83, 52.32], [4.8, 52.32], [4.8, 52.3]]],
        },
    }
    for feature in collection["features"]:
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1]
        assert len(ring) == 5


def test_zones_geojson_is_served(client):
    response = client.get("/city/zones.geojson")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/geo+json"
    assert json.loads(response.content) == city.zones_geojson()
    assert client.post("/city/zones.geojson").status_code == 405
