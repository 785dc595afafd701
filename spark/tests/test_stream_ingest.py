"""The streaming job end to end: real Kafka, real spark-submit, the lake it leaves behind."""
from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from pyspark.sql import functions as F

import events as E

RUN = "ingest"
START = datetime(2026, 3, 2, 9, 55, tzinfo=timezone.utc)  # the journey crosses into hour 10


def _bad_cases(topics: dict[str, str]) -> dict[str, tuple[str, bytes, str, str]]:
    """key → (topic, value, error_kind, what the reason must say)."""
    base = E.vehicle_event(RUN, "bad-car", 0, START, 51.6, -0.3)

    def variant(**changes) -> bytes:
        event = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return E.encode(event)

    gps = E.gps_event(RUN, "bad-car", 0, START, 51.6, -0.3)
    traffic = E.traffic_event(RUN, "bad-car", 0, START, 51.6, -0.3)
    weather = E.weather_event(RUN, "bad-car", 0, START, 51.6, -0.3)
    emergency = E.emergency_event(RUN, "bad-car", 0, START, 51.6, -0.3, E.uid("bad-incident"))
    return {
        "bad-json": (topics["vehicle"], b'{"eventId": "3b1f", "source": "vehicle",', "invalid_json", "invalid JSON: "),
        "missing-field": (topics["vehicle"], variant(speedKmh=None), "missing_field", 'missing required field "speedKmh"'),
        "wrong-type": (topics["vehicle"], variant(headingDeg="north-west"), "wrong_type", "field headingDeg: expected number, got string"),
        "out-of-range": (topics["gps"], E.encode({**gps, "speedKmh": 412.0}), "out_of_range", "speedKmh: 412.0 is above the maximum 300"),
        "unknown-source": (topics["vehicle"], variant(source="bus"), "unknown_source", f'unknown source "bus" on topic {topics["vehicle"]}'),
        "wrong-topic": (topics["vehicle"], E.encode(gps), "source_mismatch", f'source "gps" does not match topic {topics["vehicle"]}'),
        "oversized": (
            topics["traffic"],
            E.encode({**traffic, "padding": "x" * (2 * 1024 * 1024)}),
            "oversized",
            "exceeds the limit of 1 MB (1048576 bytes)",
        ),
        "bad-utf8": (topics["weather"], b'{"source": "weather", "condition": "\xff\xfe"}', "bad_utf8", "value is not valid UTF-8"),
        "bad-time": (
            topics["emergency"],
            E.encode({**emergency, "eventTime": "2026-01-01 10:00"}),
            "bad_format",
            'eventTime: "2026-01-01 10:00" is not ISO-8601 UTC with Z',
        ),
    }


@pytest.fixture(scope="module")
def landed(tmp_path_factory, new_ingest, kafka, spark):
    job = new_ingest(tmp_path_factory.mktemp("ingest"))
    valid = E.journey(RUN, vehicles=2, ticks=20, start=START)
    # A producer on a newer contract may add a field; the job must keep the record as valid.
    newer = {**E.vehicle_event(RUN, "new-car", 0, START, 51.7, -0.5), "tyrePressureKpa": 231.5, "driver": {"shift": 3}}
    valid.append(newer)
    bad = _bad_cases(job.topics)
    kafka.produce([(job.topics[e["source"]], e["vehicleId"], E.encode(e)) for e in valid])
    kafka.produce([(topic, key, value) for key, (topic, value, _, _) in bad.items()])

    job.run("--available-now", "--max-offsets-per-trigger", "80")
    return {"job": job, "valid": valid, "newer": newer, "bad": bad}


def _table(spark, lake, layer, source):
    path = lake / layer / source
    return spark.read.parquet(str(path)) if path.exists() else None


