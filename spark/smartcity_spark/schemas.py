"""The event contracts of schemas/v1 (JSON Schema 2020-12), read at start, as the jobs need them.

There is no second copy of a contract: the Spark types, lake columns and every constraint the
validator enforces are derived here from the files. Lake columns are snake_case. A nested object
(the location) is flattened into its children's columns, so the lake holds `lat` and `lon`, not a
struct: plain columns load the same way into DuckDB, Glue/Athena and Redshift (COPY from
Parquet).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from pyspark.sql import types as T

# The envelope fields the jobs build on: the lake is partitioned by event time, deduplicated by id.
EVENT_ID = "eventId"
EVENT_TIME = "eventTime"

# What the ingest job stores beside an event's own columns in raw (curate reads them back).
RAW_METADATA = T.StructType(
    [
        T.StructField("kafka_topic", T.StringType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("ingest_time", T.TimestampType()),
    ]
)
# A contract field with one of these column names would be overwritten silently; loading refuses it.
RESERVED_COLUMNS = frozenset(RAW_METADATA.names) | {"date", "hour", "batch_id"}

_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default", "x-topic"})
_CHECKS = frozenset(
    {"type", "const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "format"}
)
_FORMATS = frozenset({"uuid", "date-time"})
_SPARK_TYPES = {"string": T.StringType(), "number": T.DoubleType(), "integer": T.LongType(), "boolean": T.BooleanType()}


class SchemaError(ValueError):
    """A contract the jobs cannot enforce exactly; raised at start rather than checking less."""


def snake_case(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True)
class Field:
    """One property of an event; objects carry children and have no column of their own."""

    name: str
    path: str
    type: str
    required: bool
    column: str | None = None
    children: tuple[Field, ...] = ()
    has_const: bool = False
    const: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    format: str | None = None

    @property
    def json_type(self) -> T.DataType:
        """The Spark type of a leaf's value as sent."""
        return _SPARK_TYPES[self.type]

    @property
    def curated_type(self) -> T.DataType:
        return T.TimestampType() if self.format == "date-time" else self.json_type

    @property
    def utc_only(self) -> bool:
        """date-time restricted to a trailing Z (the envelope's eventTime)."""
        return self.format == "date-time" and self.pattern == "Z$"

    def leaves(self) -> Iterator[Field]:
        if self.type == "object":
            for child in self.children:
                yield from child.leaves()
        else:
            yield self


@dataclass(frozen=True)
class SourceSchema:
    source: str
    topic: str
    file: str
    fields: tuple[Field, ...]
    inherited: frozenset[str]

    def leaves(self) -> list[Field]:
        return [leaf for f in self.fields for leaf in f.leaves()]

    @property
    def raw_struct(self) -> T.StructType:
        """Lake columns of the raw layer: values as sent (eventTime stays the ISO string)."""
        return T.StructType([T.StructField(leaf.column, leaf.json_type) for leaf in self.leaves()])

    @property
    def curated_struct(self) -> T.StructType:
        """Lake columns of the curated layer: date-times as timestamps (UTC)."""
        return T.StructType([T.StructField(leaf.column, leaf.curated_type) for leaf in self.leaves()])

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.path for f in _walk(self.fields) if f.required)

    @property
    def enums(self) -> dict[str, tuple[Any, ...]]:
        return {f.path: f.enum for f in _walk(self.fields) if f.enum is not None}

    @property
    def consts(self) -> dict[str, Any]:
        return {f.path: f.const for f in _walk(self.fields) if f.has_const}

    @property
    def ranges(self) -> dict[str, dict[str, float]]:
        out = {}
        for f in _walk(self.fields):
            bounds = {
                k: v
                for k, v in (
                    ("minimum", f.minimum),
                    ("maximum", f.maximum),
                    ("exclusiveMinimum", f.exclusive_minimum),
                    ("exclusiveMaximum", f.exclusive_maximum),
                )
                if v is not None
            }
            if bounds:
                out[f.path] = bounds
        return out

    @property
    def formats(self) -> dict[str, str]:
        return {f.path: f.format for f in _walk(self.fields) if f.format is not None}

    def column(self, path: str) -> str:
        """Lake column of a leaf, by its JSON path (e.g. "incidentId" → "incident_id")."""
        for leaf in self.leaves():
            if leaf.path == path:
                return leaf.column
        raise KeyError(f"{self.file} has no field {path}")

    @property
    def payload_columns(self) -> list[str]:
        """Columns of the source's own scalar fields (not the envelope's, not the location)."""
        return [f.column for f in self.fields if f.name not in self.inherited and f.type != "object"]


