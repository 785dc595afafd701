// The local target's curated layer: Apache Iceberg tables (spark/smartcity_spark/lakehouse.py) in a
// JDBC catalog on <lake>/_catalog/iceberg.sqlite. Readers here (the warehouse load, the checks, the
// report) read a window of a table as of a snapshot: pyiceberg plans the snapshot's data files and
// position-delete files (spark/smartcity_spark/lake_reader.py, one long-lived child per process),
// and DuckDB reads them, leaving out the deleted rows. DuckDB's own Iceberg extension would need a
// download at run time, which these machines cannot do.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listValue, type DuckDBValue } from '@duckdb/node-api';
import { PROJECT_ROOT, type Config } from '../config';
import type { Source } from '../schemas';
import { tools } from '../stack/tools';
import { JsonLinesChild } from './json-lines-child';
import type { Window } from './lake';

/** The curated tables' namespace in the local catalog (the Glue database on aws). */
export const CURATED_NAMESPACE = 'curated';

/** The catalog's SQLite file, shared by Spark (JDBC) and pyiceberg (SqlCatalog). */
export function catalogFile(config: Config): string {
  return join(config.lakeRoot, '_catalog', 'iceberg.sqlite');
}

/** What makes up a window of a curated table as of a snapshot. */
export interface SnapshotFiles {
  /** The snapshot read (the table's current one when none was asked for); null: the table has none. */
  snapshot: string | null;
  data: string[];
  /** Position-delete files (file_path, pos) of those data files. */
  deletes: string[];
}

function reader(config: Config): JsonLinesChild {
  const lake = config.lakeRoot;
  return new JsonLinesChild(
    'the curated-table reader (lake_reader.py)',
    [tools.python(config), '-m', 'smartcity_spark.lake_reader', '--catalog-uri', `sqlite:///${catalogFile(config)}`, '--warehouse', `file://${lake}`, '--namespace', CURATED_NAMESPACE],
    join(PROJECT_ROOT, 'spark'),
  );
}

/** One reader per lake in this process. */
const readers = new Map<string, JsonLinesChild>();

/**
 * The files of a window of a curated table as of `snapshot` (the current snapshot when absent).
 * Before the first curate there is no catalog, and every table reads as empty.
 */
export async function curatedFiles(config: Config, source: Source, window: Window, snapshot?: string): Promise<SnapshotFiles> {
  if (!existsSync(catalogFile(config)) && snapshot === undefined) return { snapshot: null, data: [], deletes: [] };
  let child = readers.get(config.lakeRoot);
  if (!child) readers.set(config.lakeRoot, (child = reader(config)));
  const answer = (await child.request({ table: source, from: window.from, to: window.to, snapshot: snapshot ?? null })) as Partial<SnapshotFiles>;
  return { snapshot: answer.snapshot ?? null, data: answer.data ?? [], deletes: answer.deletes ?? [] };
}

/** Binds the lists of a SnapshotFiles for curatedScan. */
export function curatedParams(files: SnapshotFiles, prefix: string): Record<string, DuckDBValue> {
  return {
    [`${prefix}_data`]: listValue(files.data),
    ...(files.deletes.length > 0 && { [`${prefix}_deletes`]: listValue(files.deletes) }),
  };
}

/**
 * The rows of a curated snapshot's files (bound by curatedParams under `prefix`): the data files'
 * rows minus the positions the delete files name. Columns are matched by name, so a file written
 * before a new column reads it as NULL. A relation for FROM; callers filter to their window (a file
 * may hold rows of the neighbouring windows of its hour).
 */
export function curatedScan(files: SnapshotFiles, prefix: string): string {
  const data = `read_parquet($${prefix}_data, union_by_name = true, hive_partitioning = false, filename = true, file_row_number = true)`;
  if (files.deletes.length === 0) return `(SELECT * EXCLUDE (filename, file_row_number) FROM ${data})`;
  const deleted = `(SELECT regexp_replace(file_path, '^file:(//)?', '') AS file_path, pos FROM read_parquet($${prefix}_deletes, hive_partitioning = false))`;
  return `(SELECT d.* EXCLUDE (filename, file_row_number) FROM ${data} d ANTI JOIN ${deleted} x ON d.filename = x.file_path AND d.file_row_number = x.pos)`;
}
