"""The validator's verdicts and reasons, one record at a time (no Spark)."""
from __future__ import annotations

import json
import random
import sys
import types
from datetime import datetime, timezone

import pytest

import events as E
from jobs import curate
from jobs.stream_ingest import kafka_options, resolve_topics
from smartcity_spark.validation import _FAIL, RecordValidator, _check_object, _compile_object, _fast_object

GOOD = E.vehicle_event("validation", "car-7", 3, E.START, 51.9, -0.9)


@pytest.fixture(scope="module")
def check(schemas):
    validator = RecordValidator(schemas, {s: sc.topic for s, sc in schemas.items()}, 1024 * 1024)
    return lambda value, topic="vehicle_data": validator.check(None if value is None else bytearray(value), topic)


def variant(**changes) -> bytes:
    return E.encode({k: v for k, v in {**GOOD, **changes}.items() if v is not None})


def test_a_valid_event_is_normalised_and_partitioned_by_its_utc_hour(check):
    verdict = check(variant(seq=3.0, speedKmh=92, extra={"ignored": True}, eventTime="2026-03-02T09:59:59.9999Z"))
    assert verdict.reason is None and verdict.error_kind is None
    event = verdict.event
    assert event["seq"] == 3 and isinstance(event["seq"], int)
    assert event["speedKmh"] == 92.0 and isinstance(event["speedKmh"], float)
    assert "extra" not in event and event["location"] == GOOD["location"]
    assert (verdict.date, verdict.hour) == ("2026-03-02", "09")
    assert verdict.event_time == datetime(2026, 3, 2, 9, 59, 59, 999900, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value, kind, reason",
    [
        (b'{"eventId": ', "invalid_json", "invalid JSON: Expecting value: line 1 column 13 (char 12)"),
        (b'{"a": 1, "a": 2}', "invalid_json", 'invalid JSON: duplicate key "a"'),
        (b'{"speedKmh": NaN}', "invalid_json", "invalid JSON: NaN is not valid JSON"),
        (b'"just a string"', "not_an_object", "event is not a JSON object (got string)"),
        (b'{"vehicleId": "\xe9t\xe9"}', "bad_utf8", "value is not valid UTF-8 (invalid continuation byte at byte 15)"),
        (None, "no_value", "record has no value (a tombstone)"),
        (variant(speedKmh=None), "missing_field", 'missing required field "speedKmh"'),
        (variant(location={"lon": -0.9}), "missing_field", 'missing required field "location.lat"'),
        (variant(headingDeg="north"), "wrong_type", "field headingDeg: expected number, got string"),
        (variant(speedKmh=True), "wrong_type", "field speedKmh: expected number, got boolean"),
        (variant(seq=1.5), "wrong_type", "field seq: expected integer, got number"),
        (variant(location="51.9,-0.9"), "wrong_type", "field location: expected object, got string"),
        (variant(make=None, model=None), "missing_field", 'missing required field "make"; missing required field "model"'),
        (variant(speedKmh=412.0), "out_of_range", "speedKmh: 412.0 is above the maximum 300"),
        (variant(headingDeg=360), "out_of_range", "headingDeg: 360 is not below the exclusive maximum 360"),
        (variant(seq=-1), "out_of_range", "seq: -1 is below the minimum 0"),
        (variant(seq=2**63), "out_of_range", "seq: 9223372036854775808 does not fit a 64-bit integer"),
        (variant(location={"lat": 95.5, "lon": -0.9}), "out_of_range", "location.lat: 95.5 is above the maximum 90"),
        (variant(eventTime="2026-01-01 10:00"), "bad_format", 'eventTime: "2026-01-01 10:00" is not ISO-8601 UTC with Z'),
        (variant(eventTime="2026-01-01T10:00:00+01:00"), "bad_format", "is not ISO-8601 UTC with Z"),
        (variant(eventTime="2026-02-30T10:00:00Z"), "bad_format", "is not ISO-8601 UTC with Z"),
        (variant(eventId="car-7/3"), "bad_format", 'eventId: "car-7/3" is not a UUID'),
        (variant(direction="NNW"), "not_allowed", 'direction: "NNW" is not one of "N", "NE", "E", "SE", "S", "SW", "W", "NW"'),
        (variant(schemaVersion=2), "not_allowed", "schemaVersion: expected 1, got 2"),
        (variant(vehicleId=""), "bad_length", 'vehicleId: "" is shorter than 1 character(s)'),
        (variant(model="x" * 65), "bad_length", "model: 65 characters exceed the maximum length 64"),
        (variant(source="bus"), "unknown_source", 'unknown source "bus" on topic vehicle_data'),
        (variant(source=None), "missing_field", 'missing required field "source"'),
        (variant(source="gps"), "source_mismatch", 'source "gps" does not match topic vehicle_data'),
    ],
)
def test_each_problem_gets_a_reason_a_person_can_act_on(check, value, kind, reason):
    verdict = check(value)
    assert verdict.error_kind == kind
    assert reason in verdict.reason
    assert verdict.event is None


def test_the_size_limit_comes_before_anything_else(schemas):
    validator = RecordValidator(schemas, {s: sc.topic for s, sc in schemas.items()}, 1024 * 1024)
    big = bytearray(b"\xff" * int(2.1 * 1024 * 1024))
    verdict = validator.check(big, "gps_data")
    assert verdict.error_kind == "oversized"
    assert verdict.reason == f"record of 2.1 MB ({len(big)} bytes) exceeds the limit of 1 MB (1048576 bytes)"


