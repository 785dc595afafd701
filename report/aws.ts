// What the aws target holds, in the same StoredState the local files give (./lake): rows per
// source in raw and curated (one Athena query over the Glue tables), in quarantine (the row counts
// in the footers of the quarantine bucket's Parquet files: the crawlers do not catalogue it), the
// warehouse's rows and loaded windows (Redshift Data API) and the Glue catalog. Read-only: it starts
// queries and statements, never a crawl, job or load.
import { randomUUID } from 'node:crypto';
import type { _Object } from '@aws-sdk/client-s3';
import type { Config } from '../config';
import { queryOperation } from '../activities/aws/athena';
import { createAwsClients, type AwsClients, type AwsDeps } from '../activities/aws/clients';
import { classifyAwsError } from '../activities/aws/errors';
import { catalogTables, partitionCount, tableName, type Catalog } from '../activities/aws/glue';
import { awaitOperation } from '../activities/aws/operation';
import { statementOperation } from '../activities/aws/redshift';
import { layerRoot, listObjects, readRange } from '../activities/aws/s3';
import { zeroCounts } from '../activities/lake';
import { ident, rowNumber, sqlString, type Row } from '../activities/sql';
import type { SourceCounts } from '../activities/types';
import { SOURCES, type Source } from '../schemas';
import type { CatalogTable, LoadedWindow, SourceRows, StoredState } from './lake';

/** Between two status calls of the report's queries; they take seconds. */
const POLL_INTERVAL_MS = 1_000;
/** A report query still running after this is stopped, and the report says what is missing. */
const QUERY_DEADLINE_MS = 5 * 60_000;
/** Parquet footers read at once. */
const FOOTER_READS = 8;
const READ_ATTEMPTS = 3;

/** Rows per source of the raw and curated tables the catalog has, in one Athena query. */
export function lakeCountsSql(catalog: Catalog): string | undefined {
  const selects = (['raw', 'curated'] as const).flatMap((layer) =>
    SOURCES.filter((s) => catalog.has(tableName(layer, s))).map(
      (s) => `SELECT ${sqlString(layer)} AS layer, ${sqlString(s)} AS source, count(*) AS row_count FROM ${ident(tableName(layer, s))}`,
    ),
  );
  return selects.length ? selects.join('\nUNION ALL\n') : undefined;
}

const WAREHOUSE_TABLES = [...SOURCES, 'loaded_windows'];

/** Which of the warehouse's tables exist: the load creates them. */
export function warehouseTablesSql(schema: string): string {
  return `SELECT table_name FROM information_schema.tables WHERE table_schema = ${sqlString(schema)} AND table_name IN (${WAREHOUSE_TABLES.map(sqlString).join(', ')})`;
}

/** Rows per source table that exists, and the loaded windows when their table exists. */
export function warehouseSql(schema: string, tables: Set<string>): { counts?: string; loaded?: string } {
  const counted = SOURCES.filter((s) => tables.has(s));
  return {
    ...(counted.length && {
      counts: counted.map((s) => `SELECT ${sqlString(s)} AS source, count(*) AS row_count FROM ${ident(schema)}.${ident(s)}`).join('\nUNION ALL\n'),
    }),
    ...(tables.has('loaded_windows') && {
      loaded: `SELECT window_from, window_to, source, row_count, loaded_at FROM ${ident(schema)}.loaded_windows ORDER BY window_from, source`,
    }),
  };
}

/** Redshift prints a TIMESTAMP as UTC wall time, `2026-03-02 12:55:00[.fff]`. */
const isoOf = (value: Row[string]): string => new Date(`${String(value).replace(' ', 'T')}Z`).toISOString();

function loadedWindows(rows: Row[]): LoadedWindow[] {
  const byWindow = new Map<string, LoadedWindow>();
  for (const r of rows) {
    const from = isoOf(r.window_from ?? null);
    const entry = byWindow.get(from) ?? { from, to: isoOf(r.window_to ?? null), rows: zeroCounts(), loadedAt: isoOf(r.loaded_at ?? null) };
    const source = String(r.source);
    if ((SOURCES as readonly string[]).includes(source)) entry.rows[source as Source] = rowNumber(r.row_count);
    const loadedAt = isoOf(r.loaded_at ?? null);
    if (loadedAt > entry.loadedAt) entry.loadedAt = loadedAt;
    byWindow.set(from, entry);
  }
  return [...byWindow.values()];
}

/** The warehouse's rows and loaded windows; null before the first load created its tables. */
async function readWarehouse(deps: AwsDeps, deadlineMs: number): Promise<{ rows: SourceCounts; loadedWindows: LoadedWindow[] } | null> {
  const schema = deps.aws.redshift.schema;
  const statement = (what: string, sqls: string[]) =>
    awaitOperation(deps, statementOperation(deps, { what, sqls, results: sqls.map((_, i) => i), token: () => randomUUID() }), deadlineMs);
  const [existing = []] = await statement('warehouse tables for the report', [warehouseTablesSql(schema)]);
  const tables = new Set(existing.map((r) => String(r.table_name)));
  if (!tables.has('loaded_windows')) return null;
  const sql = warehouseSql(schema, tables);
  const sqls = [sql.counts, sql.loaded].filter((s): s is string => s !== undefined);
  const results = await statement('warehouse counts for the report', sqls);
  const rows = zeroCounts();
  for (const r of sql.counts ? results[0]! : []) rows[String(r.source) as Source] = rowNumber(r.row_count);
  return { rows, loadedWindows: loadedWindows(results.at(-1)!) };
}

