// DuckDB, the local target's catalog, warehouse and query engine: opening its database files and
// reading the lake's Parquet. The catalog, warehouse and query activities build on this module only.
import { DuckDBInstance, listValue, type DuckDBConnection, type DuckDBValue, type Json } from '@duckdb/node-api';
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config';
import type { Column } from './lake';
import type { Layer } from './types';

// Shared with the aws activities, which must not load DuckDB: see ./lake.
export { EVENT_ID, EVENT_TIME, hourPartitions, parseWindow, type Column, type Window } from './lake';
export { ident } from './sql';


/** Another process (the CLI's report, a second worker) may hold a database file for a moment. */
const LOCK_WAIT_MS = 15_000;

/** The lake as a local folder: DuckDB here reads the files the local Spark jobs wrote. */
export function lakeRoot(config: Config): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(config.lakeRoot)) {
    throw ApplicationFailure.nonRetryable(`the local target reads the lake from a folder, not ${config.lakeRoot}; unset SMARTCITY_LAKE_ROOT or point it at a folder`, 'InvalidConfig');
  }
  return config.lakeRoot;
}

/** Folder of one table of the lake: `<lake>/<layer>/<source>`. */
export function tableRoot(config: Config, layer: Layer, source: string): string {
  return join(lakeRoot(config), layer, source);
}

// ---- databases -----------------------------------------------------------------------------

// DuckDB's lock is per process: two instances of one file in this process would both get it and
// corrupt the file. One instance per file is therefore held here and shared: opening it is done
// one call at a time, writers take turns, readers run beside them on connections of their own.
const opening = new Map<string, Promise<unknown>>();
const writing = new Map<string, Promise<unknown>>();

/** Runs `run` after the calls queued on `key` before it, in order. */
async function inTurn<T>(queues: Map<string, Promise<unknown>>, key: string, run: () => Promise<T>): Promise<T> {
  const current = (queues.get(key) ?? Promise.resolve()).then(run);
  const settled = current.catch(() => undefined);
  queues.set(key, settled);
  try {
    return await current;
  } finally {
    if (queues.get(key) === settled) queues.delete(key);
  }
}

function isLockConflict(err: unknown): boolean {
  return err instanceof Error && /Could not set lock on file/i.test(err.message);
}

async function open(path: string, readOnly: boolean): Promise<DuckDBInstance> {
  const options = readOnly ? { access_mode: 'READ_ONLY' } : undefined;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    try {
      return await DuckDBInstance.create(path, options);
    } catch (err) {
      if (!isLockConflict(err)) throw err;
      if (Date.now() + delay > deadline) {
        throw new Error(`${path} stayed locked by another process for ${LOCK_WAIT_MS / 1000}s: ${(err as Error).message}`);
      }
      await sleep(delay);
    }
  }
}

/**
 * A database file this process holds open between calls for a moment: a burst of calls (a
 * backfill's loads and checks) opens it once instead of once per call, and keeps DuckDB's catalog
 * warm. Released once no call has used it for HOLD_IDLE_MS, so other processes (the CLI's report,
 * a second worker) get the file in the pauses.
 */
interface Held {
  instance: DuckDBInstance;
  readOnly: boolean;
  users: number;
  idle?: NodeJS.Timeout;
  /** Wakes a writer waiting for the readers of a read-only instance to finish. */
  drained?: () => void;
}
const HOLD_IDLE_MS = 50;
const held = new Map<string, Held>();

function release(path: string, h: Held): void {
  clearTimeout(h.idle);
  if (held.get(path) === h) held.delete(path);
  try {
    h.instance.closeSync();
  } catch {
    // The file may be gone (a test's folder removed); its committed writes are in it or its WAL.
  }
}

