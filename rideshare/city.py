"""The fictional city: a fixed grid of zones over a latitude/longitude box.

Zones are named ``Z-<row>-<col>``: row 0 is the southern edge, column 0 the western edge. The
grid is deterministic (no data file, no randomness), so the booking app, the simulator and the UI
agree on which zone a point falls in. Boundaries are computed in decimal arithmetic so a point on
a grid line always falls in the same cell: the one to its north and east, except on the city's
northern and eastern edges, which belong to the last row and column.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import NamedTuple

SOUTH = Decimal("52.30")
NORTH = Decimal("52.42")
WEST = Decimal("4.80")
EAST = Decimal("4.98")
ROWS = 6
COLS = 6
LAT_STEP = (NORTH - SOUTH) / ROWS
LNG_STEP = (EAST - WEST) / COLS


class LatLng(NamedTuple):
    lat: float
    lng: float


class OutsideCity(ValueError):
    """A point outside the city's box: no zone, no trip."""


def zone_id(row: int, col: int) -> str:
    """Return the name of the zone at grid ``row`` (from the south) and ``col`` (from the west)."""
    return f"Z-{row}-{col}"


def zone_ids() -> list[str]:
    """Return every zone's name, row by row from the south-west corner."""
    return [zone_id(row, col) for row in range(ROWS) for col in range(COLS)]


def zone_for(lat: float, lng: float) -> str:
    """Return the zone containing (``lat``, ``lng``), in degrees.

    Raise ``OutsideCity`` (a ``ValueError``) when the point lies outside the city.
    """
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise OutsideCity(f"({lat}, {lng}) is not a point on the map")
    # repr() keeps the float's shortest exact decimal form: 52.32 stays 52.32, not 52.31999...
    d_lat, d_lng = Decimal(repr(float(lat))), Decimal(repr(float(lng)))
    if not (SOUTH <= d_lat <= NORTH and WEST <= d_lng <= EAST):
        raise OutsideCity(
            f"({lat}, {lng}) is outside the city: latitude must be within {SOUTH}..{NORTH} "
            f"and longitude within {WEST}..{EAST}"
        )
    row = min(int((d_lat - SOUTH) / LAT_STEP), ROWS - 1)
    col = min(int((d_lng - WEST) / LNG_STEP), COLS - 1)
    return zone_id(row, col)


def _parse(zone: str) -> tuple[int, int]:
    try:
        prefix, row, col = zone.split("-")
        parsed = int(row), int(col)
    except ValueError:
        parsed = None
    if parsed is None or prefix != "Z" or not (0 <= parsed[0] < ROWS and 0 <= parsed[1] < COLS):
        raise ValueError(f"{zone!r} is not a zone of the city (expected Z-<row>-<col>)")
    return parsed


def zone_bounds(zone: str) -> tuple[float, float, float, float]:
    """Return (south, west, north, east) of ``zone`` in degrees."""
    row, col = _parse(zone)
    south = SOUTH + LAT_STEP * row
    west = WEST + LNG_STEP * col
    return float(south), float(west), float(south + LAT_STEP), float(west + LNG_STEP)


def zone_centre(zone: str) -> LatLng:
    """Return the centre point of ``zone``."""
    south, west, north, east = zone_bounds(zone)
    return LatLng(round((south + north) / 2, 6), round((west + east) / 2, 6))


def zones_geojson() -> dict:
    """Return the zones as a GeoJSON FeatureCollection of polygons (RFC 7946, lng/lat order)."""
    features = []
    for zone in zone_ids():
        south, west, north, east = zone_bounds(zone)
        # Exterior ring counter-clockwise, first point repeated last, as RFC 7946 asks.
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        row, col = _parse(zone)
        features.append(
            {
                "type": "Feature",
                "id": zone,
                "properties": {"zone": zone, "row": row, "col": col},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {
        "type": "FeatureCollection",
        "bbox": [float(WEST), float(SOUTH), float(EAST), float(NORTH)],
        "features": features,
    }
