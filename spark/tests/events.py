"""Valid smartcity events, built by hand after schemas/v1: vehicles driving London → Birmingham."""
from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta, timezone

LONDON = (51.5074, -0.1278)
BIRMINGHAM = (52.4862, -1.8904)
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
_IDS = uuid.UUID("6f1c2b1e-8a53-4c36-9a4e-2f5d0c7b9e11")
# Kilometres per degree of latitude on the sphere the curate job measures with (R = 6371.0088 km).
KM_PER_DEGREE_LAT = 6371.0088 * math.pi / 180


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def uid(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(map(str, parts))))


def envelope(run: str, source: str, vehicle: str, seq: int, t: datetime) -> dict:
    return {
        "eventId": uid(run, vehicle, source, seq),
        "source": source,
        "vehicleId": vehicle,
        "deviceId": f"{vehicle}-{source}",
        "seq": seq,
        "eventTime": iso(t),
        "schemaVersion": 1,
    }


def vehicle_event(run: str, vehicle: str, seq: int, t: datetime, lat: float, lon: float) -> dict:
    return {
        **envelope(run, "vehicle", vehicle, seq, t),
        "location": {"lat": lat, "lon": lon},
        "speedKmh": 92.5,
        "headingDeg": 310.4,
        "direction": "NW",
        "make": "Volvo",
        "model": "XC40",
        "year": 2022,
        "fuelType": "electric",
        "journeyStatus": "departed" if seq == 0 else "en_route",
    }


def gps_event(run: str, vehicle: str, seq: int, t: datetime, lat: float, lon: float) -> dict:
    return {
        **envelope(run, "gps", vehicle, seq, t),
        "location": {"lat": lat, "lon": lon},
        "speedKmh": 91.8,
        "headingDeg": 310.1,
        "accuracyM": 4.5,
        "vehicleType": "private",
    }


def weather_event(run: str, vehicle: str, seq: int, t: datetime, lat: float, lon: float, temperature: float = 11.5) -> dict:
    return {
        **envelope(run, "weather", vehicle, seq, t),
        "location": {"lat": lat, "lon": lon},
        "temperatureC": temperature,
        "condition": "cloudy",
        "precipitationMm": 0.2,
        "windSpeedKmh": 18.0,
        "humidityPct": 71.0,
        "airQualityIndex": 42,
    }


def traffic_event(run: str, vehicle: str, seq: int, t: datetime, lat: float, lon: float) -> dict:
    return {
        **envelope(run, "traffic", vehicle, seq, t),
        "cameraId": f"cam-{seq:03d}",
        "location": {"lat": lat, "lon": lon},
        "observedSpeedKmh": 88.0,
        "congestion": "moderate",
        "snapshotRef": f"s3://smartcity-snapshots/{vehicle}/{seq}.jpg",
    }


def emergency_event(run: str, vehicle: str, seq: int, t: datetime, lat: float, lon: float, incident: str, kind: str = "accident") -> dict:
    return {
        **envelope(run, "emergency", vehicle, seq, t),
        "incidentId": incident,
        "incidentType": kind,
        "location": {"lat": lat, "lon": lon},
        "status": "active",
        "description": "Two cars collided on the M40, left lane blocked.",
    }


def journey(run: str, vehicles: int = 2, ticks: int = 20, start: datetime = START, step: timedelta = timedelta(seconds=30)) -> list[dict]:
    """Per tick and vehicle a vehicle, GPS and weather event; a camera every 5th tick; one incident each."""
    events = []
    for v in range(vehicles):
        vehicle = f"{run}-car-{v}"
        for tick in range(ticks):
            f = tick / max(ticks - 1, 1)
            lat = round(LONDON[0] + f * (BIRMINGHAM[0] - LONDON[0]), 6)
            lon = round(LONDON[1] + f * (BIRMINGHAM[1] - LONDON[1]), 6)
            t = start + tick * step + timedelta(milliseconds=v)
            events += [vehicle_event(run, vehicle, tick, t, lat, lon), gps_event(run, vehicle, tick, t, lat, lon), weather_event(run, vehicle, tick, t, lat, lon)]
            if tick % 5 == 0:
                events.append(traffic_event(run, vehicle, tick // 5, t, lat, lon))
            if tick == ticks // 2:
                events.append(emergency_event(run, vehicle, 0, t, lat, lon, uid(run, vehicle, "incident")))
    return events


def encode(event: dict) -> bytes:
    return json.dumps(event).encode("utf-8")
