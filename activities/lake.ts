// Lake facts both targets share, free of any engine: the columns every event carries, time
// windows and the event-time partitions that can hold them. The DuckDB (local) and AWS activities
// import these from here, so an aws worker never loads DuckDB.
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { SOURCES, type Source } from '../schemas';
import type { CurateResult, Snapshots, SourceCounts, TimeWindow } from './types';

/** Lake columns every event carries (snake_case, as the Spark jobs write them). */
export const EVENT_ID = 'event_id';
export const EVENT_TIME = 'event_time';

export interface Column {
  name: string;
  /** DuckDB's type, e.g. `BIGINT`, `TIMESTAMP WITH TIME ZONE`. */
  type: string;
}

export interface Window {
  /** Normalised ISO-8601 UTC, for binding as TIMESTAMPTZ. */
  from: string;
  to: string;
  fromMs: number;
  toMs: number;
  label: string;
}

export function parseWindow(window: TimeWindow): Window {
  const fromMs = Date.parse(window.from);
  const toMs = Date.parse(window.to);
  if (Number.isNaN(fromMs) || Number.isNaN(toMs) || fromMs >= toMs) {
    throw ApplicationFailure.nonRetryable(`invalid window ${JSON.stringify(window)}: expected ISO times with from < to`, 'InvalidInput');
  }
  const from = new Date(fromMs).toISOString();
  const to = new Date(toMs).toISOString();
  return { from, to, fromMs, toMs, label: `${from}/${to}` };
}

/** Every source at 0 rows: the start of any per-source count. */
export const zeroCounts = (): SourceCounts => Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;

const HOUR_MS = 3_600_000;

/** The event-time partitions (`date=…/hour=…`, UTC) that can hold events of the window. */
export function hourPartitions(window: Window): string[] {
  const dirs: string[] = [];
  for (let hour = Math.floor(window.fromMs / HOUR_MS) * HOUR_MS; hour < window.toMs; hour += HOUR_MS) {
    const iso = new Date(hour).toISOString();
    dirs.push(`date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`);
  }
  return dirs;
}

/** How a table's columns changed between two crawls (both targets' catalogs report it alike). */
export interface SchemaChange {
  change: 'new column' | 'type change' | 'dropped column';
  column: string;
  oldType: string | null;
  newType: string | null;
}

export function describeChange(table: string, c: SchemaChange): string {
  if (c.change === 'type change') return `${table}: type change ${c.column} ${c.oldType} → ${c.newType}`;
  return `${table}: ${c.change} ${c.column} ${c.newType ?? c.oldType}`;
}

export function diffColumns(before: Column[], after: Column[]): SchemaChange[] {
  const old = new Map(before.map((c) => [c.name, c.type]));
  const now = new Map(after.map((c) => [c.name, c.type]));
  const changes: SchemaChange[] = [];
  for (const { name, type } of after) {
    const was = old.get(name);
    if (was === undefined) changes.push({ change: 'new column', column: name, oldType: null, newType: type });
    else if (was !== type) changes.push({ change: 'type change', column: name, oldType: was, newType: type });
  }
  for (const { name, type } of before) {
    if (!now.has(name)) changes.push({ change: 'dropped column', column: name, oldType: type, newType: null });
  }
  return changes;
}

// ---- the curate job's summary (spark/jobs/curate.py, both targets) --------------------------------

const sourceSummary = z.object({
  rows_read: z.number(),
  duplicates_dropped: z.number(),
  rows_written: z.number(),
  /** The Iceberg snapshot holding the window's commit, as a decimal string (64-bit); null: the table has none. */
  snapshot_id: z.string().regex(/^\d{1,19}$/).nullable().optional(),
});
export const curateSummarySchema = z.object({ sources: z.partialRecord(z.enum(SOURCES as unknown as [Source, ...Source[]]), sourceSummary) }).loose();

/** A parsed curate summary as the activity's result (both targets). */
export function curateResultOf(summary: z.infer<typeof curateSummarySchema>): CurateResult {
  const sources = summary.sources;
  const snapshots: Snapshots = {};
  for (const s of SOURCES) {
    const id = sources[s]?.snapshot_id;
    if (id !== undefined && id !== null) snapshots[s] = id;
  }
  return {
    rowsRead: SOURCES.reduce((n, s) => n + (sources[s]?.rows_read ?? 0), 0),
    duplicatesDropped: SOURCES.reduce((n, s) => n + (sources[s]?.duplicates_dropped ?? 0), 0),
    rowsWritten: Object.fromEntries(SOURCES.map((s) => [s, sources[s]?.rows_written ?? 0])) as SourceCounts,
    ...(Object.keys(snapshots).length > 0 && { snapshots }),
  };
}