/** The held instance of `path` if it serves `readOnly`, else a newly opened one; one call at a time. */
function acquire(path: string, readOnly: boolean): Promise<Held> {
  return inTurn(opening, path, async () => {
    const h = held.get(path);
    if (h) {
      clearTimeout(h.idle);
      h.idle = undefined;
      // A read-write instance serves readers too; a read-only one is reopened for a writer.
      if (readOnly || !h.readOnly) {
        h.users += 1;
        return h;
      }
      if (h.users > 0) await new Promise<void>((wake) => (h.drained = wake));
      release(path, h);
    }
    await mkdir(dirname(path), { recursive: true });
    const opened: Held = { instance: await open(path, readOnly), readOnly, users: 1 };
    held.set(path, opened);
    return opened;
  });
}

function done(path: string, h: Held): void {
  h.users -= 1;
  if (h.users > 0) return;
  const drained = h.drained;
  h.drained = undefined;
  if (drained) return drained();
  // Whoever acquires the instance next clears this before it fires.
  h.idle = setTimeout(() => release(path, h), HOLD_IDLE_MS);
  h.idle.unref();
}

async function withConnection<T>(instance: DuckDBInstance, run: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const conn = await instance.connect();
  try {
    // Window bounds are UTC instants; with the session in UTC a naive TIMESTAMP compares as UTC
    // too, and timestamps print the same on every machine.
    await conn.run("SET TimeZone = 'UTC'");
    return await run(conn);
  } finally {
    conn.disconnectSync();
  }
}

async function session<T>(path: string, readOnly: boolean, run: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const h = await acquire(path, readOnly);
  try {
    return await withConnection(h.instance, run);
  } finally {
    done(path, h);
  }
}

/**
 * Runs `run` with a connection of its own to the database file (created if missing, unless
 * read-only). Writers of a file take turns; readers run beside them and each other, each seeing
 * committed data. The file is released once idle for a moment, so other processes can open it
 * between bursts of calls. Without a path the database lives in memory (for queries over Parquet
 * only).
 */
export async function withDatabase<T>(
  path: string | undefined,
  run: (conn: DuckDBConnection) => Promise<T>,
  options: { readOnly?: boolean } = {},
): Promise<T> {
  if (path === undefined) {
    const instance = await DuckDBInstance.create(':memory:');
    try {
      return await withConnection(instance, run);
    } finally {
      instance.closeSync();
    }
  }
  if (options.readOnly) return session(path, true, run);
  return inTurn(writing, path, () => session(path, false, run));
}

/** Runs `run` in one transaction: all of its writes become visible together, or none does. */
export async function inTransaction<T>(conn: DuckDBConnection, run: () => Promise<T>): Promise<T> {
  await conn.run('BEGIN TRANSACTION');
  let result: T;
  try {
    result = await run();
  } catch (err) {
    // The error that aborted the work is the one to report, not a failed rollback of it.
    await conn.run('ROLLBACK').catch(() => undefined);
    throw err;
  }
  await conn.run('COMMIT');
  return result;
}

export type Params = Record<string, DuckDBValue>;
export type Row = Record<string, Json>;

export async function queryRows(conn: DuckDBConnection, sql: string, params?: Params | DuckDBValue[]): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, params);
  return reader.getRowObjectsJson();
}

/** A value of a result row as text (NULL as `null`), for names, types and messages. */
export function toText(value: Json | undefined): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}

/** DuckDB prints BIGINT and HUGEINT as strings in JSON; counts come back as numbers here. */
export function toNumber(value: Json | undefined): number {
  return value === null || value === undefined ? 0 : Number(value);
}

/** The column names of every table of the database's main schema, in order (one catalog scan). */
export async function tablesColumnNames(conn: DuckDBConnection): Promise<Map<string, string[]>> {
  const rows = await queryRows(
    conn,
    "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_index",
  );
  const tables = new Map<string, string[]>();
  for (const r of rows) {
    const table = toText(r.table_name);
    const columns = tables.get(table);
    if (columns) columns.push(toText(r.column_name));
    else tables.set(table, [toText(r.column_name)]);
  }
  return tables;
}

