"""Maintenance of the curated tables after a run of small windows: compaction leaves one data file
per hour with the re-runs' deletes applied, expiry leaves the snapshots asked for, orphan-file
removal deletes what a killed curate left, and the rows are the same before and after."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import events as E
from jobs import curate, maintain
from test_curate import lake_session

START = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
WINDOW = timedelta(minutes=10)


def rows(session, source):
    return sorted(tuple(r) for r in session.table(f"lake.curated.{source}").select("event_id", "event_time").collect())


def test_compaction_expiry_and_orphans_bound_an_hour_of_windows(spark, tmp_path, land):
    lake = tmp_path / "lake"
    land(lake, [E.vehicle_event("maint", f"car-{v}", i, START + timedelta(minutes=i), 52.0, -1.0) for v in range(3) for i in range(60)], 0)
    session = lake_session(spark)
    windows = [(START + k * WINDOW, START + (k + 1) * WINDOW) for k in range(6)]
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    for start, end in [*windows, windows[2], windows[4]]:  # two re-runs: position deletes
        curate.run(session, curate.parse_args(["--lake-root", str(lake), "--from", iso(start), "--to", iso(end)], {}))
    before = rows(session, "vehicle")
    assert len(before) == 180

    orphan = lake / "curated" / "vehicle" / "data" / "left-by-a-killed-curate.parquet"
    orphan.write_bytes(b"PAR1")
    two_days_ago = time.time() - 2 * 86400
    os.utime(orphan, (two_days_ago, two_days_ago))  # Iceberg removes orphans a day old at the least
    args = maintain.parse_args(["--lake-root", str(lake), "--table", "vehicle", "--expire-after-minutes", "0", "--retain-last", "2"], {})
    summary = maintain.run(session, args)["tables"]["vehicle"]

    assert summary["before"]["max_files_per_hour"] >= 8 and summary["before"]["delete_files"] >= 2, summary
    assert summary["after"] == {"partitions": 1, "max_files_per_hour": 1, "files": 1, "delete_files": 0, "snapshots": 2}, summary
    assert summary["orphans_removed"] >= 1 and not orphan.exists()
    assert rows(session, "vehicle") == before
