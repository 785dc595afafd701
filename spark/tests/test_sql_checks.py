"""The SQL fast path against the Python validator, record by record: whatever it vouches for, the
Python validator finds valid, with the same values and partition; everything else it leaves to
Python. Its speed is only worth having if that holds for every record a producer could send."""
from __future__ import annotations

import json
import random

import pytest
from pyspark.sql import functions as F

import events as E
from smartcity_spark.sql_checks import SqlValidator, _portable
from smartcity_spark.validation import MIB, RecordValidator

RUN = "sql"
VEHICLE = E.vehicle_event(RUN, "car-1", 4, E.START, 51.9, -0.9)
TRAFFIC = E.traffic_event(RUN, "car-1", 1, E.START, 51.9, -0.9)


def raw(text: str) -> bytes:
    return text.encode("utf-8")


def vehicle_json(**changes) -> bytes:
    return E.encode({k: v for k, v in {**VEHICLE, **changes}.items() if v is not None})


def judge(spark, schemas, records: list[tuple[str, bytes | None]]) -> list[tuple[dict, object]]:
    """(source, value) records → (what the fast path made of each, the Python verdict)."""
    topics = {s: sc.topic for s, sc in schemas.items()}
    python = RecordValidator(schemas, topics, MIB)
    verdicts = [python.check(None if v is None else bytearray(v), topics[s]) for s, v in records]
    frame = spark.createDataFrame(
        [(i, s, None if v is None else bytearray(v), verdicts[i].event_json) for i, (s, v) in enumerate(records)],
        "i int, source string, value binary, event_json string",
    )
    # The Python path's typed event: from_json of the validator's normalised JSON, as the job reads it.
    expected = [F.when(F.col("source") == s, F.from_json("event_json", sc.json_struct)).alias(f"expected_{s}") for s, sc in schemas.items()]
    rows = SqlValidator(schemas, MIB).classify(frame).select("*", *expected).orderBy("i").collect()
    return [(row.asDict(recursive=True), verdicts[row.i]) for row in rows]


def assert_sound(results) -> None:
    for row, verdict in results:
        if row["vouched"]:
            source = row["source"]
            assert verdict.reason is None, f"vouched for a record Python rejects ({verdict.reason}): {row['value']!r}"
            assert row[f"typed_{source}"] == row[f"expected_{source}"], row["value"]
            assert (row["date"], row["hour"]) == (verdict.date, verdict.hour)
        else:
            assert row["date"] is None and all(row[k] is None for k in row if k.startswith("typed_"))


def test_the_events_producers_send_are_vouched_for_with_python_s_values(spark, schemas):
    events = E.journey(RUN, vehicles=2, ticks=12)
    results = judge(spark, schemas, [(e["source"], E.encode(e)) for e in events])
    assert_sound(results)
    assert all(row["vouched"] for row, _ in results)
    assert {row["source"] for row, _ in results} == set(schemas)


TRICKY = [
    raw('{"eventId": '),
    vehicle_json()[:-1] + b', "speedKmh": 1}',  # a duplicate key
    vehicle_json()[:-1] + b', "location": {"lat": 1, "lat": 2, "lon": 3}}',
    vehicle_json() + b" x",  # Jackson stops after the object; Python sees extra data
    vehicle_json() + b"}",
    vehicle_json() + b"]}",
    vehicle_json().replace(b"92.5", b"NaN"),
    vehicle_json().replace(b'"Volvo"', b"'Volvo'"),
    b"\xef\xbb\xbf" + vehicle_json(),  # a BOM
    vehicle_json(make="caf\udce9"),
    vehicle_json().replace(b'"Volvo"', b'"\\ud83d\\ude97"'),  # a valid pair, still left to Python
    vehicle_json().replace(b'"Volvo"', b'"Vol\xffvo"'),
    vehicle_json(seq=3.0),  # Python accepts it as 3: its normalising, not the fast path's
    vehicle_json(seq=2**63),
    vehicle_json(year="2022"),
    vehicle_json(speedKmh="92.5"),
    vehicle_json(make=500),
    vehicle_json(make="500"),  # valid, but reads like a number
    vehicle_json(make=True),
    vehicle_json(make="true"),
    vehicle_json(make={"a": 1}),
    vehicle_json(make=["Volvo"]),
    vehicle_json(model=None),
    vehicle_json(speedKmh=1e400),
    vehicle_json().replace(b"92.5", b"1e400"),
    vehicle_json(speedKmh=-0.0),
    vehicle_json(headingDeg=360),
    vehicle_json(eventTime="2026-03-02T09:00:00+00:00"),
    vehicle_json(eventTime="2026-02-29T09:00:00Z"),
    vehicle_json(eventTime="2024-02-30T09:00:00Z"),
    vehicle_json(eventTime="2026-03-02T24:00:00Z"),
    vehicle_json(eventTime="2026-03-02T09:00:60Z"),
    vehicle_json(eventTime="0999-03-02T09:00:00Z"),
    vehicle_json(eventTime="2026-03-02T09:00:00.1234567891Z"),
    vehicle_json(eventTime="2026-03-02T09:00:00Z\n"),
    vehicle_json(eventId=VEHICLE["eventId"].upper()),
    vehicle_json(eventId="urn:uuid:" + VEHICLE["eventId"]),
    vehicle_json(eventId=VEHICLE["eventId"] + "\n"),
    vehicle_json(source="gps"),
    vehicle_json(schemaVersion=1.0),
    vehicle_json(schemaVersion=True),
    vehicle_json(direction="nw"),
    vehicle_json(vehicleId=""),
    vehicle_json(model="x" * 64),
    vehicle_json(model="é" * 64),
    vehicle_json(model="x" * 65),
    vehicle_json(extra=1, note="fine"),  # unknown scalars: Python ignores them
    vehicle_json(extra={"a": 1}),  # an unknown object: left to Python
    vehicle_json(location={"lat": 51.9, "lon": -0.9, "alt": 120}),
    vehicle_json(location={"lat": 51.9}),
    vehicle_json(location={"lat": "51.9", "lon": -0.9}),
    vehicle_json(Make="Volvo", make=None),  # a key differing in case
    vehicle_json(tyrePressureKpa=None),
    json.dumps({**VEHICLE, "make": "a\\\"b\u2028"}).encode(),
    json.dumps(VEHICLE, indent=2).encode(),
    json.dumps(VEHICLE, ensure_ascii=True).replace('"Volvo"', '"\\u0056olvo"').encode(),
    raw("[]"),
    raw('"x"'),
    None,
]


