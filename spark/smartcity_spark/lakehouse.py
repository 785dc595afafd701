"""The curated layer as Apache Iceberg tables (format v2, one per source, hidden partitioning by
event hour), in a catalog Spark names `lake`:

- local: Iceberg's JDBC catalog on a SQLite file in the lake (`<lake>/_catalog/iceberg.sqlite`),
  which pyiceberg's SqlCatalog reads too (see lake_reader.py, the local warehouse load's reader);
- aws: the Glue Data Catalog (the Glue job runs with `--datalake-formats iceberg`).

A window's rows replace what the table held for the window in one MERGE, so one commit: readers see
the window before or after, never between; a killed curate leaves at most files no snapshot names
(orphan-file removal deletes them). Writers of one window check each other through Iceberg's
serializable isolation (the MERGE reads the window's rows at one snapshot and its commit fails if
another writer added rows to the window since), and the loser's job fails and is re-run.

The catalog is set on the session, not the server: the local Spark Connect server is shared by data
dirs, each with its own catalog file. Only the SQL extensions (MERGE and the maintenance procedures)
and the jars are the server's (spark/connect.ts) or the job's (spark-submit, Glue job parameters).
"""
from __future__ import annotations

import fcntl
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from pyspark.sql import SparkSession
from pyspark.sql import types as T

CATALOG = "lake"
EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
CATALOG_TYPES = ("jdbc", "glue")
# Row-level changes as delete files (merge-on-read): a window's re-run writes its own rows and a
# delete file, not a copy of the hour. Compaction (maintenance) folds them back into data files.
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.delete.mode": "merge-on-read",
    "write.update.mode": "merge-on-read",
    "write.merge.mode": "merge-on-read",
    # Two writers of one window: the later commit fails instead of both landing (the default for
    # MERGE, said here because exactness depends on it).
    "write.merge.isolation-level": "serializable",
    "write.parquet.compression-codec": "zstd",
    # Snapshot metadata stays bounded: old metadata files go when a commit adds a new one.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
}


T_ = TypeVar("T_")

# Failures a second try clears: SQLite's lock taken by another writer of the catalog file (the JDBC
# catalog reports it as "Unknown failure"), two first curates creating the namespace or a table at
# once, and Iceberg's own conflict check (another writer committed rows of the window since this
# MERGE read it: the loser runs again against the new state).
TRANSIENT = ("UncheckedSQLException", "SQLITE_BUSY", "database is locked", "AlreadyExistsException", "ValidationException", "CommitFailedException")
ATTEMPTS = 8


