"""The contracts as the jobs read them: derived from schemas/v1, never copied."""
from __future__ import annotations

import json

import pytest
from pyspark.sql import types as T

import events as E
from smartcity_spark.schemas import SchemaError, default_schemas_dir, load_schemas, read_schema_dir, snake_case
from smartcity_spark.validation import RecordValidator


def files() -> dict[str, str]:
    return read_schema_dir(default_schemas_dir())


def test_every_source_comes_from_its_file_with_its_topic(schemas):
    assert list(schemas) == ["vehicle", "gps", "traffic", "weather", "emergency"]
    for source, schema in schemas.items():
        assert schema.topic == json.loads(files()[f"{source}.json"])["x-topic"]


def test_lake_columns_are_snake_case_with_the_location_flattened(schemas):
    vehicle = schemas["vehicle"]
    assert vehicle.raw_struct.names[:9] == [
        "event_id", "source", "vehicle_id", "device_id", "seq", "event_time", "schema_version", "lat", "lon"]
    assert vehicle.raw_struct["speed_kmh"].dataType == T.DoubleType()
    assert vehicle.raw_struct["year"].dataType == T.LongType()
    assert vehicle.raw_struct["event_time"].dataType == T.StringType()
    assert vehicle.curated_struct["event_time"].dataType == T.TimestampType()
    assert (vehicle.raw_struct["lat"].dataType, vehicle.raw_struct["lon"].dataType) == (T.DoubleType(), T.DoubleType())
    assert vehicle.raw_struct.names[-1] == "journey_status"
    assert schemas["weather"].payload_columns == [
        "temperature_c", "condition", "precipitation_mm", "wind_speed_kmh", "humidity_pct", "air_quality_index"]
    assert [snake_case(n) for n in ("airQualityIndex", "eventId", "URLPath", "lat")] == ["air_quality_index", "event_id", "url_path", "lat"]


def test_constraints_are_read_from_the_files(schemas):
    gps = schemas["gps"]
    assert {"eventId", "eventTime", "schemaVersion", "location", "location.lat", "speedKmh", "vehicleType"} <= set(gps.required)
    assert gps.enums["vehicleType"] == ("private", "taxi", "bus", "delivery")
    assert gps.ranges["speedKmh"] == {"minimum": 0, "maximum": 300}
    assert gps.ranges["headingDeg"] == {"minimum": 0, "exclusiveMaximum": 360}
    assert gps.ranges["location.lon"] == {"minimum": -180, "maximum": 180}
    assert gps.formats == {"eventId": "uuid", "eventTime": "date-time"}
    assert gps.consts == {"source": "gps", "schemaVersion": 1}
    assert schemas["emergency"].formats["incidentId"] == "uuid"


def test_a_new_optional_field_is_picked_up_and_old_events_stay_valid():
    changed = files()
    vehicle = json.loads(changed["vehicle.json"])
    vehicle["properties"]["tyrePressureKpa"] = {"type": "number", "minimum": 0, "maximum": 1000}
    changed["vehicle.json"] = json.dumps(vehicle)
    schemas = load_schemas(changed)
    assert schemas["vehicle"].raw_struct["tyre_pressure_kpa"].dataType == T.DoubleType()
    assert "tyrePressureKpa" not in schemas["vehicle"].required

    validator = RecordValidator(schemas, {s: sc.topic for s, sc in schemas.items()}, 1 << 20)
    old = E.vehicle_event("schema", "car", 0, E.START, 51.5, -0.1)
    assert validator.check(bytearray(E.encode(old)), "vehicle_data").reason is None
    newer = validator.check(bytearray(E.encode({**old, "tyrePressureKpa": 230.5})), "vehicle_data")
    assert newer.reason is None and newer.event["tyrePressureKpa"] == 230.5
    assert "tyrePressureKpa: 2000 is above the maximum 1000" in validator.check(
        bytearray(E.encode({**old, "tyrePressureKpa": 2000})), "vehicle_data").reason


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda v: v["properties"].update(tags={"type": "array"}), "field tags has type 'array'"),
        (lambda v: v["properties"].update(code={"type": "string", "oneOf": []}), "keyword 'oneOf'"),
        (lambda v: v["properties"].update(site={"type": "string", "format": "uri"}), "format 'uri'"),
        (lambda v: v["properties"].update(kafkaOffset={"type": "integer"}), "kafka_offset are taken twice or reserved"),
        (lambda v: v["properties"].update(source={"const": "vehicle", "type": "integer"}), "combines type='string' with type='integer'"),
        (lambda v: v["required"].append("ghost"), "required field(s) ghost"),
    ],
)
def test_a_contract_the_jobs_cannot_enforce_fails_at_start(change, says):
    changed = files()
    vehicle = json.loads(changed["vehicle.json"])
    change(vehicle)
    changed["vehicle.json"] = json.dumps(vehicle)
    with pytest.raises(SchemaError, match="vehicle.json") as raised:
        load_schemas(changed)
    assert says in str(raised.value)