/** Rows of a Parquet file, from its footer (two ranged reads, whatever the file's size). */
async function parquetRows(deps: AwsDeps, bucket: string, object: _Object): Promise<number> {
  // hyparquet is an ES module; this project compiles to CommonJS.
  const { parquetMetadataAsync } = await import('hyparquet');
  const key = object.Key!;
  const metadata = await parquetMetadataAsync(
    { byteLength: object.Size ?? 0, slice: (start, end) => readRange(deps, bucket, key, start, end ?? object.Size ?? 0) },
    { initialFetchSize: 64 * 1024 },
  );
  return Number(metadata.num_rows);
}

/** Data files only: Spark's markers (`_SUCCESS`) and work folders (`_temporary/`, `.…`) are not rows. */
const isDataFile = (key: string): boolean => key.endsWith('.parquet') && !key.split('/').some((part) => part.startsWith('_') || part.startsWith('.'));

/** Quarantined rows per source; a file the streaming job replaced between listing and reading makes the source count again. */
async function quarantineRows(deps: AwsDeps): Promise<SourceCounts> {
  const bucket = deps.aws.buckets.quarantine;
  const root = layerRoot(deps.aws, 'quarantine').slice(`s3://${bucket}/`.length);
  const counts = zeroCounts();
  for (const source of SOURCES) {
    for (let attempt = 1; ; attempt++) {
      try {
        const files = (await listObjects(deps, bucket, `${root}${source}/`)).filter((o) => o.Key !== undefined && isDataFile(o.Key));
        let rows = 0;
        for (let i = 0; i < files.length; i += FOOTER_READS) {
          const batch = await Promise.all(files.slice(i, i + FOOTER_READS).map((f) => parquetRows(deps, bucket, f)));
          rows += batch.reduce((a, b) => a + b, 0);
        }
        counts[source] = rows;
        break;
      } catch (err) {
        if (attempt >= READ_ATTEMPTS || classifyAwsError(err).kind !== 'not-found') throw err;
      }
    }
  }
  return counts;
}

async function catalogReport(deps: AwsDeps, catalog: Catalog): Promise<CatalogTable[]> {
  const tables: CatalogTable[] = [];
  for (const table of catalog.values()) {
    const [layer = '', source = ''] = /^([a-z]+)_(.+)$/.exec(table.name)?.slice(1) ?? [];
    tables.push({
      name: table.name,
      layer,
      source,
      partitions: await partitionCount(deps, table.name),
      columns: table.columns.length,
      crawledAt: table.updatedAt?.toISOString() ?? '',
    });
  }
  return tables.sort((a, b) => a.layer.localeCompare(b.layer) || a.source.localeCompare(b.source));
}

export interface AwsReportOptions {
  /** SDK clients to use instead of the default chain's (tests). */
  clients?: AwsClients;
  pollIntervalMs?: number;
  deadlineMs?: number;
}

/** What a part of the report could not read, as a note; the rest of the report stands. */
async function orNote<T>(notes: string[], what: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    notes.push(`${what} could not be read, so its rows show as 0: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/**
 * Rows per source and layer, the loaded windows and the catalog of the aws target; whatever
 * exists so far. Athena or Redshift failing to answer leaves their rows out, with a note why.
 */
export async function readAwsStoredState(config: Config, opts: AwsReportOptions = {}): Promise<StoredState> {
  const aws = config.aws;
  if (!aws) throw new Error('the report of the aws target needs the aws settings (SMARTCITY_TARGET=aws and its SMARTCITY_* settings)');
  const clients = opts.clients ?? createAwsClients(aws);
  const deps: AwsDeps = { config, aws, clients, pollIntervalMs: opts.pollIntervalMs ?? POLL_INTERVAL_MS };
  try {
    const notes: string[] = [];
    const sources = Object.fromEntries(SOURCES.map((s) => [s, { raw: 0, quarantine: 0, curated: 0, warehouse: 0 }])) as Record<Source, SourceRows>;
    const catalog = await catalogTables(deps);
    const sql = lakeCountsSql(catalog);
    const deadlineMs = opts.deadlineMs ?? QUERY_DEADLINE_MS;
    const lakeCounts = () => awaitOperation(deps, queryOperation(deps, { what: 'lake counts for the report', sql: sql!, token: randomUUID() }), deadlineMs);
    const [lake, quarantine, warehouse, tables] = await Promise.all([
      sql === undefined ? [] : orNote(notes, `raw and curated (Athena, workgroup ${aws.athena.workgroup})`, lakeCounts),
      quarantineRows(deps),
      orNote(notes, `the warehouse (Redshift, ${aws.redshift.database}.${aws.redshift.schema})`, () => readWarehouse(deps, deadlineMs)),
      catalogReport(deps, catalog),
    ]);
    for (const r of lake ?? []) {
      const layer = r.layer === 'raw' || r.layer === 'curated' ? r.layer : undefined;
      if (layer && (SOURCES as readonly string[]).includes(String(r.source))) sources[r.source as Source][layer] = rowNumber(r.row_count);
    }
    for (const source of SOURCES) sources[source].quarantine = quarantine[source];
    if (SOURCES.every((s) => sources[s].raw === 0 && sources[s].quarantine === 0)) {
      notes.push(`the lake (${layerRoot(aws, 'raw')}) holds no catalogued events yet: the streaming job has not landed any, or the raw crawler has not run`);
    }
    if (warehouse) for (const source of SOURCES) sources[source].warehouse = warehouse.rows[source];
    else if (warehouse === null) notes.push(`no warehouse yet: no window has been loaded into ${aws.redshift.database}.${aws.redshift.schema}`);
    if (tables.length === 0) notes.push(`no catalog yet: the Glue database ${aws.glue.database} has no tables (nothing has been crawled)`);
    return { sources, loadedWindows: warehouse?.loadedWindows ?? [], catalog: tables, notes };
  } finally {
    if (!opts.clients) for (const client of Object.values(clients) as { destroy(): void }[]) client.destroy();
  }
}
