"""Test fixture: writes a source's curated Iceberg table the way the pipeline's tables look, without
Spark (test/helpers/iceberg-write.ts runs it; a Spark session costs tens of seconds a test).

The table is what spark/smartcity_spark/lakehouse.py creates: the JDBC catalog `lake` on
<lake>/_catalog/iceberg.sqlite (pyiceberg's SqlCatalog reads and writes the same catalog tables),
namespace `curated`, location <lake>/curated/<source>, hidden partitioning hours(event_time), the
pipeline's table properties (format 2, merge-on-read). Columns arrive with DuckDB's names of the
Spark types curate writes (VARCHAR, DOUBLE, BIGINT, INTEGER, TIMESTAMPTZ → Iceberg string, double,
long, int, timestamptz), all optional, as Spark's CREATE TABLE makes them.

pyiceberg 0.12 cannot do the writes on its own here: partitioning rows by a transform (its append,
overwrite and rewriting delete) needs the optional Rust package pyiceberg-core, which the tools venv
does not have, and it has no merge-on-read writer at all (table.delete on a merge-on-read table says
so and rewrites files). So the rows are split into event hours here, written by pyiceberg's own file
writer (field ids, the table's codec, the partition folder), and committed by pyiceberg's snapshot
producers, with one addition: a manifest of position-delete files, what Spark's merge-on-read
DELETE / MERGE commits.

Runs as a long-lived child of the test process (the imports cost about two seconds): one JSON
request per line on stdin, one JSON answer per line on stdout, each with the request's id and the
snapshot the operation committed, as a decimal string (64-bit ids do not survive a JSON number):

    {"id": 1, "lake": "/…/lake", "source": "gps", "op": "append", "columns": [["event_id", "VARCHAR"], …], "rows": [{…}, …]}
    {"id": 2, …, "op": "replace", "window": {"from": "…Z", "to": "…Z"}, "columns": …, "rows": …, "mode": "merge-on-read"}
        the window's rows become `rows` in one commit, as curate's MERGE leaves it
    {"id": 3, …, "op": "delete", "eventIds": ["gps-0002"], "mode": "merge-on-read"}
    → {"id": 1, "snapshot": "1234…"}  or  {"id": 1, "error": "…"}

mode merge-on-read (the default, the table's write.*.mode): the old rows' positions go to one
position-delete file per data file (file_path, pos), beside it and bounded to it as Spark writes
them; the data files stay. copy-on-write: each data file holding old rows is replaced by a copy
without them. New columns in `columns` are added to the table first (curate's ALTER TABLE … ADD
COLUMNS).
"""
from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "spark"))

from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402
from pyiceberg.exceptions import NoSuchTableError  # noqa: E402
from pyiceberg.expressions import AlwaysTrue  # noqa: E402
from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow, write_file  # noqa: E402
from pyiceberg.manifest import (  # noqa: E402
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
)
from pyiceberg.partitioning import PartitionField, PartitionFieldValue, PartitionKey, PartitionSpec  # noqa: E402
from pyiceberg.schema import Schema  # noqa: E402
from pyiceberg.table import Table, WriteTask  # noqa: E402
from pyiceberg.table.metadata import TableMetadata  # noqa: E402
from pyiceberg.table.snapshots import Operation, Summary  # noqa: E402
from pyiceberg.table.update.snapshot import _FastAppendFiles  # noqa: E402
from pyiceberg.transforms import HourTransform  # noqa: E402
from pyiceberg.typedef import EMPTY_DICT  # noqa: E402
from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType, TimestamptzType  # noqa: E402

from smartcity_spark.json_lines import serve  # noqa: E402
from smartcity_spark.lakehouse import CATALOG, TABLE_PROPERTIES  # noqa: E402

NAMESPACE = "curated"
TIME_COLUMN = "event_time"
ID_COLUMN = "event_id"
TYPES = {
    "VARCHAR": StringType(),
    "DOUBLE": DoubleType(),
    "BIGINT": LongType(),
    "INTEGER": IntegerType(),
    "TIMESTAMPTZ": TimestamptzType(),
}
# The position-delete file's columns: field ids the Iceberg spec reserves for them.
DELETE_FILE_PATH_ID, DELETE_POS_ID = 2147483546, 2147483545
DELETE_FILE_SCHEMA = pa.schema(
    [
        pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": str(DELETE_FILE_PATH_ID).encode()}),
        pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": str(DELETE_POS_ID).encode()}),
    ]
)


def iceberg_type(name: str) -> Any:
    if name not in TYPES:
        raise ValueError(f"column type {name!r}: expected one of {', '.join(TYPES)}")
    return TYPES[name]


