"""A small built-in feature database (a few real places, in E7 coordinates)."""

from __future__ import annotations

import math

from examples.route_guide import route_guide_pb2 as pb

_FEATURES = [
    ("Berkshire Valley Management Area Trail, Jefferson, NJ, USA", 409146138, -746188906),
    ("1 Merck Access Road, Whitehouse Station, NJ 08889, USA", 404701380, -744781745),
    ("78-98 Schalck Road, Narrowsburg, NY 12764, USA", 416855156, -744420597),
    ("282 Lakeview Drive Road, Highland Lake, NY 12743, USA", 416855156, -743998944),
    ("", 410248224, -747127767),
    ("101 New Jersey 10, Whippany, NJ 07981, USA", 408122808, -743999179),
]


def load_features() -> list[pb.Feature]:
    return [
        pb.Feature(name=name, location=pb.Point(latitude=lat, longitude=lon))
        for name, lat, lon in _FEATURES
    ]


def distance_metres(start: pb.Point, end: pb.Point) -> int:
    """Great-circle distance (haversine), as in gRPC's route guide."""
    coord_factor = 10_000_000.0
    lat1 = math.radians(start.latitude / coord_factor)
    lat2 = math.radians(end.latitude / coord_factor)
    dlat = lat2 - lat1
    dlon = math.radians((end.longitude - start.longitude) / coord_factor)
    a = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return int(6_371_000 * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))