def _walk(fields: tuple[Field, ...]) -> Iterator[Field]:
    for f in fields:
        yield f
        yield from _walk(f.children)


class _Resolver:
    """Flattens $ref and allOf into one keyword dict per node (allOf: every part must hold)."""

    def __init__(self, docs: Mapping[str, dict]):
        self.docs = docs

    def resolve(self, ref: str, file: str) -> tuple[dict, str]:
        target, _, pointer = ref.partition("#")
        target = target or file
        if target not in self.docs:
            raise SchemaError(f"{file}: $ref {ref!r} points at {target}, which is not in the schema folder")
        node: Any = self.docs[target]
        for part in filter(None, pointer.split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"{file}: $ref {ref!r} does not resolve")
            node = node[part]
        return node, target

    def flatten(self, node: dict, file: str, where: str) -> dict:
        out: dict = {}
        for key, value in node.items():
            if key in _ANNOTATIONS:
                continue
            if key == "$ref":
                target, target_file = self.resolve(value, file)
                _merge(out, self.flatten(target, target_file, value), file, where)
            elif key == "allOf":
                for i, part in enumerate(value):
                    _merge(out, self.flatten(part, file, f"{where}/allOf/{i}"), file, where)
            elif key == "properties":
                props = {name: self.flatten(sub, file, f"{where}/properties/{name}") for name, sub in value.items()}
                _merge(out, {"properties": props}, file, where)
            elif key == "required" or key in _CHECKS:
                _merge(out, {key: value}, file, where)
            else:
                raise SchemaError(f"{file}: keyword {key!r} at {where} is not supported by the Spark jobs")
        return out


def _merge(out: dict, new: dict, file: str, where: str) -> None:
    for key, value in new.items():
        if key == "properties":
            props = out.setdefault("properties", {})
            for name, sub in value.items():
                if name in props:
                    _merge(props[name], sub, file, f"{where}/properties/{name}")
                else:
                    props[name] = sub
        elif key == "required":
            out["required"] = list(dict.fromkeys([*out.get("required", []), *value]))
        elif key in out and out[key] != value:
            raise SchemaError(f"{file}: {where} combines {key}={out[key]!r} with {key}={value!r}; make them agree")
        else:
            out[key] = value


def _fields(node: dict, parent: str, file: str) -> tuple[Field, ...]:
    props = node.get("properties", {})
    required = node.get("required", [])
    undefined = [name for name in required if name not in props]
    if undefined:
        raise SchemaError(f"{file}: required field(s) {', '.join(undefined)} at {parent or 'top level'} have no definition")
    return tuple(_field(name, spec, name in required, parent, file) for name, spec in props.items())


def _field(name: str, spec: dict, required: bool, parent: str, file: str) -> Field:
    path = f"{parent}.{name}" if parent else name
    kind = spec.get("type")
    if kind == "object":
        return Field(name=name, path=path, type=kind, required=required, children=_fields(spec, path, file))
    if kind not in _SPARK_TYPES:
        raise SchemaError(f"{file}: field {path} has type {kind!r}; supported: object, {', '.join(_SPARK_TYPES)}")
    if spec.get("format") is not None and spec["format"] not in _FORMATS:
        raise SchemaError(f"{file}: field {path} has format {spec['format']!r}; supported: {', '.join(sorted(_FORMATS))}")
    if "pattern" in spec:
        try:
            re.compile(spec["pattern"])
        except re.error as err:
            raise SchemaError(f"{file}: field {path} has pattern {spec['pattern']!r} that Python cannot compile: {err}") from err
    return Field(
        name=name,
        path=path,
        type=kind,
        required=required,
        column=snake_case(name),
        has_const="const" in spec,
        const=spec.get("const"),
        enum=tuple(spec["enum"]) if "enum" in spec else None,
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
        exclusive_minimum=spec.get("exclusiveMinimum"),
        exclusive_maximum=spec.get("exclusiveMaximum"),
        min_length=spec.get("minLength"),
        max_length=spec.get("maxLength"),
        pattern=spec.get("pattern"),
        format=spec.get("format"),
    )