_catalogs: dict[str, SqlCatalog] = {}


def catalog(lake: str) -> SqlCatalog:
    """The lake's catalog, as the pipeline names it; created (file and tables) on first use."""
    if lake not in _catalogs:
        db = Path(lake) / "_catalog" / "iceberg.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        _catalogs[lake] = SqlCatalog(CATALOG, uri=f"sqlite:///{db}", warehouse=f"file://{lake}")
    return _catalogs[lake]


def table_for(lake: str, source: str, columns: list[list[str]]) -> Table:
    """The source's table as lakehouse.ensure_table leaves it: created on first use, new columns added."""
    cat = catalog(lake)
    cat.create_namespace_if_not_exists(NAMESPACE)
    try:
        table = cat.load_table((NAMESPACE, source))
    except NoSuchTableError:
        schema = Schema(*[NestedField(i + 1, name, iceberg_type(type_name), required=False) for i, (name, type_name) in enumerate(columns)])
        time_id = schema.find_field(TIME_COLUMN).field_id
        # Spark's name for hours(event_time).
        spec = PartitionSpec(PartitionField(source_id=time_id, field_id=1000, transform=HourTransform(), name=f"{TIME_COLUMN}_hour"))
        location = str(Path(lake) / "curated" / source)
        return cat.create_table((NAMESPACE, source), schema=schema, location=location, partition_spec=spec, properties=dict(TABLE_PROPERTIES))
    existing = {f.name for f in table.schema().fields}
    missing = [(name, type_name) for name, type_name in columns if name not in existing]
    if missing:
        with table.update_schema() as update:
            for name, type_name in missing:
                update.add_column(name, iceberg_type(type_name))
    return table


