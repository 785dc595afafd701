"""Lands one micro-batch of Kafka records as raw and quarantine Parquet, inside the tasks of a
single Spark job (mapInArrow): each task classifies its records and writes, per chunk of Arrow
input, one file per (source, date, hour) of valid events and one per (source, date) of rejected
records, then hands the driver a summary (counts, offsets, timings). No Spark write job, no
staging folder, no rename of whole partitions.

Files are written through pyarrow's file systems, the same code for a local lake and an
s3:// one: locally each file is written under a hidden name and renamed into place (a reader
never sees half a file); on S3 an object appears whole when its upload completes, so it is
written under its final key. Nothing is created or deleted outside the batch's own files.

Exactly once: a file's name is made of the batch id, the task's partition, the chunk and the
query's id (new checkpoint, new names), so a replayed batch writes the same names again. Before a
task writes any data file it records the paths in an intent file under
<checkpoint>/ingest-intents/<batch_id>/; a restart deletes the files of a batch Spark had not
committed before replaying it (a replay that classifies differently, say under newer contracts,
cannot leave an old file behind), and the intents of committed batches are dropped as the next
batch starts.
"""
from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark import Broadcast, TaskContext
from pyspark.sql import types as T

from .schemas import RAW_METADATA, SourceSchema
from .validation import RecordValidator

# The Kafka columns a task reads, in this order, and the one summary row it returns.
INPUT_COLUMNS = ["topic", "partition", "offset", "timestamp", "key", "value"]
SUMMARY_SCHEMA = "summary string"

_UTC_MICROS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
_ARROW_TYPES = {
    T.StringType(): pa.string(),
    T.DoubleType(): pa.float64(),
    T.LongType(): pa.int64(),
    T.IntegerType(): pa.int32(),
    T.BooleanType(): pa.bool_(),
    T.TimestampType(): _UTC_MICROS,
}
_RAW_METADATA = [pa.field(f.name, _ARROW_TYPES[f.dataType]) for f in RAW_METADATA.fields]

# The quarantine layer's columns (date and batch_id are folders).
QUARANTINE_SCHEMA = pa.schema(
    [
        ("value", pa.string()),
        ("value_base64", pa.string()),
        ("value_bytes", pa.int32()),
        ("kafka_key", pa.string()),
        *_RAW_METADATA[:4],
        ("ingest_time", _UTC_MICROS),
        ("reason", pa.string()),
        ("error_kind", pa.string()),
    ]
)


def raw_schema(schema: SourceSchema) -> pa.Schema:
    """The raw layer's columns of a source: the contract's leaves, then the Kafka metadata."""
    return pa.schema([*(pa.field(leaf.column, _ARROW_TYPES[leaf.json_type]) for leaf in schema.leaves()), *_RAW_METADATA])


def _column_values(events: list[dict], path: tuple[str, ...]) -> list:
    """One leaf of every event, None where an optional field (or its parent object) is absent."""
    values: list = events
    for part in path:
        values = [None if v is None else v.get(part) for v in values]
    return values


class LakeDir:
    """A folder on the local disk or an object store, through pyarrow's file systems. Picklable,
    so the driver resolves it once (an S3 bucket's region included) and tasks reuse it."""

    def __init__(self, root: str):
        location = urlparse(root).path if root.startswith("file:") else root
        location = location if "://" in location else os.path.abspath(location)
        self.fs, self.path = pafs.FileSystem.from_uri(location)
        self.path = self.path.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def full(self, relative: str) -> str:
        return f"{self.path}/{relative}"

    def _put(self, relative: str, write: Callable[[str], None]) -> None:
        path = self.full(relative)
        if not self.local:
            write(path)
            return
        folder, name = path.rsplit("/", 1)
        os.makedirs(folder, exist_ok=True)
        hidden = f"{folder}/.{name}.tmp"
        write(hidden)
        os.replace(hidden, path)

    def write_parquet(self, relative: str, table: pa.Table) -> None:
        self._put(relative, lambda path: pq.write_table(table, path, filesystem=self.fs))

    def write_text(self, relative: str, text: str) -> None:
        def write(path: str) -> None:
            with self.fs.open_output_stream(path) as out:
                out.write(text.encode("utf-8"))

        self._put(relative, write)

    def read_text(self, relative: str) -> str:
        with self.fs.open_input_stream(self.full(relative)) as f:
            return f.read().decode("utf-8")

    def delete_file(self, relative: str) -> None:
        """The file and, locally, what an interrupted write of it left under its hidden name."""
        path = self.full(relative)
        folder, name = path.rsplit("/", 1)
        for candidate in (path, f"{folder}/.{name}.tmp") if self.local else (path,):
            try:
                self.fs.delete_file(candidate)
            except FileNotFoundError:
                pass

    def delete_dir(self, relative: str) -> None:
        try:
            self.fs.delete_dir(self.full(relative))
        except FileNotFoundError:
            pass

    def children(self, relative: str = "") -> list[str]:
        """Names directly under a folder (none when it does not exist)."""
        folder = self.full(relative) if relative else self.path
        infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        return sorted(info.base_name for info in infos)


