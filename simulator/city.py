"""The app's city as the simulator sees it: zones read from GeoJSON, never from ``rideshare``.

Offline modes read the copy shipped in ``simulator/data/city-zones.geojson`` (a test keeps it
equal to what the app serves); the end-to-end mode reads the app's own ``/city/zones.geojson``.
Each zone is an axis-aligned box; a point belongs to the box whose south and west edges are
inclusive, as in the app, with the city's northern and eastern edges inclusive too.
"""

from __future__ import annotations

import json
import math
import random
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ZONES_FILE = Path(__file__).resolve().parent / "data" / "city-zones.geojson"
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Zone:
    id: str
    row: int
    col: int
    south: float
    west: float
    north: float
    east: float

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.south + self.north) / 2, (self.west + self.east) / 2)


class City:
    """Zones of the city and the geometry the simulator needs: points, zones and distances."""

    def __init__(self, zones: list[Zone]):
        if not zones:
            raise ValueError("a city needs at least one zone")
        self.zones = sorted(zones, key=lambda z: (z.row, z.col))
        self.by_id = {z.id: z for z in self.zones}
        self.rows = max(z.row for z in self.zones) + 1
        self.cols = max(z.col for z in self.zones) + 1
        self.south = min(z.south for z in self.zones)
        self.west = min(z.west for z in self.zones)
        self.north = max(z.north for z in self.zones)
        self.east = max(z.east for z in self.zones)

    def zone_for(self, lat: float, lng: float) -> str | None:
        """Return the id of the zone containing the point, or None outside the city."""
        if not (math.isfinite(lat) and math.isfinite(lng)):
            return None
        for zone in self.zones:
            north_ok = lat < zone.north or (lat == zone.north and zone.north == self.north)
            east_ok = lng < zone.east or (lng == zone.east and zone.east == self.east)
            if zone.south <= lat and zone.west <= lng and north_ok and east_ok:
                return zone.id
        return None

    def random_point(self, rng: random.Random, zone_id: str) -> tuple[float, float]:
        """Return a point strictly inside the zone, rounded to 6 decimals (about 0.1 m)."""
        zone = self.by_id[zone_id]
        # Keep 1% away from the edges so rounding never moves a point into the next zone.
        lat = zone.south + (zone.north - zone.south) * rng.uniform(0.01, 0.99)
        lng = zone.west + (zone.east - zone.west) * rng.uniform(0.01, 0.99)
        return round(lat, 6), round(lng, 6)

    def centrality(self, zone_id: str) -> float:
        """Return 1.0 for the central zones down to 0.0 for the corners."""
        zone = self.by_id[zone_id]
        mid_row, mid_col = (self.rows - 1) / 2, (self.cols - 1) / 2
        far = math.hypot(mid_row, mid_col) or 1.0
        return 1.0 - math.hypot(zone.row - mid_row, zone.col - mid_col) / far


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance between two (lat, lng) points in kilometres."""
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def city_from_geojson(collection: dict) -> City:
    """Build the city from a FeatureCollection of zone polygons (``properties.zone/row/col``)."""
    zones = []
    for feature in collection.get("features", []):
        props = feature["properties"]
        ring = feature["geometry"]["coordinates"][0]
        lngs = [point[0] for point in ring]
        lats = [point[1] for point in ring]
        zones.append(
            Zone(
                id=props["zone"],
                row=int(props["row"]),
                col=int(props["col"]),
                south=min(lats),
                west=min(lngs),
                north=max(lats),
                east=max(lngs),
            )
        )
    return City(zones)


def city_from_file(path: Path = ZONES_FILE) -> City:
    """Load the city from a GeoJSON file (by default the copy of the app's city)."""
    return city_from_geojson(json.loads(Path(path).read_text()))


def city_from_url(base_url: str, *, timeout: float = 10.0) -> City:
    """Load the city the app serves at ``<base_url>/city/zones.geojson``."""
    url = base_url.rstrip("/") + "/city/zones.geojson"
    # The base URL is checked to be http on loopback before any request is made.
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return city_from_geojson(json.loads(response.read()))
