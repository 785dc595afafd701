// Test fixture: curated rows as the local lake's Iceberg tables hold them (one table per source in
// the `lake` catalog on <lake>/_catalog/iceberg.sqlite, hours(event_time), format 2, merge-on-read),
// written without Spark by test/helpers/iceberg_write.py, one long-lived child per test process.
// Each call commits one snapshot and resolves to its id (a decimal string, as curate reports it).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT, type Config } from '../../config';
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

interface Pending {
  resolve: (snapshot: string) => void;
  reject: (err: Error) => void;
}

class Writer {
  private child?: ChildProcessWithoutNullStreams;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private stderr = '';

  constructor(private readonly python: string) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn(this.python, [join(PROJECT_ROOT, 'test', 'helpers', 'iceberg_write.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    // Held only while a write is under way (write()): an idle writer never keeps the test process
    // alive, and it ends with it (its stdin closes).
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) stream.unref?.();
    child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4_000)));
    createInterface({ input: child.stdout }).on('line', (line) => this.answer(line));
    const fail = (why: string) => {
      if (this.child === child) this.child = undefined;
      const err = new Error(`the Iceberg test writer (iceberg_write.py) ${why}${this.stderr ? `:\n${this.stderr.trim()}` : ''}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
    return child;
  }

  private answer(line: string): void {
    let message: { id?: number; snapshot?: string; error?: string };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return; // a library's print
    }
    const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id!);
    if (this.pending.size === 0) this.child?.unref();
    if (message.error !== undefined || message.snapshot === undefined) waiting.reject(new Error(`iceberg_write.py: ${message.error ?? 'no snapshot in its answer'}`));
    else waiting.resolve(message.snapshot);
  }

  write(config: Config, source: string, request: Request): Promise<string> {
    const child = (this.child ??= this.start());
    const id = this.next++;
    child.ref();
    return new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.stdin.write(`${JSON.stringify({ id, lake: config.lakeRoot, source, ...request })}\n`);
    });
  }
}

let writer: Writer | undefined;
const write = (config: Config, source: string, request: Request) => (writer ??= new Writer(tools.python(config))).write(config, source, request);

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
