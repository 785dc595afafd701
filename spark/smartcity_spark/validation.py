"""Checks one Kafka record against its contract and says, in words a person can act on, why not.

Runs inside the ingest job's tasks on the executors. Validation happens on the decoded JSON, so a
field of the wrong type is reported as such instead of turning into a null. A valid record comes
back normalised: only the contract's fields, integers as integers, numbers as floats, exactly the
Python values the raw layer's Parquet columns hold.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, NamedTuple

from .schemas import EVENT_TIME, Field, SourceSchema

MIB = 1024 * 1024
_MAX_DOUBLE = 1.7976931348623157e308
_INT64 = (-(2**63), 2**63 - 1)
_UUID = re.compile(r"^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$", re.IGNORECASE)
# RFC 3339 as Spark's timestamp cast reads it: 'T' separator, at most 9 fraction digits.
_DATE_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


class Check(NamedTuple):
    """A verdict: a reason and its kind for counting (both None when valid), and for a valid record
    the normalised event, its event time (UTC) and the event-time partition it belongs to."""

    reason: str | None
    error_kind: str | None
    event: dict | None = None
    event_time: datetime | None = None
    date: str | None = None
    hour: str | None = None


def _reject(kind: str, reason: str) -> Check:
    return Check(reason, kind)


def size_text(n: int) -> str:
    mb = n / MIB
    return f"{mb:.0f} MB" if mb == round(mb) else f"{mb:.1f} MB"


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def parse_date_time(text: str) -> datetime | None:
    """The instant of an RFC 3339 date-time, or None when it is not one (or not a real date)."""
    m = _DATE_TIME.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        offset = timedelta(0) if zone == "Z" else int(zone[0] + "1") * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        tz = timezone(offset)
        micros = int((fraction or "0").ljust(6, "0")[:6])
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz)
    except ValueError:
        return None


class _InvalidJson(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    # Parsers disagree on which duplicate wins; refusing them means no other reader of the record can
    # see another event than the one validated.
    out = {}
    for key, value in pairs:
        if key in out:
            raise _InvalidJson(f"duplicate key {_show(key)}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _InvalidJson(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)


class RecordValidator:
    """Picklable: built on the driver from the contracts, shipped with each micro-batch's tasks.

    Most records are valid, so each contract is also compiled into a fast check that only says
    yes (with the normalised event) or no; the full check, which words every problem, runs only
    on the records the fast one refuses. Both accept exactly the same records."""

    def __init__(self, schemas: Mapping[str, SourceSchema], topics: Mapping[str, str], max_record_bytes: int):
        self.schemas = dict(schemas)
        self.source_of_topic = {topic: source for source, topic in topics.items()}
        self.max_record_bytes = max_record_bytes
        self._fast: dict[str, _Plan] | None = None

    def __getstate__(self) -> dict:
        # The compiled checks are closures; each process compiles its own on first use.
        return {**self.__dict__, "_fast": None}

    def check(self, value: bytes | None, topic: str) -> Check:
        expected = self.source_of_topic[topic]
        if value is None:
            return _reject("no_value", "record has no value (a tombstone)")
        if len(value) > self.max_record_bytes:
            return _reject(
                "oversized",
                f"record of {size_text(len(value))} ({len(value)} bytes) exceeds the limit of "
                f"{size_text(self.max_record_bytes)} ({self.max_record_bytes} bytes)",
            )
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as err:
            return _reject("bad_utf8", f"value is not valid UTF-8 ({err.reason} at byte {err.start})")
        try:
            doc = _DECODER.decode(text)
        except (ValueError, RecursionError) as err:
            return _reject("invalid_json", f"invalid JSON: {err}")
        if not isinstance(doc, dict):
            return _reject("not_an_object", f"event is not a JSON object (got {_json_type(doc)})")
        if "source" not in doc:
            return _reject("missing_field", 'missing required field "source"')
        claimed = doc["source"]
        if not isinstance(claimed, str) or claimed not in self.schemas:
            return _reject("unknown_source", f"unknown source {_show(claimed)} on topic {topic}")
        if claimed != expected:
            return _reject("source_mismatch", f"source {_show(claimed)} does not match topic {topic}")
        if self._fast is None:
            self._fast = {source: _compile_object(schema.fields) for source, schema in self.schemas.items()}
        event = _fast_object(self._fast[expected], doc)
        if event is _FAIL:
            problems: list[tuple[str, str]] = []
            event = _check_object(self.schemas[expected].fields, doc, problems)
            if problems:
                return Check("; ".join(reason for _, reason in problems), problems[0][0])
        instant = parse_date_time(event[EVENT_TIME]).astimezone(timezone.utc)
        return Check(None, None, event, instant, f"{instant:%Y-%m-%d}", f"{instant:%H}")


def _check_object(fields: tuple[Field, ...], doc: dict, problems: list[tuple[str, str]]) -> dict:
    """Known fields of doc, normalised; unknown ones are dropped (a newer producer may add some)."""
    out = {}
    for field in fields:
        if field.name not in doc:
            if field.required:
                problems.append(("missing_field", f"missing required field {_show(field.path)}"))
            continue
        value = _check_value(field, doc[field.name], problems)
        if value is not None:
            out[field.name] = value
    return out


def _check_value(field: Field, value: Any, problems: list[tuple[str, str]]) -> Any:
    got = _json_type(value)
    if field.type == "object":
        if got != "object":
            problems.append(("wrong_type", f"field {field.path}: expected object, got {got}"))
            return None
        return _check_object(field.children, value, problems)
    if field.type == "integer" and got == "number" and value.is_integer():
        value, got = int(value), "integer"
    accepted = {"number": ("integer", "number")}.get(field.type, (field.type,))
    if got not in accepted:
        problems.append(("wrong_type", f"field {field.path}: expected {field.type}, got {got}"))
        return None
    before = len(problems)
    if got in ("integer", "number"):
        _check_number(field, value, problems)
    elif got == "string":
        _check_string(field, value, problems)
    if field.has_const and value != field.const:
        problems.append(("not_allowed", f"{field.path}: expected {_show(field.const)}, got {_show(value)}"))
    if field.enum is not None and value not in field.enum:
        allowed = ", ".join(_show(v) for v in field.enum)
        problems.append(("not_allowed", f"{field.path}: {_show(value)} is not one of {allowed}"))
    if len(problems) > before:
        return None
    # A number field is a double column; the checks above saw the exact integer.
    return float(value) if field.type == "number" else value


def _check_number(field: Field, value: int | float, problems: list[tuple[str, str]]) -> None:
    path = field.path
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(("out_of_range", f"{path}: {value} is not a finite number"))
        return
    if isinstance(value, int) and field.type == "number" and abs(value) > _MAX_DOUBLE:
        problems.append(("out_of_range", f"{path}: {value} does not fit a double"))
        return
    if field.type == "integer" and not _INT64[0] <= value <= _INT64[1]:
        problems.append(("out_of_range", f"{path}: {value} does not fit a 64-bit integer"))
        return
    shown = _show(value)
    if field.minimum is not None and value < field.minimum:
        problems.append(("out_of_range", f"{path}: {shown} is below the minimum {_show(field.minimum)}"))
    if field.maximum is not None and value > field.maximum:
        problems.append(("out_of_range", f"{path}: {shown} is above the maximum {_show(field.maximum)}"))
    if field.exclusive_minimum is not None and value <= field.exclusive_minimum:
        problems.append(("out_of_range", f"{path}: {shown} is not above the exclusive minimum {_show(field.exclusive_minimum)}"))
    if field.exclusive_maximum is not None and value >= field.exclusive_maximum:
        problems.append(("out_of_range", f"{path}: {shown} is not below the exclusive maximum {_show(field.exclusive_maximum)}"))


def _check_string(field: Field, value: str, problems: list[tuple[str, str]]) -> None:
    path = field.path
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(("bad_format", f"{path}: {_show(value)} contains an unpaired UTF-16 surrogate"))
        return
    if field.min_length is not None and len(value) < field.min_length:
        problems.append(("bad_length", f"{path}: {_show(value)} is shorter than {field.min_length} character(s)"))
    if field.max_length is not None and len(value) > field.max_length:
        problems.append(("bad_length", f"{path}: {len(value)} characters exceed the maximum length {field.max_length}"))
    if field.format == "uuid" and not _UUID.match(value):
        problems.append(("bad_format", f"{path}: {_show(value)} is not a UUID"))
    if field.format == "date-time":
        instant = parse_date_time(value)
        if field.utc_only and (instant is None or not value.endswith("Z")):
            problems.append(("bad_format", f"{path}: {_show(value)} is not ISO-8601 UTC with Z"))
            return
        if instant is None:
            problems.append(("bad_format", f"{path}: {_show(value)} is not an ISO-8601 date-time"))
            return
    if field.pattern is not None and not re.search(field.pattern, value):
        problems.append(("bad_format", f"{path}: {_show(value)} does not match the pattern {_show(field.pattern)}"))


# ---- the fast check: yes with the normalised value, or _FAIL --------------------------------------

_FAIL = object()
# (name, required, check) per field of an object
_Plan = tuple


def _fast_object(plan: _Plan, doc: Any) -> Any:
    if type(doc) is not dict:
        return _FAIL
    out = {}
    for name, required, check in plan:
        if name in doc:
            value = check(doc[name])
            if value is _FAIL:
                return _FAIL
            out[name] = value
        elif required:
            return _FAIL
    return out


def _compile_object(fields: tuple[Field, ...]) -> _Plan:
    return tuple((f.name, f.required, _compile(f)) for f in fields)


def _compile(field: Field):
    """A field's fast check; every condition mirrors one of _check_value's."""
    if field.type == "object":
        children = _compile_object(field.children)
        return lambda value: _fast_object(children, value)
    conditions = []
    if field.type == "number":

        def typed(value):
            kind = type(value)
            if kind is float:
                return value if math.isfinite(value) else _FAIL
            if kind is int and abs(value) <= _MAX_DOUBLE:
                return value
            return _FAIL

    elif field.type == "integer":

        def typed(value):
            kind = type(value)
            if kind is float and value.is_integer():
                value = int(value)
            elif kind is not int:
                return _FAIL
            return value if _INT64[0] <= value <= _INT64[1] else _FAIL

    elif field.type == "string":

        def typed(value):
            # Only a \u escape can make an unpaired surrogate; ASCII text has none.
            if type(value) is not str or not (value.isascii() or _encodable(value)):
                return _FAIL
            return value

        if field.min_length is not None:
            conditions.append(lambda v, n=field.min_length: len(v) >= n)
        if field.max_length is not None:
            conditions.append(lambda v, n=field.max_length: len(v) <= n)
        if field.format == "uuid":
            conditions.append(lambda v: _UUID.match(v) is not None)
        if field.format == "date-time":
            if field.utc_only:
                conditions.append(lambda v: v.endswith("Z") and parse_date_time(v) is not None)
            else:
                conditions.append(lambda v: parse_date_time(v) is not None)
        if field.pattern is not None:
            conditions.append(lambda v, p=re.compile(field.pattern): p.search(v) is not None)
    else:

        def typed(value):
            return value if type(value) is bool else _FAIL

    if field.type in ("number", "integer"):
        for bound, holds in (
            (field.minimum, lambda v, b: v >= b),
            (field.maximum, lambda v, b: v <= b),
            (field.exclusive_minimum, lambda v, b: v > b),
            (field.exclusive_maximum, lambda v, b: v < b),
        ):
            if bound is not None:
                conditions.append(lambda v, b=bound, holds=holds: holds(v, b))
    if field.has_const:
        conditions.append(lambda v, c=field.const: v == c)
    if field.enum is not None:
        conditions.append(lambda v, allowed=field.enum: v in allowed)
    as_double = field.type == "number"

    def check(value):
        value = typed(value)
        if value is _FAIL:
            return _FAIL
        for holds in conditions:
            if not holds(value):
                return _FAIL
        return float(value) if as_double else value

    return check


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
