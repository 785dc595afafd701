"""The ingest job's per-batch logic, run in-process on records shaped like a Kafka micro-batch."""
from __future__ import annotations

import json

from pyspark.sql import functions as F

import events as E
from jobs.stream_ingest import unread_fields


def test_from_json_nulls_are_caught_not_kept(spark, schemas):
    """from_json turns a value it cannot convert into null without a word; the guard names it."""
    schema = schemas["vehicle"]
    good = E.vehicle_event("guard", "car", 0, E.START, 51.5, -0.1)
    cases = [
        good,
        {**good, "speedKmh": "fast"},
        {**good, "location": {"lat": "north", "lon": -0.1}},
        {**good, "seq": 99999999999999999999},
    ]
    frame = spark.createDataFrame([(json.dumps(c),) for c in cases], "j string")
    values = F.lit(len(schema.leaves()))
    lost = unread_fields(schema, F.from_json("j", schema.json_struct), values)
    found = [r.lost for r in frame.select(lost.alias("lost")).collect()]
    prefix = "Spark could not read 1 value(s) that passed validation; null after from_json: "
    assert found == [None, prefix + "speedKmh", prefix + "location.lat", prefix + "seq"]


def test_a_replayed_batch_replaces_its_own_files(spark, tmp_path, land):
    lake = tmp_path / "lake"
    batch = E.journey("replay", vehicles=1, ticks=4)
    land(lake, batch, 7)
    land(lake, batch, 7)  # Spark re-runs batch 7 after a crash: same records, same batch id
    raw = spark.read.parquet(str(lake / "raw" / "vehicle"))
    assert [(r.batch_id, r["count"]) for r in raw.groupBy("batch_id").count().collect()] == [("7", 4)]
    assert raw.select("event_id").distinct().count() == 4


def test_every_record_is_either_valid_or_quarantined(spark, tmp_path, land, schemas):
    lake = tmp_path / "lake"
    good = E.journey("count", vehicles=1, ticks=3)
    bad = [("vehicle", b"not json"), ("gps", E.encode({**good[1], "headingDeg": 400})), ("weather", b"\xc3\x28")]
    land(lake, [*good, *bad], 0)
    (line,) = [json.loads(x) for x in (lake / "_progress" / "ingest.jsonl").read_text().splitlines()]
    assert line["consumed"] == len(good) + len(bad)
    assert sum(line["valid"].values()) + sum(line["quarantined"].values()) == line["consumed"]
    assert line["quarantined"] == {"vehicle": 1, "gps": 1, "traffic": 0, "weather": 1, "emergency": 0}
    assert set(line) == {"batch_id", "ingest_time", "duration_ms", "consumed", "valid", "quarantined", "offsets", "freshness_ms"}
    reasons = spark.read.parquet(str(lake / "quarantine" / "gps")).select("reason").first().reason
    assert reasons == "headingDeg: 400 is not below the exclusive maximum 360"
