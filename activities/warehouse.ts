// The local target's warehouse (Redshift on aws): <dataDir>/warehouse.duckdb with one table per
// source, loaded from the curated Iceberg tables one window at a time, as of the snapshot the
// window's curate committed.
import { heartbeating } from './heartbeat';
import { curatedFiles, curatedParams, curatedScan, type SnapshotFiles } from './iceberg';
import type { DuckDBConnection } from '@duckdb/node-api';
import { join } from 'node:path';
import type { Config } from '../config';
import { SOURCES, type Source } from '../schemas';
import { EVENT_TIME, describeRelation, ident, inTransaction, parseWindow, tablesColumnNames, withDatabase, type Column, type Window } from './duckdb';
import type { CuratedRead, LoadResult, SourceCounts } from './types';

/** Which windows were loaded when, with the rows each source received: the warehouse's own record. */
const LOADED_WINDOWS = `CREATE TABLE IF NOT EXISTS loaded_windows (
  window_from TIMESTAMPTZ NOT NULL,
  window_to TIMESTAMPTZ NOT NULL,
  source VARCHAR NOT NULL,
  row_count BIGINT NOT NULL,
  loaded_at TIMESTAMPTZ NOT NULL)`;

export function warehousePath(config: Config): string {
  return join(config.dataDir, 'warehouse.duckdb');
}

/** Creates the source's table from the curated columns, or adds the curated columns it lacks. */
async function conformTable(conn: DuckDBConnection, source: Source, curated: Column[], columns: string[]): Promise<void> {
  const table = ident(source);
  const existing = new Set(columns);
  if (existing.size === 0) {
    // Types are DuckDB's own rendering of the Parquet schema, valid DDL as they stand.
    await conn.run(`CREATE TABLE ${table} (${curated.map((c) => `${ident(c.name)} ${c.type}`).join(', ')})`);
    return;
  }
  for (const column of curated.filter((c) => !existing.has(c.name))) {
    await conn.run(`ALTER TABLE ${table} ADD COLUMN ${ident(column.name)} ${column.type}`);
  }
}

/**
 * Replaces the window's rows of one source with the curated ones; returns how many were inserted.
 * `columns`: the table's columns before the load, none when it does not exist yet.
 */
async function replaceWindow(conn: DuckDBConnection, source: Source, files: SnapshotFiles, window: Window, columns: string[]): Promise<number> {
  const bounds = { from: window.from, to: window.to };
  const inWindow = `${ident(EVENT_TIME)} >= $from::TIMESTAMPTZ AND ${ident(EVENT_TIME)} < $to::TIMESTAMPTZ`;
  const params = curatedParams(files, 'curated');
  const curated = files.data.length === 0 ? [] : await describeRelation(conn, curatedScan(files, 'curated'), params);
  if (curated.length > 0) await conformTable(conn, source, curated, columns);
  else if (columns.length === 0) return 0;
  await conn.run(`DELETE FROM ${ident(source)} WHERE ${inWindow}`, bounds);
  if (files.data.length === 0) return 0;
  // A data file of the hour may also hold the neighbouring windows' rows: only the window's are loaded.
  const inserted = await conn.run(`INSERT INTO ${ident(source)} BY NAME SELECT * FROM ${curatedScan(files, 'curated')} WHERE ${inWindow}`, { ...bounds, ...params });
  return inserted.rowsChanged;
}

export function warehouseActivities(config: Config) {
  const database = warehousePath(config);
  return {
    /**
     * Makes the warehouse hold exactly the curated rows of the window, for every source, in one
     * transaction: a retry or a re-run (late data) gives the same rows, and a failure part-way
     * leaves the previous load of the window in place. Each table is read as of the snapshot the
     * window's curate committed (input.snapshots), so a later commit to the table (another
     * window, a re-run of this one) never changes what this load reads.
     */
    async loadWarehouse(input: CuratedRead): Promise<LoadResult> {
      return heartbeating(async () => {
        const window = parseWindow(input.window);
        // Planned before the database is taken: the file is another process's meanwhile.
        const planned = await Promise.all(SOURCES.map((source) => curatedFiles(config, source, window, input.snapshots?.[source])));
        return withDatabase(database, async (conn) => {
          await conn.run(LOADED_WINDOWS);
          const rows = await inTransaction(conn, async () => {
            const counts = {} as SourceCounts;
            const tables = await tablesColumnNames(conn);
            for (const [i, source] of SOURCES.entries()) {
              try {
                counts[source] = await replaceWindow(conn, source, planned[i]!, window, tables.get(source) ?? []);
              } catch (err) {
                throw new Error(`loading ${source} for ${window.label} from curated failed, nothing was changed: ${(err as Error).message}`);
              }
            }
            await conn.run('DELETE FROM loaded_windows WHERE window_from = $from::TIMESTAMPTZ AND window_to = $to::TIMESTAMPTZ', {
              from: window.from,
              to: window.to,
            });
            for (const source of SOURCES) {
              await conn.run('INSERT INTO loaded_windows VALUES ($from::TIMESTAMPTZ, $to::TIMESTAMPTZ, $source, $rows, now())', {
                from: window.from,
                to: window.to,
                source,
                rows: counts[source],
              });
            }
            return counts;
          });
          return { rows };
        });
      });
    },
  };
}