def _source_schema(resolver: _Resolver, file: str, doc: dict) -> SourceSchema:
    flat = resolver.flatten(doc, file, "#")
    fields = _fields(flat, "", file)
    by_name = {f.name: f for f in fields}
    source = by_name.get("source")
    if source is None or not source.has_const:
        raise SchemaError(f"{file}: has x-topic but no `source` const naming its source")
    envelope_time = by_name.get(EVENT_TIME)
    if envelope_time is None or not envelope_time.required or envelope_time.format != "date-time":
        raise SchemaError(f"{file}: {EVENT_TIME} must be a required date-time field (the lake is partitioned by it)")
    if EVENT_ID not in by_name or not by_name[EVENT_ID].required:
        raise SchemaError(f"{file}: {EVENT_ID} must be a required field (the curated layer is deduplicated by it)")
    columns = [leaf.column for f in fields for leaf in f.leaves()]
    clashes = sorted({c for c in columns if columns.count(c) > 1} | (set(columns) & RESERVED_COLUMNS))
    if clashes:
        raise SchemaError(f"{file}: lake column(s) {', '.join(clashes)} are taken twice or reserved; rename the field")
    inherited = set()
    for i, part in enumerate(doc.get("allOf", [])):
        inherited |= set(resolver.flatten(part, file, f"#/allOf/{i}").get("properties", {}))
    return SourceSchema(source=source.const, topic=doc["x-topic"], file=file, fields=fields, inherited=frozenset(inherited))


def load_schemas(files: Mapping[str, str]) -> dict[str, SourceSchema]:
    """Source name → its contract, from {file name: JSON text} of the schema folder.

    A file with `x-topic` defines a source; the others (the envelope) are only referenced.
    Sources come in the order of the envelope's `source` enum when it has one.
    """
    docs = {}
    for name, text in files.items():
        try:
            docs[name] = json.loads(text)
        except ValueError as err:
            raise SchemaError(f"{name}: not valid JSON: {err}") from err
    resolver = _Resolver(docs)
    schemas: dict[str, SourceSchema] = {}
    for file in sorted(docs):
        if "x-topic" not in docs[file]:
            continue
        schema = _source_schema(resolver, file, docs[file])
        if schema.source in schemas:
            raise SchemaError(f"{file}: source {schema.source!r} is also defined by {schemas[schema.source].file}")
        schemas[schema.source] = schema
    if not schemas:
        raise SchemaError(f"no event schema (a file with x-topic) among {', '.join(sorted(files)) or 'no files'}")
    topics = [s.topic for s in schemas.values()]
    if len(set(topics)) != len(topics):
        raise SchemaError(f"two sources share a topic: {topics}")
    enum = next((f.enum for s in schemas.values() for f in s.fields if f.name == "source" and f.enum), ())
    rank = {name: i for i, name in enumerate(enum)}
    return dict(sorted(schemas.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def default_schemas_dir() -> str:
    """schemas/v1 of the checkout this package sits in (spark/smartcity_spark → repo root)."""
    return str(Path(__file__).resolve().parents[2] / "schemas" / "v1")


def read_schema_dir(path: str) -> dict[str, str]:
    """The *.json files of a local folder, for load_schemas."""
    folder = Path(path)
    if not folder.is_dir():
        raise SchemaError(f"schema folder {path} does not exist")
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.json"))}
