// What the lake and the warehouse hold, read straight from their files with DuckDB: the tests'
// source of truth for exactly-once, independent of the pipeline's own listing and counting code
// (a bug there must not hide itself). Folder patterns name the partition depth of each layer, so
// Spark's staging folders (`.spark-staging-*`, `_temporary`) and bookkeeping files never match.
// Curated is Iceberg: read whole by pyiceberg (deletes applied by Iceberg's own reader), not by
// the pipeline's planner and DuckDB anti-join (activities/iceberg.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../config';
import type { DuckDBConnection } from '@duckdb/node-api';
import { withDatabase } from '../../activities/duckdb';
import type { Source } from '../../schemas';

export type LakeLayer = 'raw' | 'curated';

const LAYOUT: Record<'raw' | 'quarantine', string> = {
  raw: 'date=*/hour=*/batch_id=*/*.parquet',
  quarantine: 'date=*/batch_id=*/*.parquet',
};

// Every row of the table's current snapshot, as Iceberg reads it, grouped per event id.
const ICEBERG_IDS = `
import json, sys
from pathlib import Path
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
lake, source = sys.argv[1], sys.argv[2]
db = Path(lake) / "_catalog" / "iceberg.sqlite"
out = {}
if db.exists():
    try:
        table = SqlCatalog("lake", uri=f"sqlite:///{db}", warehouse=f"file://{lake}").load_table(("curated", source))
        rows = table.scan(selected_fields=("event_id", "event_time")).to_arrow().to_pylist()
    except NoSuchTableError:
        rows = []
    for r in rows:
        copies, t = out.get(r["event_id"], (0, None))
        out[r["event_id"]] = (copies + 1, t or r["event_time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
print(json.dumps([{"event_id": k, "copies": c, "event_time": t} for k, (c, t) in out.items()]))
`;

async function curatedRows(lakeRoot: string, source: Source): Promise<Record<string, unknown>[]> {
  const python = join(process.env.SMARTCITY_TOOLS_DIR ?? join(PROJECT_ROOT, '.tools'), 'venv', 'bin', 'python');
  const { stdout } = await promisify(execFile)(python, ['-c', ICEBERG_IDS, lakeRoot, source], { maxBuffer: 1 << 30 });
  return JSON.parse(stdout) as Record<string, unknown>[];
}

/** Copies per event id (and the event time of one copy): what one source's table holds. */
export interface IdCounts {
  counts: Map<string, number>;
  eventTimeMs: Map<string, number>;
  rows: number;
}

export interface QuarantineRow {
  source: string;
  kafkaKey: string | null;
  kafkaTopic: string;
  kafkaPartition: number;
  kafkaOffset: number;
  reason: string | null;
  errorKind: string | null;
}

const sqlString = (text: string) => `'${text.replaceAll("'", "''")}'`;

function isNoFiles(err: unknown): boolean {
  return err instanceof Error && /No files found/i.test(err.message);
}

/** A Parquet file Spark replaced between DuckDB's glob and its read: read again. */
function isVanished(err: unknown): boolean {
  return err instanceof Error && /No such file|cannot open file|does not exist/i.test(err.message);
}

async function rowsOf(conn: DuckDBConnection, sql: string): Promise<Record<string, unknown>[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await conn.runAndReadAll(sql)).getRowObjectsJson();
    } catch (err) {
      if (isNoFiles(err)) return [];
      if (attempt < 5 && isVanished(err)) continue;
      throw err;
    }
  }
}

function idCounts(rows: Record<string, unknown>[]): IdCounts {
  const out: IdCounts = { counts: new Map(), eventTimeMs: new Map(), rows: 0 };
  for (const row of rows) {
    const id = String(row.event_id);
    const copies = Number(row.copies);
    out.counts.set(id, copies);
    out.eventTimeMs.set(id, Date.parse(String(row.event_time)));
    out.rows += copies;
  }
  return out;
}

