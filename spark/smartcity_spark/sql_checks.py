"""The contracts as Spark SQL expressions: records they vouch for are valid without leaving the JVM.

The Python validator (validation.py) stays the reference and the only one that words reasons.
These expressions, generated from the same contracts, answer one question per record inside the
plan, vectorised with the rest of it: is the record certainly valid, and with which values? They
say yes only where the Python validator would say valid with the same values, and send every
other record to it: anything malformed, and anything unusual they cannot be sure of (an escape,
a field the contract does not know, a string that reads like a number, a date-time with an
offset, a constraint Java could evaluate differently from Python, ...). So the two never disagree
on a verdict or a reason, and what the fast path does not recognise costs what it cost before.
test_sql_checks.py runs both on the same records to hold them to that.

One parse per record: from_json with Jackson's leniencies turned off and a corrupt-record column
that says whether it read the whole object and converted every value. What Jackson does not see,
plain counts over the text settle, which is why a record with any backslash goes to Python: then
every quote delimits a string, a key is a string followed by a colon, and no brace hides in an
escape.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .schemas import EVENT_TIME, Field, SourceSchema

# Larger records go to Python: they are rare, and the counts below stay cheap.
FAST_MAX_BYTES = 64 * 1024
UNREAD = "__smartcity_unread"
# from_json as strict as Python's json module on what it reads (the rest is counted below).
JSON_OPTIONS = {"allowNonNumericNumbers": "false", "allowSingleQuotes": "false", "mode": "PERMISSIVE", "columnNameOfCorruptRecord": UNREAD}
# The end of a key. Without backslashes a quote before a colon closes a key, or opens a string
# value starting with a colon, which only makes the count too high (and sends it to Python).
_KEY_END = r'"[ \t\n\r]*+:'
# What from_json makes of a value that is not a JSON string when it reads it as a string: its JSON
# text (a number, true/false, an object, an array, or a quoted "Infinity" for a huge number). A
# string value reading the same way could have been either, so it goes to Python.
_NOT_A_STRING_TEXT = r'^(?:-?[0-9][0-9.eE+-]*+|true|false)\z|^[\[{"]'
# The validator's UUID and date-time formats, in Java, anchored at the very end (Python's `$` also
# matches before a trailing newline: such a value goes to Python, which decides).
_UUID = r"(?i)^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}\z"
# Only UTC with Z: the partition is then the text's own date and hour. Offsets go to Python.
_UTC_DATE_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z\z"
_PRINTABLE_ASCII = r"^[\x20-\x7e]*\z"
# Contract patterns that mean the same to Java and Python on printable ASCII text: literals,
# classes without Java's nesting/intersection, \d \w \s and their negations, escaped punctuation,
# anchors, groups (plain or (?:), alternation and greedy or lazy quantifiers.
_PORTABLE_PATTERN = re.compile(
    r"(?:[A-Za-z0-9 _:/,=@#%!~<>'\";-]"
    r"|\\[dwsDWS.\-/^$*+?()\[\]{}|\\]"
    r"|\[\^?(?:[A-Za-z0-9 _.:/,=@#%!~<>-]|\\[dwsDWS.\-\[\]\\^])+\]"
    r"|\(\?:|[()|.^$]"
    r"|(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??)*"
)
_EXACT_LIMIT = 2**53


def _portable(pattern: str) -> bool:
    # Tokens aside, Java reads a quantifier followed by + as possessive and (? as a construct.
    return _PORTABLE_PATTERN.fullmatch(pattern) is not None and not re.search(r"[*+?}]\+|\((?!\?:)\?", pattern)


def _literal(field: Field, value: Any) -> Any:
    """value as a literal of the field's column type when the Python validator's type check would
    pass it unchanged; None when it would not (the value then never matches on the fast path)."""
    if isinstance(value, bool) or value is None:
        return value if field.type == "boolean" else None
    if field.type == "string":
        return value if isinstance(value, str) else None
    if field.type == "integer":
        return value if isinstance(value, int) and -(2**63) <= value < 2**63 else None
    if field.type == "number" and isinstance(value, (int, float)) and math.isfinite(value) and abs(value) < _EXACT_LIMIT:
        return float(value)
    return None


def _bound(value: Any) -> float | int | None:
    """A numeric bound Spark compares exactly as Python does (see _number_checks), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) >= _EXACT_LIMIT:
        return None
    return value