def test_valid_events_land_in_raw_exactly_once(landed, spark, schemas):
    job = landed["job"]
    expected = Counter(e["source"] for e in landed["valid"])
    for source, schema in schemas.items():
        raw = _table(spark, job.lake, "raw", source)
        ids = [r.event_id for r in raw.select("event_id").collect()]
        assert len(ids) == expected[source], source
        assert sorted(ids) == sorted(e["eventId"] for e in landed["valid"] if e["source"] == source)
        assert raw.columns[: len(schema.raw_struct)] == schema.raw_struct.names
        assert {"kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "ingest_time", "date", "hour", "batch_id"} <= set(raw.columns)


def test_raw_rows_keep_the_event_and_sit_in_their_event_time_hour(landed, spark):
    job = landed["job"]
    raw = _table(spark, job.lake, "raw", "vehicle")
    rows = {r.event_id: r for r in raw.collect()}
    for event in (e for e in landed["valid"] if e["source"] == "vehicle"):
        row = rows[event["eventId"]]
        assert (row.lat, row.lon) == (event["location"]["lat"], event["location"]["lon"])
        assert (row.speed_kmh, row.heading_deg, row.year, row.journey_status) == (
            event["speedKmh"], event["headingDeg"], event["year"], event["journeyStatus"])
        assert row.event_time == event["eventTime"]
        assert (row.date, row.hour) == (event["eventTime"][:10], event["eventTime"][11:13])
        assert row.kafka_topic == job.topics["vehicle"]
    assert {r.hour for r in rows.values()} == {"09", "10"}


def test_a_new_optional_field_does_not_break_the_job(landed, spark):
    raw = _table(spark, landed["job"].lake, "raw", "vehicle")
    row = raw.where(F.col("event_id") == landed["newer"]["eventId"]).collect()
    assert len(row) == 1 and row[0].speed_kmh == landed["newer"]["speedKmh"]
    assert "tyre_pressure_kpa" not in raw.columns


def test_each_malformed_record_is_quarantined_with_its_reason(landed, spark, schemas):
    job = landed["job"]
    rows = {}
    for source in schemas:
        table = _table(spark, job.lake, "quarantine", source)
        if table is not None:
            rows.update({r.kafka_key: (source, r) for r in table.collect()})
    assert set(rows) == set(landed["bad"])
    source_of_topic = {t: s for s, t in job.topics.items()}
    for key, (topic, value, kind, says) in landed["bad"].items():
        source, row = rows[key]
        assert source == source_of_topic[topic], key
        assert says in row.reason, (key, row.reason)
        assert row.error_kind == kind, key
        assert (row.kafka_topic, row.value_bytes) == (topic, len(value))
        assert row.kafka_partition is not None and row.kafka_offset is not None and row.kafka_timestamp is not None
        assert row.ingest_time >= row.kafka_timestamp - timedelta(minutes=1)
        assert row.date == row.kafka_timestamp.strftime("%Y-%m-%d") and row.batch_id is not None
        if kind == "bad_utf8":
            assert base64.b64decode(row.value_base64) == value
            assert row.value == value.decode("utf-8", errors="replace")
        else:
            assert row.value_base64 is None and row.value == value.decode("utf-8")


def test_every_batch_accounts_for_every_record(landed, spark, schemas):
    job = landed["job"]
    progress = job.progress()
    assert len(progress) > 1, "--max-offsets-per-trigger should split the backlog"
    assert sum(p["consumed"] for p in progress) == len(landed["valid"]) + len(landed["bad"])
    lake_counts = Counter()
    for layer in ("raw", "quarantine"):
        for source in schemas:
            table = _table(spark, job.lake, layer, source)
            if table is not None:
                for r in table.groupBy("batch_id").count().collect():
                    lake_counts[(layer, source, int(r.batch_id))] = r["count"]
    for p in progress:
        assert p["consumed"] == sum(p["valid"].values()) + sum(p["quarantined"].values()), p
        for source in schemas:
            assert lake_counts[("raw", source, p["batch_id"])] == p["valid"][source], (p, source)
            assert lake_counts[("quarantine", source, p["batch_id"])] == p["quarantined"][source], (p, source)
        offsets = sum(o["end"] - o["start"] for parts in p["offsets"].values() for o in parts.values())
        assert offsets == p["consumed"]
        assert p["duration_ms"] >= 0 and p["freshness_ms"] is not None
        assert datetime.fromisoformat(p["ingest_time"].replace("Z", "+00:00")).tzinfo is not None
