"""The ingest job's per-batch logic, run in-process on records shaped like a Kafka micro-batch."""
from __future__ import annotations

import json
from pathlib import Path

import events as E
from smartcity_spark import runtime
from smartcity_spark.runtime import LakeFS


def _progress(lake) -> list[dict]:
    return [json.loads(x) for x in (lake / "_progress" / "ingest.jsonl").read_text().splitlines()]


def test_values_land_with_the_contract_types_exactly(spark, tmp_path, land):
    """No JSON reader sits between the validator and the Parquet columns; what passed is what lands."""
    lake = tmp_path / "lake"
    base = E.vehicle_event("types", "car-ü", 0, E.START, -89.999999, 179.5)
    edge = {**base, "speedKmh": 92, "seq": 2**63 - 1, "make": "Škoda 🚗", "model": "Octavia \"RS\"\n"}
    land(lake, [edge], 0)
    raw = spark.read.parquet(str(lake / "raw" / "vehicle"))
    types = dict(raw.dtypes)
    assert (types["speed_kmh"], types["seq"], types["lat"], types["year"], types["kafka_partition"], types["kafka_timestamp"]) == (
        "double", "bigint", "double", "bigint", "int", "timestamp")
    (row,) = raw.collect()
    assert (row.speed_kmh, row.seq, row.make, row.model, row.vehicle_id) == (92.0, 2**63 - 1, "Škoda 🚗", "Octavia \"RS\"\n", "car-ü")
    assert (row.lat, row.lon, row.event_time, row.date, row.hour, row.batch_id) == (-89.999999, 179.5, base["eventTime"], "2026-03-02", "09", "0")


def test_a_replayed_batch_replaces_its_own_files(spark, tmp_path, land):
    lake = tmp_path / "lake"
    batch = E.journey("replay", vehicles=1, ticks=4)
    land(lake, batch, 7)
    land(lake, batch, 7)  # Spark re-runs batch 7 after a crash: same records, same batch id
    raw = spark.read.parquet(str(lake / "raw" / "vehicle"))
    assert [(r.batch_id, r["count"]) for r in raw.groupBy("batch_id").count().collect()] == [("7", 4)]
    assert raw.select("event_id").distinct().count() == 4


def test_a_restart_deletes_what_an_uncommitted_batch_wrote_even_if_its_replay_lands_elsewhere(spark, tmp_path, land):
    lake = tmp_path / "lake"
    batch = E.journey("intent", vehicles=1, ticks=4)
    first = land(lake, batch, 3)
    assert any((lake / "raw" / "vehicle").glob("date=*/hour=*/batch_id=3/*.parquet"))
    # The job died before Spark committed batch 3; the replay runs under a smaller record limit,
    # so every record now goes to quarantine instead of raw.
    assert first.layout.discard_uncommitted(lambda batch_id: False) == [3]
    assert not any((lake / "raw").glob("*/date=*/hour=*/batch_id=3/*.parquet"))
    land(lake, batch, 3, max_record_bytes=10)
    assert not any((lake / "raw").glob("*/date=*/hour=*/batch_id=3/*.parquet"))
    assert sum(spark.read.parquet(str(folder)).count() for folder in (lake / "quarantine").iterdir()) == len(batch)
    # A committed batch keeps its files; only its intents go.
    landed = land(lake, batch, 4)
    assert landed.layout.discard_uncommitted(lambda batch_id: True) == []
    assert spark.read.parquet(str(lake / "raw" / "vehicle")).where("batch_id = '4'").count() == 4
    assert landed.layout.intents.batches() == []


def test_intents_of_committed_batches_are_dropped_as_the_next_batch_starts(tmp_path, land):
    lake = tmp_path / "lake"
    writer = land(lake, E.journey("forget", vehicles=1, ticks=2), 0)
    assert writer.layout.intents.batches() == [0]
    land(lake, E.journey("forget", vehicles=1, ticks=2), 1)
    assert writer.layout.intents.batches() == [1]


def test_every_record_is_either_valid_or_quarantined(spark, tmp_path, land, schemas):
    lake = tmp_path / "lake"
    good = E.journey("count", vehicles=1, ticks=3)
    bad = [("vehicle", b"not json"), ("gps", E.encode({**good[1], "headingDeg": 400})), ("weather", b"\xc3\x28"), ("gps", E.encode({**good[1], "accuracyM": -1}))]
    land(lake, [*good, *bad], 0)
    (line,) = _progress(lake)
    assert line["consumed"] == len(good) + len(bad)
    assert sum(line["valid"].values()) + sum(line["quarantined"].values()) == line["consumed"]
    assert line["quarantined"] == {"vehicle": 1, "gps": 2, "traffic": 0, "weather": 1, "emergency": 0}
    assert line["quarantined_kinds"] == {"vehicle": {"invalid_json": 1}, "gps": {"out_of_range": 2}, "weather": {"bad_utf8": 1}}
    newest = {s: max(e["eventTime"] for e in good if e["source"] == s) for s in {e["source"] for e in good}}
    assert line["newest_event_time"] == newest
    assert set(line) == {"batch_id", "ingest_time", "duration_ms", "consumed", "valid", "quarantined", "offsets", "freshness_ms",
                         "newest_event_time", "quarantined_kinds", "phases"}
    assert set(line["phases"]) == {"plan", "job", "read", "classify", "write", "report"}
    assert all(isinstance(ms, int) and ms >= 0 for ms in line["phases"].values())
    reasons = spark.read.parquet(str(lake / "quarantine" / "gps")).select("reason").orderBy("kafka_offset").first().reason
    assert reasons == "headingDeg: 400 is not below the exclusive maximum 360"


def test_a_progress_file_on_an_object_store_keeps_the_last_100_lines(spark, tmp_path, monkeypatch):
    """An object cannot be appended to: every line rewrites the file, which must stay bounded."""
    monkeypatch.setattr(runtime, "is_local", lambda path: False)
    fs = LakeFS(spark)
    path = str(tmp_path / "_progress" / "ingest.jsonl")
    for batch_id in range(130):
        fs.append_line(path, json.dumps({"batch_id": batch_id}))
    assert [json.loads(line)["batch_id"] for line in Path(path).read_text().splitlines()] == list(range(30, 130))
