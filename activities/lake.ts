// Lake facts both targets share, free of any engine: the columns every event carries, time
// windows and the event-time partitions that can hold them. The DuckDB (local) and AWS activities
// import these from here, so an aws worker never loads DuckDB.
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES } from '../schemas';
import type { SourceCounts, TimeWindow } from './types';

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
