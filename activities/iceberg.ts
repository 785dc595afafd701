// The local target's curated layer: Apache Iceberg tables (spark/smartcity_spark/lakehouse.py) in a
// JDBC catalog on <lake>/_catalog/iceberg.sqlite. Readers here (the warehouse load, the checks, the
// report) read a window of a table as of a snapshot: pyiceberg plans the snapshot's data files and
// position-delete files (spark/smartcity_spark/lake_reader.py, one long-lived child per process),
// and DuckDB reads them, leaving out the deleted rows. DuckDB's own Iceberg extension would need a
// download at run time, which these machines cannot do.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { listValue, type DuckDBValue } from '@duckdb/node-api';
import { PROJECT_ROOT, type Config } from '../config';
import type { Source } from '../schemas';
import { tools } from '../stack/tools';
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

interface Pending {
  resolve: (files: SnapshotFiles) => void;
  reject: (err: Error) => void;
}

class Reader {
  private child?: ChildProcessWithoutNullStreams;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private stderr = '';

  constructor(private readonly config: Config) {}

  private start(): ChildProcessWithoutNullStreams {
    const lake = this.config.lakeRoot;
    const child = spawn(
      tools.python(this.config),
      ['-m', 'smartcity_spark.lake_reader', '--catalog-uri', `sqlite:///${catalogFile(this.config)}`, '--warehouse', `file://${lake}`, '--namespace', CURATED_NAMESPACE],
      { cwd: join(PROJECT_ROOT, 'spark'), stdio: ['pipe', 'pipe', 'pipe'] },
    );
    // The reader ends with this process (its stdin closes): idle, it never holds a worker or a test open.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) stream.unref?.();
    child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4_000)));
    createInterface({ input: child.stdout }).on('line', (line) => this.answer(line));
    const fail = (why: string) => {
      if (this.child === child) this.child = undefined;
      const err = new Error(`the curated-table reader (lake_reader.py) ${why}${this.stderr ? `:\n${this.stderr.trim()}` : ''}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
    return child;
  }

  private answer(line: string): void {
    let message: { id?: number; error?: string } & Partial<SnapshotFiles>;
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return; // not ours (a library's print)
    }
    const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id!);
    if (this.pending.size === 0) this.child?.unref();
    if (message.error !== undefined) waiting.reject(new Error(message.error));
    else waiting.resolve({ snapshot: message.snapshot ?? null, data: message.data ?? [], deletes: message.deletes ?? [] });
  }

  plan(source: Source, window: Window, snapshot: string | undefined): Promise<SnapshotFiles> {
    this.child ??= this.start();
    const id = this.next++;
    const request = { id, table: source, from: window.from, to: window.to, snapshot: snapshot ?? null };
    return new Promise<SnapshotFiles>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Held while an answer is due (a CLI waits for it); let go once none is.
      this.child!.ref();
      this.child!.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }
}

const readers = new Map<string, Reader>();

/**
 * The files of a window of a curated table as of `snapshot` (the current snapshot when absent).
 * Before the first curate there is no catalog, and every table reads as empty.
 */
export async function curatedFiles(config: Config, source: Source, window: Window, snapshot?: string): Promise<SnapshotFiles> {
  if (!existsSync(catalogFile(config)) && snapshot === undefined) return { snapshot: null, data: [], deletes: [] };
  let reader = readers.get(config.lakeRoot);
  if (!reader) readers.set(config.lakeRoot, (reader = new Reader(config)));
  return reader.plan(source, window, snapshot);
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