class Intents:
    """<checkpoint>/ingest-intents/<batch_id>/<task>-<chunk>.json: the files a task is about to
    write, as [layer, path under the layer's root] pairs."""

    FOLDER = "ingest-intents"

    def __init__(self, checkpoint: str):
        self.dir = LakeDir(f"{checkpoint.rstrip('/')}/{self.FOLDER}")

    def record(self, batch_id: int, name: str, files: list[tuple[str, str]]) -> None:
        self.dir.write_text(f"{batch_id}/{name}.json", json.dumps(files))

    def batches(self) -> list[int]:
        return sorted(int(name) for name in self.dir.children() if name.isdigit())

    def files(self, batch_id: int) -> list[tuple[str, str]]:
        # An intent is written whole or not at all (see LakeDir._put); a hidden .tmp is not read.
        out = []
        for name in self.dir.children(str(batch_id)):
            if name.endswith(".json"):
                out += [tuple(pair) for pair in json.loads(self.dir.read_text(f"{batch_id}/{name}"))]
        return out

    def forget(self, batch_id: int) -> None:
        self.dir.delete_dir(str(batch_id))


class BatchLayout:
    """Everything a task needs to land records: built once on the driver, broadcast once to the
    executors (each Python worker unpickles it once, not once per task)."""

    def __init__(self, schemas: Mapping[str, SourceSchema], topics: Mapping[str, str], validator: RecordValidator,
                 roots: Mapping[str, str], checkpoint: str):
        self.source_of_topic = {topic: source for source, topic in topics.items()}
        self.validator = validator
        self.roots = {layer: LakeDir(root) for layer, root in roots.items()}
        self.intents = Intents(checkpoint)
        self.raw_schemas = {source: raw_schema(schema) for source, schema in schemas.items()}
        self.leaf_paths = {source: [tuple(leaf.path.split(".")) for leaf in schema.leaves()] for source, schema in schemas.items()}

    def discard_uncommitted(self, committed: Callable[[int], bool]) -> list[int]:
        """Deletes what batches Spark did not commit wrote (a restart replays them) and the intents
        of those it did; returns the batch ids whose files were deleted."""
        discarded = []
        for batch_id in self.intents.batches():
            if not committed(batch_id):
                for layer, path in self.intents.files(batch_id):
                    self.roots[layer].delete_file(path)
                discarded.append(batch_id)
            self.intents.forget(batch_id)
        return discarded

    def forget_intents_before(self, batch_id: int) -> None:
        """Spark starts batch N only once N-1 is committed: earlier intents are no longer needed."""
        for earlier in self.intents.batches():
            if earlier < batch_id:
                self.intents.forget(earlier)