def _all(conditions: list[Column]) -> Column:
    out = F.lit(True)
    for condition in conditions:
        out = out & condition
    return out


def _count(text: Column, char: str) -> Column:
    """How many times an ASCII character occurs in the text (byte lengths: no decoding)."""
    return F.octet_length(text) - F.octet_length(F.replace(text, F.lit(char), F.lit("")))


class SqlValidator:
    """Adds `vouched` (boolean, never null), the event-time `date` and `hour`, and per source
    `typed_<source>` (the event as from_json reads it, null unless vouched) to a frame with the
    record's `value` (binary) and `source` (from its topic)."""

    def __init__(self, schemas: Mapping[str, SourceSchema], max_record_bytes: int, fast_max_bytes: int = FAST_MAX_BYTES):
        self.schemas = dict(schemas)
        self.max_bytes = min(max_record_bytes, fast_max_bytes)
        self._stages: list[list[Column]] | None = None

    def classify(self, frame: DataFrame) -> DataFrame:
        # Built once: a Column is a JVM object made call by call, and these thousands of calls
        # would cost every batch more driver time than its records cost the executors.
        if self._stages is None:
            self._stages = self._build()
        # Each stage its own projection, so that every parse, count and verdict runs once per record.
        staged = frame
        for stage in self._stages[:-1]:
            staged = staged.select("*", *stage)
        return staged.select(*frame.columns, *self._stages[-1])

    def _build(self) -> list[list[Column]]:
        decoded = F.decode("value", "UTF-8")
        text = F.col("_text")
        is_source = {s: F.col("source") == s for s in self.schemas}
        parse_as = {s: T.StructType([*sc.json_struct.fields, T.StructField(UNREAD, T.StringType())]) for s, sc in self.schemas.items()}
        text_stage = [
            F.when(
                (F.length("value") <= self.max_bytes)
                # Valid UTF-8 survives the round trip; invalid bytes come back as U+FFFD.
                & (F.encode(decoded, "UTF-8") == F.col("value"))
                & (F.instr(decoded, "\\") == 0),
                decoded,
            ).alias("_text")
        ]
        parse_stage = [
            # Whitespace only after the object: Jackson stops reading at its end, Python does not.
            F.endswith(F.btrim(text, F.lit(" \t\n\r")), F.lit("}")).alias("_ends"),
            F.regexp_count(text, F.lit(_KEY_END)).alias("_members"),
            (_count(text, "{") + _count(text, "}")).alias("_braces"),
            *[F.when(is_source[s] & text.isNotNull(), F.from_json(text, parse_as[s], JSON_OPTIONS)).alias(f"_parsed_{s}") for s in self.schemas],
        ]
        verdict = None
        for s, schema in self.schemas.items():
            parsed = F.col(f"_parsed_{s}")
            holds = F.coalesce(self._holds(schema, parsed), F.lit(False))
            verdict = F.when(is_source[s], holds) if verdict is None else verdict.when(is_source[s], holds)
        vouched = F.col("vouched")
        event_time = F.coalesce(*[F.col(f"_parsed_{s}").getField(EVENT_TIME) for s in self.schemas])
        output_stage = [
            vouched,
            F.when(vouched, F.substring(event_time, 1, 10)).alias("date"),
            F.when(vouched, F.substring(event_time, 12, 2)).alias("hour"),
            *[
                F.when(vouched & is_source[s], F.struct(*[F.col(f"_parsed_{s}").getField(f.name).alias(f.name) for f in sc.fields])).alias(f"typed_{s}")
                for s, sc in self.schemas.items()
            ],
        ]
        return [text_stage, parse_stage, [F.coalesce(verdict, F.lit(False)).alias("vouched")], output_stage]

    def _holds(self, schema: SourceSchema, parsed: Column) -> Column:
        checks, members, objects = self._object(schema.fields, parsed)
        return _all(
            [
                parsed.isNotNull(),
                # Jackson read the whole object and converted every value to its column's type.
                parsed.getField(UNREAD).isNull(),
                F.col("_ends"),
                # Every key is a known field holding a value, each once: a duplicate, an unknown
                # field or a null (Python's "got null") makes more keys than non-null fields.
                F.col("_members") == members,
                # Every brace belongs to the record or to a known object: none in a string, none
                # after the record (Jackson balanced those it read; unknown objects have keys).
                F.col("_braces") == 2 * (objects + 1),
                *checks,
            ]
        )

    def _object(self, fields: tuple[Field, ...], parsed: Column) -> tuple[list[Column], Column, Column]:
        """Checks of an object's fields, how many of them are present (non-null) at any depth, and
        how many of those are objects."""
        checks: list[Column] = []
        members: Column = F.lit(0)
        objects: Column = F.lit(0)
        for field in fields:
            value = parsed.getField(field.name)
            there = F.when(value.isNotNull(), 1).otherwise(0)
            if field.type == "object":
                inner, inner_members, inner_objects = self._object(field.children, value)
                holds = _all(inner)
                members = members + there + F.when(value.isNotNull(), inner_members).otherwise(0)
                objects = objects + there + F.when(value.isNotNull(), inner_objects).otherwise(0)
            else:
                holds = _all(self._scalar(field, value))
                members = members + there
            holds = F.coalesce(holds, F.lit(False))
            checks.append(value.isNotNull() & holds if field.required else value.isNull() | holds)
        return checks, members, objects

    def _scalar(self, field: Field, value: Column) -> list[Column]:
        checks: list[Column] = []
        if field.type == "string":
            checks += [~value.rlike(_NOT_A_STRING_TEXT), *self._string_checks(field, value)]
        elif field.type in ("integer", "number"):
            if field.type == "number":
                checks.append(F.abs(value) <= F.lit(1.7976931348623157e308))
            checks += self._number_checks(field, value)
        if field.has_const:
            const = _literal(field, field.const)
            checks.append(value == F.lit(const) if const is not None else F.lit(False))
        if field.enum is not None:
            allowed = [v for v in (_literal(field, e) for e in field.enum) if v is not None]
            checks.append(value.isin(allowed) if allowed else F.lit(False))
        return checks

    @staticmethod
    def _number_checks(field: Field, value: Column) -> list[Column]:
        # Python compares integers exactly; Spark compares a long with a double bound as doubles.
        # They agree whenever the bound is below 2^53 in size: a value it rounds is beyond it.
        checks = []
        for bound, test in (
            (field.minimum, lambda b: value >= b),
            (field.maximum, lambda b: value <= b),
            (field.exclusive_minimum, lambda b: value > b),
            (field.exclusive_maximum, lambda b: value < b),
        ):
            if bound is not None:
                exact = _bound(bound)
                checks.append(test(F.lit(exact)) if exact is not None else F.lit(False))
        return checks

    @staticmethod
    def _string_checks(field: Field, value: Column) -> list[Column]:
        checks = []
        if field.min_length is not None:
            checks.append(F.length(value) >= field.min_length)
        if field.max_length is not None:
            checks.append(F.length(value) <= field.max_length)
        if field.format == "uuid":
            checks.append(value.rlike(_UUID))
        if field.format == "date-time":
            checks.append(_utc_date_time(value))
        if field.pattern is not None:
            if _portable(field.pattern):
                checks += [value.rlike(_PRINTABLE_ASCII), value.rlike(field.pattern)]
            else:
                checks.append(F.lit(False))
        return checks


def _utc_date_time(value: Column) -> Column:
    """A real instant written as yyyy-MM-ddTHH:mm:ss[.f]Z, as Python's datetime accepts it (no
    leap second, no year 0). Years before 1000 go to Python, whose strftime writes them short."""

    def part(start: int, length: int) -> Column:
        return F.substring(value, start, length).cast("int")

    year, month, day = part(1, 4), part(6, 2), part(9, 2)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = F.when(month == 2, F.when(leap, 29).otherwise(28)).when(month.isin(4, 6, 9, 11), 30).otherwise(31)
    return F.coalesce(
        F.when(
            value.rlike(_UTC_DATE_TIME),
            (year >= 1000) & month.between(1, 12) & (day >= 1) & (day <= days) & (part(12, 2) <= 23) & (part(15, 2) <= 59) & (part(18, 2) <= 59),
        ),
        F.lit(False),
    )