def local(path: str) -> str:
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def arrow_rows(schema: Schema, rows: list[dict[str, Any]]) -> pa.Table:
    """The rows in the table's columns (a column a row lacks is NULL); date-times are ISO text."""
    arrow_schema = schema_to_pyarrow(schema, include_field_ids=False)
    arrays = []
    for field in arrow_schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_timestamp(field.type):
            values = [None if v is None else datetime.fromisoformat(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def write_data(metadata: TableMetadata, table: Table, rows: pa.Table) -> list[DataFile]:
    """One data file per event hour, by pyiceberg's writer, in the hour's partition folder."""
    if rows.num_rows == 0:
        return []
    schema, spec = metadata.schema(), metadata.spec()
    (field,) = spec.fields
    to_hour = field.transform.transform(schema.find_field(field.source_id).field_type)
    hours: dict[int, list[int]] = defaultdict(list)
    for i, micros in enumerate(rows.column(TIME_COLUMN).cast(pa.int64()).to_pylist()):
        hours[to_hour(micros)].append(i)
    write_uuid = uuid.uuid4()
    tasks = [
        WriteTask(
            write_uuid=write_uuid,
            task_id=n,
            schema=schema,
            record_batches=rows.take(pa.array(indices)).to_batches(),
            partition_key=PartitionKey(field_values=[PartitionFieldValue(field, hour)], partition_spec=spec, schema=schema),
        )
        for n, (hour, indices) in enumerate(sorted(hours.items()))
    ]
    return list(write_file(table.io, metadata, iter(tasks)))


def position_deletes(data: DataFile, positions: pa.Array) -> DataFile:
    """A position-delete file of `positions` in the data file, beside it, bounded to it."""
    deletes = pa.Table.from_arrays([pa.array([data.file_path] * len(positions), pa.string()), positions.cast(pa.int64())], schema=DELETE_FILE_SCHEMA)
    path = f"{data.file_path.rsplit('/', 1)[0]}/{uuid.uuid4()}-deletes.parquet"
    pq.write_table(deletes, local(path), compression="zstd")
    bound = data.file_path.encode()
    return DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=data.partition,
        record_count=len(positions),
        file_size_in_bytes=Path(local(path)).stat().st_size,
        lower_bounds={DELETE_FILE_PATH_ID: bound},
        upper_bounds={DELETE_FILE_PATH_ID: bound},
        sort_order_id=None,
        spec_id=data.spec_id,
        equality_ids=None,
        key_metadata=None,
    )


class _DeleteManifestWriter(ManifestWriterV2):
    """A v2 manifest of delete files (pyiceberg 0.12 writes only data manifests)."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _RowDelta(_FastAppendFiles):
    """What Spark commits for a merge-on-read DELETE or MERGE: every file of the parent stays, new
    data files in a data manifest, position-delete files in a delete manifest."""

    def __init__(self, operation: Operation, table: Any, transaction: Any, delete_files: list[DataFile]):
        super().__init__(operation=operation, transaction=transaction, io=table.io)
        self._delete_files = delete_files

    def _manifests(self) -> list[ManifestFile]:
        manifests = super()._manifests()
        if self._delete_files:
            spec = self._transaction.table_metadata.spec()
            with _DeleteManifestWriter(spec, self.schema(), self.new_manifest_output(), self._snapshot_id, self._compression) as writer:
                for delete_file in self._delete_files:
                    writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id, data_file=delete_file))
            manifests.append(writer.to_manifest_file())
        return manifests

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        # The summary's counts (added-position-deletes, total-delete-files, …) cover the delete files too.
        added = self._added_data_files
        self._added_data_files = [*added, *self._delete_files]
        try:
            return super()._summary(snapshot_properties)
        finally:
            self._added_data_files = added


def change_rows(table: Table, drop: Callable[[pa.Table], pa.Array] | None, new_rows: list[dict[str, Any]] | None, mode: str, operation: Operation) -> None:
    """One commit: the rows `drop` marks (a boolean per row) leave the current snapshot, `new_rows` join."""
    metadata = table.metadata
    schema = metadata.schema()
    tasks = list(table.scan().plan_files()) if drop and table.current_snapshot() else []
    added = write_data(metadata, table, arrow_rows(schema, new_rows or []))
    if mode == "merge-on-read":
        delete_files = []
        for task in tasks:
            # Positions are the data file's own rows, deleted ones included (deleting twice is harmless).
            rows = pq.read_table(local(task.file.file_path), columns=[ID_COLUMN, TIME_COLUMN])
            positions = pc.indices_nonzero(drop(rows))  # type: ignore[misc]
            if len(positions) > 0:
                delete_files.append(position_deletes(task.file, positions))
        if not added and not delete_files:
            return
        with table.transaction() as tx:
            producer = _RowDelta(operation, table, tx, delete_files)
            for data_file in added:
                producer.append_data_file(data_file)
            producer.commit()
    elif mode == "copy-on-write":
        replaced: list[tuple[DataFile, list[DataFile]]] = []
        for task in tasks:
            # The file's live rows (its position deletes applied), in the current schema.
            rows = ArrowScan(metadata, table.io, schema, AlwaysTrue()).to_table([task])
            dropped = drop(rows)  # type: ignore[misc]
            if pc.any(dropped).as_py():
                replaced.append((task.file, write_data(metadata, table, rows.filter(pc.invert(dropped)))))
        if not added and not replaced:
            return
        with table.transaction() as tx:
            with tx.update_snapshot().overwrite() as overwrite:
                for old, copies in replaced:
                    overwrite.delete_data_file(old)
                    for copy in copies:
                        overwrite.append_data_file(copy)
                for data_file in added:
                    overwrite.append_data_file(data_file)
    else:
        raise ValueError(f"mode {mode!r}: expected merge-on-read or copy-on-write")


def run(request: dict[str, Any]) -> str:
    lake, source, op = request["lake"], request["source"], request["op"]
    mode = request.get("mode", "merge-on-read")
    if op == "append":
        table = table_for(lake, source, request["columns"])
        change_rows(table, None, request["rows"], mode, Operation.APPEND)
    elif op == "replace":
        table = table_for(lake, source, request["columns"])
        start, end = (datetime.fromisoformat(request["window"][k]) for k in ("from", "to"))

        def in_window(rows: pa.Table) -> pa.Array:
            times = rows.column(TIME_COLUMN)
            return pc.fill_null(pc.and_(pc.greater_equal(times, pa.scalar(start, times.type)), pc.less(times, pa.scalar(end, times.type))), False)

        change_rows(table, in_window, request["rows"], mode, Operation.OVERWRITE)
    elif op == "delete":
        table = catalog(lake).load_table((NAMESPACE, source))
        ids = pa.array(request["eventIds"], pa.string())
        change_rows(table, lambda rows: pc.fill_null(pc.is_in(rows.column(ID_COLUMN), value_set=ids), False), None, mode, Operation.DELETE)
    else:
        raise ValueError(f"unknown op {op!r}: expected append, replace or delete")
    snapshot = table.refresh().current_snapshot()
    if snapshot is None:
        raise RuntimeError(f"{'.'.join(table.name())} has no snapshot after {op}")
    return str(snapshot.snapshot_id)


def main() -> int:
    serve(lambda request: {"snapshot": run(request)}, trace=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
