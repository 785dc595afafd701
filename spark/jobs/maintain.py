"""Maintenance of the curated Iceberg tables (smartcity_spark/lakehouse.py), one table after another:

1. compaction: the small data files of each hour (a 1-minute window commits one per table) are
   rewritten into few, with the position deletes of re-runs applied (rewrite_data_files, binpack,
   delete-file-threshold 1), then what delete files remain are compacted (rewrite_position_delete_files);
2. snapshot expiry: snapshots older than --expire-after-minutes go, the last --retain-last stay
   (expire_snapshots; the files only expired snapshots used are deleted with them). A load reads
   the snapshot its curate committed within minutes: keep the age well above a batch run's length;
3. orphan-file removal: files under the table's location no snapshot names and older than
   --orphan-after-minutes (a killed curate's files) are deleted (remove_orphan_files).

Each is one Iceberg commit (or none), so readers and curates run beside it: a compaction that
conflicts with a curate's commit of the same files fails and is retried at the next run. Prints a
JSON summary: per table, files rewritten/added, snapshots expired, orphans removed, and the files
per hour partition and snapshots left.

    spark-submit spark/jobs/maintain.py --lake-root .data/lake
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

try:
    import smartcity_spark  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import SparkSession

from smartcity_spark.connect import take_over_session
from smartcity_spark.lakehouse import CATALOG, CATALOG_TYPES, configure_catalog, default_catalog_uri, quote, schema_changes, timestamp
from smartcity_spark.runtime import default_lake_root, join, lake_fs, session


def parse_args(argv: list[str], env: Mapping[str, str]) -> argparse.Namespace:
    def positive(text: str) -> int:
        value = int(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
        return value

    def minutes(text: str) -> int:
        value = int(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text} is negative")
        return value

    p = argparse.ArgumentParser(prog="maintain.py", description="compaction, snapshot expiry and orphan-file removal of the curated Iceberg tables")
    p.add_argument("--lake-root", default=default_lake_root(env), help="local path or s3://… (default: %(default)s)")
    p.add_argument("--curated-root", help="the tables' warehouse (default: <lake-root>/curated)")
    p.add_argument("--catalog-type", choices=CATALOG_TYPES, default="jdbc")
    p.add_argument("--catalog-uri", help="the jdbc catalog's database (default: jdbc:sqlite:<lake-root>/_catalog/iceberg.sqlite)")
    p.add_argument("--namespace", default="curated")
    p.add_argument("--table", action="append", dest="tables", help="a table to maintain (default: every table of the namespace); repeatable")
    p.add_argument("--min-input-files", type=positive, default=2, help="an hour with at least this many files is compacted (default: %(default)s)")
    p.add_argument("--expire-after-minutes", type=minutes, default=24 * 60, help="snapshots older than this expire (default: %(default)s)")
    p.add_argument("--retain-last", type=positive, default=10, help="…but the newest this many stay (default: %(default)s)")
    p.add_argument(
        "--orphan-after-minutes",
        type=minutes,
        default=24 * 60,
        help="unreferenced files older than this are deleted; Iceberg refuses less than a day, as a younger file may be a running commit's (default: %(default)s)",
    )
    p.add_argument("--shuffle-partitions", type=positive, help="Spark's shuffle partitions for the run (default: the session's)")
    p.add_argument("--summary-path", help="JSON summary (default: <lake-root>/_runs/maintain/<now>.json)")
    args = p.parse_args(argv)
    if args.summary_path is None:
        args.summary_path = join(args.lake_root, "_runs", "maintain", f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json")
    args.curated_root = args.curated_root or join(args.lake_root, "curated")
    if args.catalog_type == "jdbc" and not args.catalog_uri:
        args.catalog_uri = default_catalog_uri(args.lake_root)
    return args


def layout(spark: SparkSession, name: str) -> dict:
    """Files per hour partition (the most any hour has) and snapshots the table holds."""
    files = spark.sql(f"SELECT partition, count(*) AS n FROM {name}.files GROUP BY partition").collect()
    deletes = spark.sql(f"SELECT count(*) AS n FROM {name}.delete_files").collect()[0].n
    snapshots = spark.sql(f"SELECT count(*) AS n FROM {name}.snapshots").collect()[0].n
    return {
        "partitions": len(files),
        "max_files_per_hour": int(max((f.n for f in files), default=0)),
        "files": int(sum(f.n for f in files)),
        "delete_files": int(deletes),
        "snapshots": int(snapshots),
    }


def first_row(spark: SparkSession, sql: str) -> dict:
    rows = spark.sql(sql).collect()
    return {k: int(v) for k, v in rows[0].asDict().items() if isinstance(v, (int, float))} if rows else {}


def maintain_table(spark: SparkSession, args: argparse.Namespace, table: str, now: datetime) -> dict:
    ident = f"{quote(args.namespace)}.{quote(table)}"
    name = f"{CATALOG}.{ident}"
    call = f"CALL {CATALOG}.system"
    started = time.monotonic()
    result: dict = {"before": layout(spark, name)}
    result["compaction"] = first_row(
        spark,
        f"{call}.rewrite_data_files(table => '{ident}', strategy => 'binpack', "
        f"options => map('min-input-files', '{args.min_input_files}', 'delete-file-threshold', '1', 'partial-progress.enabled', 'false'))",
    )
    result["delete_compaction"] = first_row(spark, f"{call}.rewrite_position_delete_files(table => '{ident}', options => map('rewrite-all', 'true'))")
    older = now - timedelta(minutes=args.expire_after_minutes)
    result["expiry"] = first_row(spark, f"{call}.expire_snapshots(table => '{ident}', older_than => {timestamp(older)}, retain_last => {args.retain_last})")
    orphans_before = now - timedelta(minutes=args.orphan_after_minutes)
    orphans = spark.sql(f"{call}.remove_orphan_files(table => '{ident}', older_than => {timestamp(orphans_before)})").collect()
    result["orphans_removed"] = len(orphans)
    result["after"] = layout(spark, name)
    result["duration_ms"] = round((time.monotonic() - started) * 1000)
    return result


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    configure_catalog(spark, args.catalog_type, args.curated_root, args.catalog_uri)
    if args.shuffle_partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
    started = time.monotonic()
    tables = args.tables
    if not tables:
        with schema_changes(spark):  # the catalog's first use may create it
            spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{quote(args.namespace)}")
        tables = sorted(r.tableName for r in spark.sql(f"SHOW TABLES IN {CATALOG}.{quote(args.namespace)}").collect())
    now = datetime.now(timezone.utc)
    summary = {"tables": {t: maintain_table(spark, args, t, now) for t in tables}}
    summary["duration_ms"] = round((time.monotonic() - started) * 1000)
    lake_fs(spark).write_text(args.summary_path, json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, dict(os.environ))
    spark = session("smartcity-maintain")
    take_over_session(spark)
    try:
        print(json.dumps(run(spark, args), separators=(",", ":")), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