@pytest.fixture(scope="module")
def tricky(spark, schemas):
    return judge(spark, schemas, [("vehicle", v) for v in TRICKY])


@pytest.mark.parametrize("case", range(len(TRICKY)))
def test_tricky_records_are_vouched_for_only_when_python_agrees(tricky, case):
    assert_sound([tricky[case]])


def test_what_must_be_left_to_python_is(spark, schemas):
    refused = [
        vehicle_json()[:-1] + b', "speedKmh": 1}',
        vehicle_json()[:-1] + b', "location": {"lat": 1, "lat": 2, "lon": 3}}',
        vehicle_json() + b"]}",
        vehicle_json().replace(b"92.5", b"NaN"),
        vehicle_json(make="caf\udce9"),
        vehicle_json(make=500),
        vehicle_json(speedKmh=1e400),
        vehicle_json(eventTime="2024-02-30T09:00:00Z"),
        vehicle_json(eventTime="2026-03-02T09:00:00Z\n"),
        vehicle_json(extra={"b": 1, "c": 2}).replace(b'"c": 2', b'"b": 2'),
        # Valid, but a field the contract does not know is left to Python, which drops it.
        vehicle_json(extra=1),
        vehicle_json(location={"lat": 51.9, "lon": -0.9, "alt": 120}),
        # Valid, but any escape is left to Python.
        json.dumps({**VEHICLE, "make": 'Volvo "XC"'}).encode(),
        # Valid, but a brace in a string or a string starting with a colon upsets the counts.
        vehicle_json(make="Volvo {XC}"),
        vehicle_json(make=":x"),
    ]
    accepted = [vehicle_json(), json.dumps(VEHICLE, indent=2).encode(), json.dumps({**VEHICLE, "model": "é" * 64}, ensure_ascii=False).encode(),
                vehicle_json(make="Volvo [XC]")]
    results = judge(spark, schemas, [("vehicle", v) for v in refused + accepted])
    assert [row["vouched"] for row, _ in results] == [False] * len(refused) + [True] * len(accepted)


_ODD_VALUES = [None, True, False, 0, -0.0, 3.0, 1.5, -1, 2**53 + 1, 2**63, 1e308, "", " ", "0", "12", "-x", "true", "null", "{",
               "[", '"', "Volvo", "é", "\u2028", "x" * 70, "NW", "nw", "2026-03-02T09:00:00Z", "2026-03-02T09:00:00.5Z",
               "2026-13-02T09:00:00Z", "6f1c2b1e-8a53-4c36-9a4e-2f5d0c7b9e11", {"lat": 1, "lon": 2}, {"lat": 91, "lon": 2}, [], {}]


def _mutations(rng: random.Random, base: dict, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        event = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice([*event.keys(), "extra", "Source"])
            if rng.random() < 0.15:
                event.pop(key, None)
            else:
                event[key] = rng.choice(_ODD_VALUES)
        text = json.dumps(event, indent=rng.choice([None, None, 1]), ensure_ascii=rng.random() < 0.3)
        if rng.random() < 0.1:
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice([" ", "}", ",", "\\", '"', "]", "\n"]) + text[cut:]
        out.append(text.encode("utf-8", errors="surrogatepass"))
    return out


def test_random_mutations_never_make_the_fast_path_disagree_with_python(spark, schemas):
    rng = random.Random(20260302)
    records = [("vehicle", v) for v in _mutations(rng, VEHICLE, 600)] + [("traffic", v) for v in _mutations(rng, TRAFFIC, 300)]
    results = judge(spark, schemas, records)
    assert_sound(results)
    vouched = sum(row["vouched"] for row, _ in results)
    python_valid = sum(verdict.reason is None for _, verdict in results)
    # Unknown keys and escapes (ensure_ascii) send many mutants to Python; plain ones stay fast.
    assert 0 < vouched <= python_valid


def test_only_patterns_java_and_python_read_alike_are_evaluated_in_sql():
    assert _portable("Z$") and _portable(r"^[A-Z]{2}-\d{3,4}$") and _portable(r"^(?:cam|gps)-[0-9a-f]+$")
    assert not _portable(r"(?P<id>\d+)") and not _portable(r"[a-z&&[^q]]") and not _portable(r"\d{,3}") and not _portable(r"a*+")
    assert not _portable(r"\p{L}+") and not _portable(r"(?=x)")
