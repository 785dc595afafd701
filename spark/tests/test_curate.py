"""The curate job on a small data set whose enrichment was worked out by hand.

Window [10:00, 11:00) on 2026-03-02; weather gap 10 min; emergencies within 2 km and ±15 min.
One degree of latitude is 111.19508 km on the job's sphere, so an incident 0.01° due north of a
position is 1.111951 km away (haversine along a meridian is exact: R·Δφ).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import types as T

import events as E
from jobs import curate
from smartcity_spark.runtime import SQL_CONF

DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
LAT, LON = 52.0, -1.0


def at(hh: int, mm: int, ss: float = 0) -> datetime:
    return DAY + timedelta(hours=hh, minutes=mm, seconds=ss)


def vehicle(name: str, seq: int, t: datetime, lat: float = LAT) -> dict:
    return E.vehicle_event("curate", name, seq, t, lat, LON)


def weather(name: str, seq: int, t: datetime, temperature: float) -> dict:
    return E.weather_event("curate", name, seq, t, LAT, LON, temperature)


def incident(seq: int, t: datetime, north_deg: float, incident: str, kind: str, status: str = "active") -> dict:
    return {**E.emergency_event("curate", "reporter", seq, t, LAT + north_deg, LON, E.uid(incident), kind), "status": status}


V1A = vehicle("car-1", 0, at(10, 0))  # exactly the window start: in
V1B = vehicle("car-1", 1, at(10, 20))
V1C = vehicle("car-1", 2, at(10, 45))
V1D = vehicle("car-1", 3, at(11, 0))  # exactly the window end: the next window's
V1E = vehicle("car-1", 4, at(9, 59, 59.999))  # the previous window's
V2A = vehicle("car-2", 0, at(10, 30), lat=52.1)

W_A = weather("car-1", 0, at(9, 55), 8.0)  # 5 min before V1A (read from the margin, hour 09)
W_B = weather("car-1", 1, at(10, 5), 9.0)  # 5 min after V1A: a tie, the earlier reading wins
W_C = weather("car-1", 2, at(10, 27), 10.0)  # 7 min after V1B
W_D = weather("car-1", 3, at(10, 56), 11.0)  # 11 min after V1C: beyond the gap
W_E = weather("car-2", 0, at(10, 44), 12.0)  # 1 min from V1C but another vehicle's
W_F = weather("car-2", 1, at(10, 31, 30), 13.0)  # 1.5 min after V2A

E1 = incident(0, at(10, 25), 0.01, "I1", "accident")
E2 = incident(1, at(10, 30), 0.015, "I2", "fire")
E3 = incident(2, at(10, 35), 0.01, "I1", "accident", status="resolved")  # I1 again
E4 = incident(3, at(10, 46), 0.03, "I3", "police")  # 3.34 km: beyond the radius
E5 = incident(4, at(9, 50), 0.0, "I4", "medical")  # on V1A's spot, 10 min before it

GPS = [E.gps_event("curate", "car-1", i, t, LAT, LON) for i, t in enumerate([at(9, 59), at(10, 10), at(11, 0)])]
TRAFFIC = [E.traffic_event("curate", "car-1", 0, at(10, 12), LAT, LON)]
ALL = [V1A, V1B, V1C, V1D, V1E, V2A, W_A, W_B, W_C, W_D, W_E, W_F, E1, E2, E3, E4, E5, *GPS, *TRAFFIC]
KM = E.KM_PER_DEGREE_LAT


def args(lake, start: str, end: str) -> object:
    return curate.parse_args(
        ["--lake-root", str(lake), "--from", start, "--to", end, "--radius-km", "2", "--emergency-minutes", "15", "--weather-max-gap-minutes", "10"],
        {},
    )


def landed(root, land):
    # The producer re-sent V1B: same eventId, later offset.
    land(root, [*ALL, V1B], 0)
    return root


def lake_session(spark):
    """A session of its own per lake: a session keeps the catalog it loaded first (lakehouse.py)."""
    session = spark.newSession()
    for key, value in SQL_CONF.items():
        session.conf.set(key, value)
    return session


@pytest.fixture(scope="module")
def curated(tmp_path_factory, land, spark):
    lake = landed(tmp_path_factory.mktemp("curate") / "lake", land)
    session = lake_session(spark)
    summary = curate.run(session, args(lake, "2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z"))
    return session, summary, lake


def table(session, source):
    return session.table(f"lake.curated.{source}")


def snapshot(session, source) -> list:
    frame = table(session, source)
    return sorted(tuple(r) for r in frame.select(*sorted(frame.columns)).collect())


def test_vehicle_positions_get_the_hand_checked_weather_and_emergencies(spark, curated):
    session, _, _ = curated
    rows = {r.event_id: r for r in table(session, "vehicle").collect()}

    a, b, c, v2 = (rows[e["eventId"]] for e in (V1A, V1B, V1C, V2A))
    assert (a.weather_event_id, a.weather_temperature_c) == (W_A["eventId"], 8.0)
    assert (b.weather_event_id, b.weather_temperature_c, b.weather_condition) == (W_C["eventId"], 10.0, "cloudy")
    assert c.weather_event_id is None and c.weather_temperature_c is None
    assert (v2.weather_event_id, v2.weather_temperature_c) == (W_F["eventId"], 13.0)
    assert b.weather_event_time == datetime(2026, 3, 2, 10, 27)

    assert (a.emergency_count, a.nearest_incident_id, a.nearest_incident_type) == (1, E.uid("I4"), "medical")
    assert a.nearest_incident_distance_km == pytest.approx(0.0, abs=1e-9)
    assert (b.emergency_count, b.nearest_incident_id, b.nearest_incident_type) == (2, E.uid("I1"), "accident")
    assert b.nearest_incident_distance_km == pytest.approx(0.01 * KM, rel=1e-9)
    assert (c.emergency_count, c.nearest_incident_id) == (2, E.uid("I1"))
    assert c.nearest_incident_distance_km == pytest.approx(0.01 * KM, rel=1e-9)
    assert (v2.emergency_count, v2.nearest_incident_id, v2.nearest_incident_distance_km) == (0, None, None)


def test_window_edges_duplicates_types_and_summary(spark, curated):
    session, summary, lake = curated
    vehicles = table(session, "vehicle")
    assert sorted(r.event_id for r in vehicles.collect()) == sorted(e["eventId"] for e in (V1A, V1B, V1C, V2A))
    assert vehicles.schema["event_time"].dataType == T.TimestampType()
    # Hidden partitioning: one hour partition, no date/hour columns.
    hours = session.sql("SELECT DISTINCT partition.event_time_hour AS h FROM lake.curated.vehicle.files").collect()
    assert [h.h for h in hours] == [(at(10, 0) - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(hours=1)]
    assert not {"kafka_offset", "batch_id", "ingest_time", "date", "hour"} & set(vehicles.columns)

    snapshots = {s: summary["sources"][s].pop("snapshot_id") for s in summary["sources"]}
    current = {r.snapshot_id for r in session.sql("SELECT snapshot_id FROM lake.curated.vehicle.refs").collect()}
    assert {int(snapshots["vehicle"])} == current
    assert summary["sources"]["vehicle"] == {"rows_read": 5, "duplicates_dropped": 1, "rows_written": 4}
    assert summary["sources"]["gps"] == {"rows_read": 1, "duplicates_dropped": 0, "rows_written": 1}
    assert summary["sources"]["weather"]["rows_written"] == 5  # W_B … W_F; W_A is 09:55
    assert summary["sources"]["emergency"]["rows_written"] == 4  # E1 … E4; E5 is 09:50
    assert summary["vehicle_enrichment"] == {"with_weather": 3, "with_emergency": 3}
    written = json.loads((lake / "_runs" / "curate" / "20260302T100000000000Z_20260302T110000000000Z.json").read_text())
    assert {s: {k: v for k, v in c.items() if k != "snapshot_id"} for s, c in written["sources"].items()} == summary["sources"]


def test_a_rerun_gives_identical_output_and_leaves_other_windows_alone(spark, tmp_path, land):
    lake = landed(tmp_path / "lake", land)
    session = lake_session(spark)
    ten, eleven, noon = "2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", "2026-03-02T12:00:00Z"
    curate.run(session, args(lake, ten, eleven))
    curate.run(session, args(lake, eleven, noon))
    before = {s: snapshot(session, s) for s in ("vehicle", "gps", "weather")}
    assert V1D["eventId"] in {r.event_id for r in table(session, "vehicle").collect()}
    commits = session.sql("SELECT count(*) AS n FROM lake.curated.vehicle.snapshots").collect()[0].n

    summary = curate.run(session, args(lake, ten, eleven))
    assert {s: snapshot(session, s) for s in before} == before
    # One commit per table and run: the re-run's, and it is the snapshot the summary names.
    history = session.sql("SELECT snapshot_id FROM lake.curated.vehicle.snapshots ORDER BY committed_at").collect()
    assert len(history) == commits + 1 and str(history[-1].snapshot_id) == summary["sources"]["vehicle"]["snapshot_id"]

    # A window that covers part of an hour replaces only that part of it.
    late = vehicle("car-3", 0, at(10, 40))
    land(lake, [late], 2)
    curate.run(session, args(lake, "2026-03-02T10:30:00Z", "2026-03-02T10:50:00Z"))
    after = {r.event_id for r in table(session, "vehicle").collect()}
    assert after == {e["eventId"] for e in (V1A, V1B, V1C, V1D, V2A, late)}

    # A window whose rows went from raw (a replayed topic compacted, a fixed producer) loses them in
    # curated: the table holds exactly what the window's curate computed, also when that is less.
    (lake / "raw" / "vehicle").rename(lake / "raw" / "vehicle-gone")
    curate.run(session, args(lake, "2026-03-02T10:30:00Z", "2026-03-02T10:50:00Z"))
    after = {r.event_id for r in table(session, "vehicle").collect()}
    assert after == {e["eventId"] for e in (V1A, V1B, V1D)}