const ID_QUERY = (from: string) =>
  `SELECT event_id, count(*) AS copies, strftime(min(CAST(event_time AS TIMESTAMPTZ)), '%Y-%m-%dT%H:%M:%S.%gZ') AS event_time FROM ${from} GROUP BY event_id`;

/** Event ids of one source in a lake layer, as the Parquet files under `<lakeRoot>/<layer>/<source>` hold them. */
export async function lakeIds(lakeRoot: string, layer: LakeLayer, source: Source): Promise<IdCounts> {
  if (layer === 'curated') return idCounts(await curatedRows(lakeRoot, source));
  const pattern = join(lakeRoot, layer, source, LAYOUT[layer]);
  return withDatabase(undefined, async (conn) =>
    idCounts(await rowsOf(conn, ID_QUERY(`read_parquet(${sqlString(pattern)}, union_by_name = true, hive_partitioning = false)`))),
  );
}

/** Every record of the quarantine, all sources. */
export async function quarantineRows(lakeRoot: string, sources: readonly Source[]): Promise<QuarantineRow[]> {
  return withDatabase(undefined, async (conn) => {
    const out: QuarantineRow[] = [];
    for (const source of sources) {
      const pattern = join(lakeRoot, 'quarantine', source, LAYOUT.quarantine);
      const rows = await rowsOf(
        conn,
        `SELECT kafka_key, kafka_topic, kafka_partition, kafka_offset, reason, error_kind FROM read_parquet(${sqlString(pattern)}, union_by_name = true, hive_partitioning = false)`,
      );
      const text = (value: unknown) => (typeof value === 'string' ? value : null);
      for (const r of rows) {
        out.push({
          source,
          kafkaKey: text(r.kafka_key),
          kafkaTopic: String(text(r.kafka_topic)),
          kafkaPartition: Number(r.kafka_partition),
          kafkaOffset: Number(r.kafka_offset),
          reason: text(r.reason),
          errorKind: text(r.error_kind),
        });
      }
    }
    return out;
  });
}

export interface WarehouseContents {
  ids: Record<Source, IdCounts>;
  /** loaded_windows: window bounds (ISO) → sources recorded for it. */
  loadedWindows: Map<string, Set<string>>;
}

/** The warehouse DuckDB file opened read-only: event ids per source table and the loaded windows. */
export async function warehouseContents(path: string, sources: readonly Source[]): Promise<WarehouseContents> {
  const empty = (): IdCounts => ({
    counts: new Map(),
    eventTimeMs: new Map(),
    rows: 0,
  });
  const ids = Object.fromEntries(sources.map((s) => [s, empty()])) as Record<Source, IdCounts>;
  const loadedWindows = new Map<string, Set<string>>();
  if (!existsSync(path)) return { ids, loadedWindows };
  return withDatabase(
    path,
    async (conn) => {
      const tables = new Set(
        (await rowsOf(conn, "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'")).map((r) =>
          String(r.table_name),
        ),
      );
      for (const source of sources) if (tables.has(source)) ids[source] = idCounts(await rowsOf(conn, ID_QUERY(`"${source}"`)));
      if (tables.has('loaded_windows')) {
        const iso = (column: string) => `strftime(${column}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
        for (const r of await rowsOf(conn, `SELECT ${iso('window_from')} AS f, ${iso('window_to')} AS t, source FROM loaded_windows`)) {
          const key = windowKey(String(r.f), String(r.t));
          const set = loadedWindows.get(key) ?? new Set<string>();
          set.add(String(r.source));
          loadedWindows.set(key, set);
        }
      }
      return { ids, loadedWindows };
    },
    { readOnly: true },
  );
}

/** One spelling of a window's bounds, whatever precision they were written with. */
export function windowKey(from: string | number, to: string | number): string {
  return `${new Date(from).toISOString()}/${new Date(to).toISOString()}`;
}
