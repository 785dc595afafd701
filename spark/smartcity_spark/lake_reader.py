"""Scan planning for the local target's readers of the curated Iceberg tables (the warehouse load,
the checks, the report): which Parquet data files, and which position-delete files, make up a
window of a table as of a snapshot. DuckDB then reads those files itself (activities/iceberg.ts):
its Iceberg extension cannot be downloaded on machines without the internet, and pyiceberg's
planning is Iceberg's own (partition pruning, column-bound pruning, delete files per data file).

Runs as a long-lived child of a Node process, one JSON request per line on stdin, one JSON answer
per line on stdout, so the imports (about a second) are paid once:

    {"id": 1, "table": "vehicle", "from": "…Z", "to": "…Z", "snapshot": "123…" | null}
    → {"id": 1, "snapshot": "123…" | null, "data": ["/…/x.parquet", …], "deletes": ["/…/x-deletes.parquet", …]}
    → {"id": 1, "error": "…"}

    python -m smartcity_spark.lake_reader --catalog-uri sqlite:////…/iceberg.sqlite --namespace curated
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from smartcity_spark.json_lines import serve

CATALOG = "lake"  # the name Spark commits under (lakehouse.CATALOG): the catalog rows carry it


def local_path(uri: str) -> str:
    for prefix in ("file://", "file:"):
        if uri.startswith(prefix):
            return uri[len(prefix):]
    return uri


class Catalog:
    """The catalog, opened once its file exists: before the first curate there is none, and
    opening it would create it (and the Spark side's first commit would find pyiceberg's tables)."""

    def __init__(self, uri: str, warehouse: str):
        self.uri, self.warehouse = uri, warehouse
        self._catalog: SqlCatalog | None = None

    def get(self) -> SqlCatalog | None:
        if self._catalog is None and Path(self.uri.removeprefix("sqlite:///")).exists():
            self._catalog = SqlCatalog(CATALOG, uri=self.uri, warehouse=self.warehouse)
        return self._catalog


def plan(catalogs: Catalog, namespace: str, request: dict[str, Any]) -> dict[str, Any]:
    table_name, start, end = request["table"], request["from"], request["to"]
    snapshot = request.get("snapshot")
    catalog = catalogs.get()
    try:
        if catalog is None:
            raise NoSuchTableError(f"{namespace}.{table_name}")
        table = catalog.load_table((namespace, table_name))
    except NoSuchTableError:
        if snapshot is not None:
            raise LookupError(f"curated table {namespace}.{table_name} does not exist, so it has no snapshot {snapshot}") from None
        return {"snapshot": None, "data": [], "deletes": []}
    if snapshot is None:
        current = table.current_snapshot()
        if current is None:
            return {"snapshot": None, "data": [], "deletes": []}
        snapshot_id = current.snapshot_id
    else:
        snapshot_id = int(snapshot)
        if table.snapshot_by_id(snapshot_id) is None:
            raise LookupError(f"curated table {namespace}.{table_name} has no snapshot {snapshot} (expired by maintenance, or from another catalog)")
    time_column = request.get("timeColumn", "event_time")
    # pyiceberg takes an offset, not Z, on a timestamptz literal.
    start, end = (t[:-1] + "+00:00" if t.endswith("Z") else t for t in (start, end))
    window = And(GreaterThanOrEqual(time_column, start), LessThan(time_column, end))
    data: list[str] = []
    deletes: set[str] = set()
    for task in table.scan(row_filter=window, snapshot_id=snapshot_id).plan_files():
        data.append(local_path(task.file.file_path))
        deletes.update(local_path(d.file_path) for d in task.delete_files)
    return {"snapshot": str(snapshot_id), "data": sorted(data), "deletes": sorted(deletes)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lake_reader", description="plans reads of the curated Iceberg tables, JSON lines on stdio")
    p.add_argument("--catalog-uri", required=True, help="SQLAlchemy URI of the JDBC catalog's SQLite file (sqlite:////abs/path)")
    p.add_argument("--warehouse", required=True, help="the catalog's warehouse (file:///…); tables carry their own locations")
    p.add_argument("--namespace", default="curated")
    args = p.parse_args(argv)
    catalog = Catalog(args.catalog_uri, args.warehouse)
    serve(lambda request: plan(catalog, args.namespace, request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