/** Column names of a table of the database file (not of this session's temporary tables); none if it does not exist. */
export async function tableColumnNames(conn: DuckDBConnection, table: string): Promise<string[]> {
  const rows = await queryRows(
    conn,
    "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $table ORDER BY column_index",
    { table },
  );
  return rows.map((r) => toText(r.column_name));
}

// ---- the lake's Parquet ------------------------------------------------------------------------

export interface LakeFile {
  path: string;
  size: number;
  mtimeMs: number;
  /** Folder relative to the table root, `/`-separated: `date=2026-03-02/hour=09/batch_id=7`. */
  partition: string;
}

// Spark's bookkeeping (_SUCCESS, _spark_metadata, _temporary, .crc files) and the staging folders
// of an unfinished dynamic-overwrite write (.spark-staging-*) are not data: Hive and Glue skip
// names starting with `_` or `.` for the same reason.
const isHidden = (name: string) => name.startsWith('_') || name.startsWith('.');

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function walk(root: string, partition: string, out: LakeFile[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(join(root, partition), { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  for (const entry of entries) {
    if (isHidden(entry.name)) continue;
    const relative = partition ? `${partition}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      await walk(root, relative, out);
    } else if (entry.isFile() && entry.name.endsWith('.parquet')) {
      const path = join(root, relative);
      try {
        const info = await stat(path);
        out.push({ path, size: info.size, mtimeMs: info.mtimeMs, partition });
      } catch (err) {
        // Replaced by a Spark overwrite since the listing: the next crawl or retry sees its successor.
        if (!isMissing(err)) throw err;
      }
    }
  }
}

/**
 * The Parquet files of a table (`<lake>/<layer>/<source>`), or only of the given partition folders
 * under it, sorted by path. A table or partition that does not exist yet has no files.
 */
export async function listParquet(root: string, partitions: string[] = ['']): Promise<LakeFile[]> {
  const files: LakeFile[] = [];
  for (const partition of partitions) await walk(root, partition, files);
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Key/value pairs of a partition folder (`date=2026-03-02/hour=09` → [[date, 2026-03-02], [hour, 09]]). */
export function partitionValues(partition: string): [string, string][] {
  return partition
    .split('/')
    .map((segment) => segment.split('='))
    .filter((kv): kv is [string, string] => kv.length === 2)
    // Spark writes a special character of a partition value as %XX of its code.
    .map(([key, value]) => [key, value.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))]);
}

/** Changes whenever a file of the set is added, removed or rewritten. */
export function fingerprint(files: LakeFile[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.path}\0${f.size}\0${f.mtimeMs}\n`);
  return hash.digest('hex');
}

/** Binds a file list for `scanParquet`. */
export function fileList(files: LakeFile[]): DuckDBValue {
  return listValue(files.map((f) => f.path));
}

/**
 * The rows of the Parquet files bound to `placeholder` (`$files`, `$1`; see fileList). Files are matched by column
 * name, so a file written before a new optional column reads it as NULL. Partition values are not
 * added as columns: they repeat the event time, and DuckDB would parse any `key=value` folder of
 * the absolute path, the data dir's included; listParquet/partitionValues read them from the path
 * below the table root instead.
 */
export function scanParquet(placeholder: string): string {
  return `read_parquet(${placeholder}, union_by_name = true, hive_partitioning = false)`;
}


/** The columns of a relation (a table function, a subquery) as DuckDB types them. */
export async function describeRelation(conn: DuckDBConnection, relation: string, params: Params): Promise<Column[]> {
  const rows = await queryRows(conn, `DESCRIBE SELECT * FROM ${relation}`, params);
  return rows.map((r) => ({ name: toText(r.column_name), type: toText(r.column_type) }));
}

/** The columns of a set of Parquet files, merged by name as scanParquet reads them; none without files. */
export async function describeParquet(conn: DuckDBConnection, files: LakeFile[]): Promise<Column[]> {
  if (files.length === 0) return [];
  return describeRelation(conn, scanParquet('$files'), { files: fileList(files) });
}
