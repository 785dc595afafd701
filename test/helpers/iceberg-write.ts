// Test fixture: curated rows as the local lake's Iceberg tables hold them (one table per source in
// the `lake` catalog on <lake>/_catalog/iceberg.sqlite, hours(event_time), format 2, merge-on-read),
// written without Spark by test/helpers/iceberg_write.py, one long-lived child per test process.
// Each call commits one snapshot and resolves to its id (a decimal string, as curate reports it).
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../../config';
import { JsonLinesChild } from '../../activities/json-lines-child';
import type { TimeWindow } from '../../activities/types';
import { tools } from '../../stack/tools';

export type CuratedValue = string | number | null;
export type CuratedRow = Record<string, CuratedValue>;
/** Name and DuckDB type of each column, as curate's Spark types read in DuckDB: VARCHAR, DOUBLE, BIGINT, INTEGER or TIMESTAMPTZ. */
export type CuratedColumns = readonly (readonly [name: string, type: string])[];
/**
 * How rows leave a snapshot. merge-on-read (the tables' write mode, what Spark's MERGE and DELETE
 * commit): position-delete files beside the data files. copy-on-write: the data files holding them
 * are replaced by copies without them.
 */
export type WriteMode = 'merge-on-read' | 'copy-on-write';

type Request =
  | { op: 'append'; columns: CuratedColumns; rows: CuratedRow[] }
  | { op: 'replace'; window: TimeWindow; columns: CuratedColumns; rows: CuratedRow[]; mode: WriteMode }
  | { op: 'delete'; eventIds: string[]; mode: WriteMode };

let writer: JsonLinesChild | undefined;

async function write(config: Config, source: string, request: Request): Promise<string> {
  writer ??= new JsonLinesChild('the Iceberg test writer (iceberg_write.py)', [tools.python(config), join(PROJECT_ROOT, 'test', 'helpers', 'iceberg_write.py')]);
  const answer = await writer.request({ lake: config.lakeRoot, source, ...request });
  if (typeof answer.snapshot !== 'string') throw new Error('iceberg_write.py answered without a snapshot');
  return answer.snapshot;
}

/** Adds rows to the source's table, creating it (and the catalog) on first use; new columns are added to the table. */
export function appendCurated(config: Config, source: string, columns: CuratedColumns, rows: CuratedRow[]): Promise<string> {
  return write(config, source, { op: 'append', columns, rows });
}

/** What a curate of the window commits: the table's rows of the window become `rows`, in one snapshot. */
export function replaceCuratedWindow(
  config: Config,
  source: string,
  window: TimeWindow,
  columns: CuratedColumns,
  rows: CuratedRow[],
  mode: WriteMode = 'merge-on-read',
): Promise<string> {
  return write(config, source, { op: 'replace', window, columns, rows, mode });
}

/** Deletes the rows with these event ids (every copy), in one snapshot. */
export function deleteCurated(config: Config, source: string, eventIds: string[], mode: WriteMode = 'merge-on-read'): Promise<string> {
  return write(config, source, { op: 'delete', eventIds, mode });
}