def retrying(what: str, run: Callable[[], T_]) -> T_:
    """`run` again after a transient catalog failure (TRANSIENT), backing off up to ATTEMPTS
    times: every step it guards is idempotent (create if missing, a MERGE that replaces a window)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return run()
        except Exception as err:  # noqa: BLE001 - filtered by message; anything else re-raises
            if attempt == ATTEMPTS or not any(marker in f"{type(err).__name__} {err}" for marker in TRANSIENT):
                raise
            delay = min(0.25 * 2 ** attempt, 5.0)
            print(f"[lakehouse] {what}: {str(err).splitlines()[0][:300]}; again in {delay:.1f} s (attempt {attempt + 1} of {ATTEMPTS})", file=sys.stderr, flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def default_catalog_uri(lake_root: str) -> str:
    """The local catalog: a SQLite file in the lake, created with its folder on first use."""
    return f"jdbc:sqlite:{Path(lake_root) / '_catalog' / 'iceberg.sqlite'}"


def catalog_conf(catalog_type: str, warehouse: str, uri: str | None) -> dict[str, str]:
    if catalog_type not in CATALOG_TYPES:
        raise ValueError(f"catalog type {catalog_type!r}: expected one of {', '.join(CATALOG_TYPES)}")
    prefix = f"spark.sql.catalog.{CATALOG}"
    conf = {prefix: "org.apache.iceberg.spark.SparkCatalog", f"{prefix}.warehouse": warehouse}
    if catalog_type == "glue":
        conf[f"{prefix}.catalog-impl"] = "org.apache.iceberg.aws.glue.GlueCatalog"
        conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        return conf
    if not uri:
        raise ValueError("the jdbc catalog needs a uri (jdbc:sqlite:<file>)")
    conf[f"{prefix}.type"] = "jdbc"
    conf[f"{prefix}.uri"] = uri
    # V1 keeps views and tables apart in the catalog's tables; pyiceberg's SqlCatalog reads it.
    conf[f"{prefix}.jdbc.schema-version"] = "V1"
    # Several writers share the file (sessions of the Connect server, spark-submits, the readers):
    # write-ahead logging lets readers read beside a commit, and a writer waits its turn for the
    # file's lock instead of failing at once (SQLite's default).
    conf[f"{prefix}.jdbc.journal_mode"] = "WAL"
    conf[f"{prefix}.jdbc.busy_timeout"] = "60000"
    return conf


def configure_catalog(spark: SparkSession, catalog_type: str, warehouse: str, uri: str | None) -> None:
    """Names the catalog `lake` in this session (runtime settings, so a shared server serves every lake)."""
    if catalog_type == "jdbc" and uri and uri.startswith("jdbc:sqlite:"):
        Path(uri.removeprefix("jdbc:sqlite:")).parent.mkdir(parents=True, exist_ok=True)
    for key, value in catalog_conf(catalog_type, warehouse, uri).items():
        spark.conf.set(key, value)
    spark.conf.set(CATALOG_FILE_KEY, uri.removeprefix("jdbc:sqlite:") if catalog_type == "jdbc" and uri and uri.startswith("jdbc:sqlite:") else "")


# Where this session's SQLite catalog file is (empty: not a local catalog); read by schema_changes.
CATALOG_FILE_KEY = "spark.smartcity.catalogFile"


@contextmanager
def schema_changes(spark: SparkSession) -> Iterator[None]:
    """One process at a time changes the local catalog's schema (its first use creates the
    catalog's own tables, then the namespace, the tables, new columns): an OS lock on a file beside
    the catalog, held by this client and released by the OS if it dies. Measured without it: two
    first curates at once (the demo's live and backfill windows) initialised the catalog together,
    and one session's catalog failed every later call with `UncheckedSQLException: Unknown failure`.
    Commits need no such lock: SQLite's own (WAL, busy timeout) and Iceberg's checks order them.
    The Glue catalog (aws) needs none: creating what exists is answered, and retried (retrying)."""
    path = spark.conf.get(CATALOG_FILE_KEY, "")
    if not path:
        yield
        return
    with open(f"{path}.schema-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_name(namespace: str, source: str) -> str:
    return f"{CATALOG}.{quote(namespace)}.{quote(source)}"


def ensure_table(spark: SparkSession, namespace: str, source: str, schema: T.StructType, location: str, time_column: str) -> None:
    """Creates the source's table with `schema` at `location` unless it exists; adds the columns of
    `schema` it lacks (a contract's new optional field). Two first curates at once: both create
    IF NOT EXISTS, and the loser of the catalog's insert tries again and finds the table."""
    with schema_changes(spark):
        _ensure_table(spark, namespace, source, schema, location, time_column)


def _ensure_table(spark: SparkSession, namespace: str, source: str, schema: T.StructType, location: str, time_column: str) -> None:
    name = table_name(namespace, source)
    retrying(f"creating namespace {namespace}", lambda: spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{quote(namespace)}"))
    if not spark.catalog.tableExists(f"{CATALOG}.{namespace}.{source}"):
        columns = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}" for f in schema.fields)
        props = ", ".join(f"'{k}'='{v}'" for k, v in TABLE_PROPERTIES.items())
        create = (
            f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg "
            f"PARTITIONED BY (hours({quote(time_column)})) LOCATION '{location}' TBLPROPERTIES ({props})"
        )
        retrying(f"creating table {name}", lambda: spark.sql(create))
    existing = {f.name for f in spark.table(name).schema.fields}
    missing = [f for f in schema.fields if f.name not in existing]
    if missing:
        added = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}" for f in missing)
        retrying(f"adding columns to {name}", lambda: spark.sql(f"ALTER TABLE {name} ADD COLUMNS ({added})"))


def timestamp(instant: datetime) -> str:
    return f"TIMESTAMP '{instant.strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"


def merge_window_sql(table: str, view: str, columns: list[str], time_column: str, id_column: str, start: datetime, end: datetime) -> str:
    """One MERGE that makes `table` hold exactly the rows of `view` for [start, end).

    The source is the window's rows plus a tombstone for each id the table holds in the window that
    the rows no longer have. Read in the same statement as the target, so both see one snapshot.
    With only MATCHED / NOT MATCHED clauses Spark pushes the window into the target's scan (a NOT
    MATCHED BY SOURCE clause would scan the whole table every window), so a window costs its own
    rows, not its hour's or its table's."""
    in_window = f"{{t}}.{quote(time_column)} >= {timestamp(start)} AND {{t}}.{quote(time_column)} < {timestamp(end)}"
    ident = quote(id_column)
    cols = ", ".join(quote(c) for c in columns)
    nulls = ", ".join(f"x.{quote(c)}" if c in (id_column, time_column) else "NULL" for c in columns)
    updates = ", ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns)
    values = ", ".join(f"s.{quote(c)}" for c in columns)
    return f"""
MERGE INTO {table} t
USING (
  SELECT {cols}, false AS _drop FROM {view}
  UNION ALL
  SELECT {nulls}, true AS _drop FROM {table} x LEFT ANTI JOIN {view} v ON x.{ident} = v.{ident}
  WHERE {in_window.format(t='x')}
) s
ON t.{ident} = s.{ident} AND {in_window.format(t='t')}
WHEN MATCHED AND s._drop THEN DELETE
WHEN MATCHED THEN UPDATE SET {updates}
WHEN NOT MATCHED AND NOT s._drop THEN INSERT ({cols}) VALUES ({values})
"""


def current_snapshot(spark: SparkSession, namespace: str, source: str) -> str | None:
    """The table's current snapshot id as a decimal string (64-bit: JSON numbers would round it)."""
    rows = spark.sql(f"SELECT snapshot_id FROM {table_name(namespace, source)}.refs WHERE name = 'main'").collect()
    return str(rows[0].snapshot_id) if rows else None
