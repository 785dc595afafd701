// The report: the lake, catalog and warehouse as stored (local files, or on aws Athena, S3,
// Redshift and Glue), Temporal's runs, and per window what happened to it. `smartcity report
// --json` prints this object (without the chart series).
import { resolve } from 'node:path';
import type { Config } from '../config';
import type { SourceCounts } from '../activities/types';
import type { Source } from '../schemas';
import { readAwsStoredState, type AwsReportOptions } from './aws';
import { readStoredState, type CatalogTable, type LoadedWindow, type SourceRows } from './lake';
import { readSeries, type Series } from './series';
import { readTemporalState, type BatchRunReport, type TemporalState } from './temporal';

export interface WindowStatus {
  from: string;
  to?: string;
  /** The latest run's outcome: loaded, running, failed, cancelled, …; `loaded` when only the warehouse knows it. */
  status: string;
  /** Warehouse rows of the window's last successful load. */
  rows?: SourceCounts;
  loadedAt?: string;
  /** Batch runs of the window that Temporal listed. */
  runs: number;
  latestRun?: { workflowId: string; url: string; status: string };
  checks?: { passed: number; failed: string[] };
  /** Per-stage time of the latest run, ms. */
  timings?: BatchRunReport['timings'];
  totalMs?: number;
  error?: string;
}

export interface PipelineReport {
  generatedAt: string;
  target: string;
  dataDir: string;
  /** Rows per source in each layer: raw and quarantine as landed, curated, the warehouse. */
  sources: Record<Source, SourceRows>;
  /** Windows the warehouse holds, oldest first, with the rows each source received. */
  loadedWindows: LoadedWindow[];
  /** Every window the warehouse or Temporal knows, oldest first. */
  windows: WindowStatus[];
  catalog: CatalogTable[];
  temporal: TemporalState;
  notes: string[];
  /** The HTML report's charts; not part of the JSON. */
  series?: Series;
}

const STATUS_OF_RUN: Record<string, string> = { completed: 'loaded' };

export function windowStatuses(loaded: LoadedWindow[], temporal: TemporalState): WindowStatus[] {
  const byFrom = new Map<string, WindowStatus>();
  for (const w of loaded) byFrom.set(w.from, { from: w.from, to: w.to, status: 'loaded', rows: w.rows, loadedAt: w.loadedAt, runs: 0 });
  const oldestFirst = [...temporal.batchRuns].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  for (const run of oldestFirst) {
    if (run.windowFrom === undefined) continue;
    const entry = byFrom.get(run.windowFrom) ?? { from: run.windowFrom, status: run.status, runs: 0 };
    entry.runs += 1;
    entry.status = STATUS_OF_RUN[run.status] ?? run.status;
    entry.latestRun = { workflowId: run.workflowId, url: run.url, status: run.status };
    if (run.window) entry.to = run.window.to;
    entry.checks = run.checks && { passed: run.checks.filter((c) => c.passed).length, failed: run.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`) };
    entry.timings = run.timings;
    entry.totalMs = run.totalMs;
    entry.error = run.error;
    byFrom.set(run.windowFrom, entry);
  }
  return [...byFrom.values()].sort((a, b) => a.from.localeCompare(b.from));
}

/**
 * Gathers the report; `since` limits Temporal's runs to those started since then, `series` adds
 * the charts' data; `aws` how the aws target is read (tests).
 */
export async function gatherReport(config: Config, options: { since?: Date; series?: boolean; aws?: AwsReportOptions } = {}): Promise<PipelineReport> {
  const aws = config.target === 'aws';
  const stored = aws ? readAwsStoredState(config, options.aws) : readStoredState(config);
  const [storedState, temporal] = await Promise.all([stored, readTemporalState(config, { since: options.since })]);
  // The charts read the raw layer's Parquet with DuckDB, which reads local files only.
  const series = options.series && !aws ? await readSeries(config) : undefined;
  const notes = [...storedState.notes];
  if (options.series && aws) notes.push("the HTML page's map and charts are drawn from the local target's lake only; on aws it shows rows, windows and checks");
  if (!temporal.reachable) notes.push(`Temporal is not reachable, so runs, timings and quality checks are missing: ${temporal.error ?? 'unknown error'}`);
  return {
    generatedAt: new Date().toISOString(),
    target: config.target,
    dataDir: resolve(config.dataDir),
    sources: storedState.sources,
    loadedWindows: storedState.loadedWindows,
    windows: windowStatuses(storedState.loadedWindows, temporal),
    catalog: storedState.catalog,
    temporal,
    notes,
    ...(series && { series }),
  };
}