class BatchLanding:
    """The mapInArrow function of one micro-batch: Arrow batches of Kafka rows in, one summary row
    out. Made per micro-batch on the driver (it carries the batch id and ingest time)."""

    def __init__(self, layout: Broadcast, batch_id: int, ingest_time: datetime, run_id: str):
        self.shared_layout = layout
        self.batch_id = batch_id
        self.ingest_micros = epoch_micros(ingest_time)
        self.run_id = run_id

    def __call__(self, chunks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        self.layout = self.shared_layout.value
        task = TaskContext.get().partitionId()
        summary = TaskSummary()
        chunk_no = 0
        while True:
            waited = time.perf_counter()
            chunk = next(chunks, None)
            summary.ms["read"] += time.perf_counter() - waited
            if chunk is None:
                break
            if chunk.num_rows:
                self._land(chunk, f"part-{task:05d}-{chunk_no:03d}-{self.run_id}", summary)
                chunk_no += 1
        yield pa.RecordBatch.from_pydict({"summary": [json.dumps(summary.to_json(), separators=(",", ":"))]})

    def _land(self, chunk: pa.RecordBatch, name: str, summary: TaskSummary) -> None:
        started = time.perf_counter()
        layout = self.layout
        check = layout.validator.check
        values = chunk.column("value").to_pylist()
        topics = chunk.column("topic").to_pylist()
        raw: dict[tuple[str, str, str], tuple[list[int], list[dict]]] = {}
        rejected: dict[str, list[tuple[int, str, str]]] = {}
        for i, (value, topic) in enumerate(zip(values, topics)):
            verdict = check(value, topic)
            source = layout.source_of_topic[topic]
            if verdict.reason is None:
                indices, events = raw.setdefault((source, verdict.date, verdict.hour), ([], []))
                indices.append(i)
                events.append(verdict.event)
                summary.saw_event(source, verdict.event_time)
            else:
                rejected.setdefault(source, []).append((i, verdict.reason, verdict.error_kind))
        summary.count_partitions(chunk)

        files: list[tuple[str, str, pa.Table]] = []
        batch = f"batch_id={self.batch_id}"
        for (source, date, hour), (indices, events) in raw.items():
            files.append(("raw", f"{source}/date={date}/hour={hour}/{batch}/{name}.parquet", self._raw_table(chunk, source, indices, events)))
            summary.valid[source] += len(indices)
        kafka_micros = pc.cast(chunk.column("timestamp"), pa.int64())
        for source, records in rejected.items():
            # Quarantine is partitioned by the Kafka timestamp's date: a rejected record may have
            # no event time at all.
            by_date: dict[str, list[tuple[int, str, str]]] = {}
            for record in records:
                day = from_epoch_micros(kafka_micros[record[0]].as_py())
                by_date.setdefault(f"{day:%Y-%m-%d}", []).append(record)
            for date, group in by_date.items():
                files.append(("quarantine", f"{source}/date={date}/{batch}/{name}.parquet", self._quarantine_table(chunk, group)))
            summary.quarantined[source] += len(records)
            summary.kinds.setdefault(source, Counter()).update(kind for _, _, kind in records)
        classified = time.perf_counter()
        summary.ms["classify"] += classified - started

        layout.intents.record(self.batch_id, name, [(layer, path) for layer, path, _ in files])
        for layer, path, table in files:
            layout.roots[layer].write_parquet(path, table)
        summary.files += len(files)
        summary.ms["write"] += time.perf_counter() - classified

    def _kafka_columns(self, chunk: pa.RecordBatch, indices: list[int]) -> list[pa.Array]:
        taken = chunk.select(["topic", "partition", "offset", "timestamp"]).take(pa.array(indices, pa.int32()))
        return [
            taken.column("topic"),
            taken.column("partition"),
            taken.column("offset"),
            taken.column("timestamp").cast(_UTC_MICROS),
            pa.repeat(pa.scalar(self.ingest_micros, _UTC_MICROS), len(indices)),
        ]

    def _raw_table(self, chunk: pa.RecordBatch, source: str, indices: list[int], events: list[dict]) -> pa.Table:
        schema = self.layout.raw_schemas[source]
        leaves = [pa.array(_column_values(events, path), field.type) for path, field in zip(self.layout.leaf_paths[source], schema)]
        return pa.Table.from_arrays([*leaves, *self._kafka_columns(chunk, indices)], schema=schema)

    def _quarantine_table(self, chunk: pa.RecordBatch, records: list[tuple[int, str, str]]) -> pa.Table:
        indices = [i for i, _, _ in records]
        values = [chunk.column("value")[i].as_py() for i in indices]
        keys = [chunk.column("key")[i].as_py() for i in indices]
        topic, partition, offset, timestamp, ingest_time = self._kafka_columns(chunk, indices)
        return pa.Table.from_arrays(
            [
                pa.array([None if v is None else v.decode("utf-8", errors="replace") for v in values], pa.string()),
                pa.array([base64.b64encode(v).decode("ascii") if kind == "bad_utf8" else None for v, (_, _, kind) in zip(values, records)], pa.string()),
                pa.array([None if v is None else len(v) for v in values], pa.int32()),
                pa.array([None if k is None else k.decode("utf-8", errors="replace") for k in keys], pa.string()),
                topic,
                partition,
                offset,
                timestamp,
                ingest_time,
                pa.array([reason for _, reason, _ in records], pa.string()),
                pa.array([kind for _, _, kind in records], pa.string()),
            ],
            schema=QUARANTINE_SCHEMA,
        )


class TaskSummary:
    """What a task tells the driver, merged there into the batch's progress line."""

    def __init__(self):
        self.valid: Counter = Counter()
        self.quarantined: Counter = Counter()
        self.kinds: dict[str, Counter] = {}
        self.newest: dict[str, datetime] = {}
        # topic → partition → [consumed, first offset, last offset, oldest Kafka timestamp (µs)]
        self.partitions: dict[str, dict[str, list[int]]] = {}
        self.files = 0
        self.ms = {"read": 0.0, "classify": 0.0, "write": 0.0}

    def saw_event(self, source: str, event_time: datetime) -> None:
        if source not in self.newest or event_time > self.newest[source]:
            self.newest[source] = event_time

    def count_partitions(self, chunk: pa.RecordBatch) -> None:
        table = pa.table({"topic": chunk.column("topic"), "partition": chunk.column("partition"), "offset": chunk.column("offset"),
                          "micros": pc.cast(chunk.column("timestamp"), pa.int64())})
        grouped = table.group_by(["topic", "partition"]).aggregate([("offset", "count"), ("offset", "min"), ("offset", "max"), ("micros", "min")])
        for row in grouped.to_pylist():
            stats = [row["offset_count"], row["offset_min"], row["offset_max"], row["micros_min"]]
            known = self.partitions.setdefault(row["topic"], {}).get(str(row["partition"]))
            if known:
                stats = [known[0] + stats[0], min(known[1], stats[1]), max(known[2], stats[2]), min(known[3], stats[3])]
            self.partitions[row["topic"]][str(row["partition"])] = stats

    def to_json(self) -> dict:
        return {
            "valid": self.valid,
            "quarantined": self.quarantined,
            "kinds": self.kinds,
            "newest": {source: epoch_micros(t) for source, t in self.newest.items()},
            "partitions": self.partitions,
            "files": self.files,
            "ms": self.ms,
        }