def test_kafka_security_comes_from_the_project_settings_and_options_win():
    env = {
        "SMARTCITY_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "SMARTCITY_KAFKA_SASL_USERNAME": "fleet",
        "SMARTCITY_KAFKA_SASL_PASSWORD": 'p"w\\d',
    }
    options = kafka_options("b-1.msk:9096", ["ssl.endpoint.identification.algorithm=", "kafka.client.id=ingest"], env)
    assert options["kafka.bootstrap.servers"] == "b-1.msk:9096"
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="fleet" password="p\\"w\\\\d";')
    assert options["kafka.ssl.endpoint.identification.algorithm"] == "" and options["kafka.client.id"] == "ingest"
    assert kafka_options("h:9092", [], {"SMARTCITY_KAFKA_SSL": "true"})["kafka.security.protocol"] == "SSL"
    assert kafka_options("h:9092", [], {}) == {"kafka.bootstrap.servers": "h:9092"}
    with pytest.raises(SystemExit, match="USERNAME"):
        kafka_options("h:9092", [], {"SMARTCITY_KAFKA_SASL_MECHANISM": "plain"})


def test_topics_default_to_x_topic_and_can_be_renamed(schemas):
    assert resolve_topics(schemas, []) == {s: sc.topic for s, sc in schemas.items()}
    assert resolve_topics(schemas, ["gps=t_1_gps_data"])["gps"] == "t_1_gps_data"
    with pytest.raises(SystemExit, match="SOURCE one of"):
        resolve_topics(schemas, ["bus=t_bus"])


def test_curate_takes_glue_style_arguments_when_awsglue_is_there(monkeypatch):
    def get_resolved_options(argv, names):
        pairs = dict(zip(argv[1::2], argv[2::2]))
        return {name: pairs[f"--{name}"] for name in names}

    glue = types.ModuleType("awsglue")
    glue.utils = types.SimpleNamespace(getResolvedOptions=get_resolved_options)
    monkeypatch.setitem(sys.modules, "awsglue", glue)
    monkeypatch.setitem(sys.modules, "awsglue.utils", glue.utils)
    args = curate.parse_args(
        ["--JOB_NAME", "curate", "--lake_root", "s3://lake", "--from", "2026-03-02T10:00:00Z", "--to", "2026-03-02T11:00:00Z", "--radius_km", "2.5"],
        {},
    )
    assert (args.lake_root, args.radius_km, args.emergency_minutes) == ("s3://lake", 2.5, 30.0)
    assert (args.start.isoformat(), args.end.isoformat()) == ("2026-03-02T10:00:00+00:00", "2026-03-02T11:00:00+00:00")
    assert args.summary_path == "s3://lake/_runs/curate/20260302T100000000000Z_20260302T110000000000Z.json"


_ODD_VALUES = [None, True, False, 0, -1, 1, 2**63, -(2**63) - 1, 2**63 - 1, 10**400, 1e308, float("inf"), -0.0, 0.5, 3.0, 359.999, 360, -90.0000001, 90,
               "", "x", "\ud800", "é", "NW", "2026-03-02T09:00:00Z", "2026-03-02T09:00:00+01:00", "2026-02-30T09:00:00Z",
               "6f1c2b1e-8a53-4c36-9a4e-2f5d0c7b9e11", "x" * 65, [], {}, {"lat": 1, "lon": 2}, {"lat": "1"}]


def _edges(field) -> list:
    """Values on and just past each of a field's limits."""
    out = []
    for bound in (field.minimum, field.maximum, field.exclusive_minimum, field.exclusive_maximum):
        if bound is not None:
            out += [bound, bound - 1, bound + 1, bound - 1e-9, bound + 1e-9, float(bound)]
    for length in (field.min_length, field.max_length):
        if length is not None:
            out += ["a" * (length - 1), "a" * length, "a" * (length + 1)]
    out += list(field.enum or ()) + ([field.const] if field.has_const else [])
    return out


def _mutations(schemas, seed: int, count: int):
    """(source, event): valid events of every source with one field (sometimes two or three)
    replaced by an odd or edge value, removed, or added."""
    rng = random.Random(seed)
    bases = [E.vehicle_event("m", "car", 1, E.START, 51.5, -0.1), E.gps_event("m", "car", 1, E.START, 51.5, -0.1),
             E.weather_event("m", "car", 1, E.START, 51.5, -0.1), E.traffic_event("m", "car", 1, E.START, 51.5, -0.1),
             E.emergency_event("m", "car", 1, E.START, 51.5, -0.1, E.uid("i"))]
    for _ in range(count):
        base = rng.choice(bases)
        event = json.loads(json.dumps(base))
        fields = {f.path: f for f in schemas[base["source"]].leaves()}
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
            path = rng.choice([*fields, "extra", "location"])
            *parents, key = path.split(".")
            target = event
            for part in parents:
                target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                continue
            if rng.random() < 0.1:
                target.pop(key, None)
            else:
                candidates = _ODD_VALUES + (_edges(fields[path]) if path in fields else [])
                target[key] = rng.choice(candidates)
        yield base["source"], event


def test_the_fast_check_accepts_exactly_what_the_full_check_accepts(schemas):
    plans = {source: _compile_object(schema.fields) for source, schema in schemas.items()}
    accepted = rejected = 0
    for source, event in _mutations(schemas, seed=12, count=5000):
        problems = []
        full = _check_object(schemas[source].fields, event, problems)
        fast = _fast_object(plans[source], event)
        if problems:
            assert fast is _FAIL, (event, problems)
            rejected += 1
        else:
            assert fast == full and [type(v) for v in fast.values()] == [type(v) for v in full.values()], event
            accepted += 1
    assert accepted > 300 and rejected > 1000
