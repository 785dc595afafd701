// batchRun: one window through the batch layers — crawl raw → count raw → curate (one Iceberg
// commit per curated table) → load the warehouse → check quality, the load and the checks reading
// the snapshots curate committed (runs recorded before the lake was Iceberg also crawl curated).
// Each stage is one activity; the workflow only sequences them, times them and turns a failed quality check into a non-retryable DataQualityError. A window of a
// backfillChunk arrives curated (the chunk ran the first four stages over all its windows at
// once): its run loads and checks only.
import { ApplicationFailure, defineQuery, patched, setHandler } from '@temporalio/workflow';
import { z } from 'zod';
import type { CurateResult, QualityCheck, QualityResult, Snapshots, SourceCounts, TimeWindow } from '../activities/types';
import { DATA_QUALITY_ERROR, ICEBERG_CURATED_PATCH, checkQuality, checkQualityLocal, countRawWindows, crawlLayer, curateWindow, loadWarehouse, loadWarehouseLocal, timedStages } from './batch-stages';
import { countsSchema, snapshotsSchema } from './counts';
import { iso, isoTime, parseInput } from './input';
import { DEFAULT_ALLOWED_LATENESS_SECONDS, DEFAULT_WINDOW_MINUTES, MINUTE_MS, windowAt, windowLabel } from './windows';

export { DATA_QUALITY_ERROR } from './batch-stages';

const windowSchema = z
  .object({ from: isoTime, to: isoTime })
  .strict()
  .refine((w) => w.from < w.to, { error: 'from must be before to' });

export const batchRunInputSchema = z
  .object({
    /** The window to run; omitted: the most recent closed window of `windowMinutes`. */
    window: windowSchema.optional(),
    windowMinutes: z.number().int().min(1).max(1440).default(DEFAULT_WINDOW_MINUTES),
    allowedLatenessSeconds: z.number().int().min(0).max(86_400).default(DEFAULT_ALLOWED_LATENESS_SECONDS),
    /**
     * Set by a backfillChunk that crawled raw, counted raw and curated this window with the rest of
     * its chunk, then crawled curated: this run only loads and checks. `rawRows` is the chunk's count.
     */
    curatedBy: z
      .object({
        workflowId: z.string().min(1),
        rawRows: countsSchema,
        /** The curated snapshots the chunk committed (absent from chunks recorded before the lake was Iceberg). */
        snapshots: snapshotsSchema.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((i) => i.curatedBy === undefined || i.window !== undefined, { error: 'a run curated by a chunk needs its window', path: ['window'] });
export type BatchRunInput = z.input<typeof batchRunInputSchema>;

export type BatchStage = 'crawlRaw' | 'countRaw' | 'curate' | 'crawlCurated' | 'load' | 'quality';

export interface BatchRunResult {
  window: TimeWindow;
  startedAt: string;
  /** Workflow time per stage this run ran, ms (a window curated by its chunk: load and quality only). */
  timings: Partial<Record<BatchStage, number>>;
  totalMs: number;
  /** Raw rows per source counted before curating: the baseline late-data detection compares with. */
  rawRows: SourceCounts;
  /** The curate job's summary; absent when the window's backfillChunk curated it (see curatedBy). */
  curated?: CurateResult;
  /** The backfillChunk that crawled, counted and curated the window. */
  curatedBy?: string;
  /** Rows the warehouse holds for the window after the load. */
  loaded: SourceCounts;
  counts: QualityResult['counts'];
  checks: QualityCheck[];
  schemaChanges: string[];
}

export interface BatchRunStatus {
  window: TimeWindow;
  stage: BatchStage | 'done';
  startedAt: string;
  timings: Partial<Record<BatchStage, number>>;
}

/** The details of a DataQualityError: what the controller records for the window. */
export interface DataQualityDetails {
  window: TimeWindow;
  failedChecks: QualityCheck[];
  counts: QualityResult['counts'];
}

export const batchRunStatusQuery = defineQuery<BatchRunStatus>('status');

export async function batchRun(rawInput?: BatchRunInput): Promise<BatchRunResult> {
  const input = parseInput('batchRun', batchRunInputSchema, rawInput);
  const startedAtMs = Date.now();
  const window = input.window
    ? { from: iso(input.window.from), to: iso(input.window.to) }
    : lastClosedWindow(startedAtMs, input.windowMinutes * MINUTE_MS, input.allowedLatenessSeconds * 1000);
  const status: BatchRunStatus = { window, stage: input.curatedBy ? 'load' : 'crawlRaw', startedAt: iso(startedAtMs), timings: {} };
  setHandler(batchRunStatusQuery, () => status);

  const stage = timedStages(status);

  let rawRows: SourceCounts;
  let curated: CurateResult | undefined;
  let snapshots: Snapshots | undefined;
  const schemaChanges: string[] = [];
  if (input.curatedBy) {
    rawRows = input.curatedBy.rawRows;
    snapshots = input.curatedBy.snapshots;
  } else {
    const rawCrawl = await stage('crawlRaw', () => crawlLayer({ layer: 'raw', window }));
    // Counted after the raw crawl (Athena sees only crawled partitions) and before curating: an event
    // landing later is then always seen as growth by the controller's late-data check, never missed.
    const [counted] = await stage('countRaw', () => countRawWindows({ windows: [window] }));
    if (!counted) throw ApplicationFailure.nonRetryable('countRawWindows returned no counts for the window', 'ActivityContractError');
    rawRows = counted;
    const curatedNow = await stage('curate', () => curateWindow({ window }));
    curated = curatedNow;
    snapshots = curatedNow.snapshots;
    schemaChanges.push(...rawCrawl.schemaChanges);
    // An Iceberg commit registers its table: nothing to crawl (runs recorded before did crawl).
    if (!patched(ICEBERG_CURATED_PATCH)) {
      const curatedCrawl = await stage('crawlCurated', () => crawlLayer({ layer: 'curated', window }));
      schemaChanges.push(...curatedCrawl.schemaChanges);
    }
  }
  // A window its chunk curated loads and checks through local activities (runs recorded before
  // the patch replay with activity tasks).
  const local = input.curatedBy !== undefined && patched('chunk-window-local-activities');
  // Both read the snapshots curate committed: a later commit (a re-run, another window) never
  // changes what this window's load and checks see.
  const read = { window, ...(snapshots && { snapshots }) };
  const load = await stage('load', () => (local ? loadWarehouseLocal : loadWarehouse)(read));
  const quality = await stage('quality', () => (local ? checkQualityLocal : checkQuality)(read));

  if (!quality.passed) {
    const failedChecks = quality.checks.filter((c) => !c.passed);
    const named = failedChecks.map((c) => `${c.name} (${c.detail})`).join('; ') || 'no failed check named';
    const details: DataQualityDetails = { window, failedChecks, counts: quality.counts };
    throw ApplicationFailure.nonRetryable(`quality checks failed for ${windowLabel(window)}: ${named}`, DATA_QUALITY_ERROR, details);
  }
  status.stage = 'done';
  return {
    window,
    startedAt: status.startedAt,
    timings: status.timings,
    totalMs: Date.now() - startedAtMs,
    rawRows,
    ...(curated && { curated }),
    ...(input.curatedBy && { curatedBy: input.curatedBy.workflowId }),
    loaded: load.rows,
    counts: quality.counts,
    checks: quality.checks,
    schemaChanges,
  };
}

/** The latest window whose end plus lateness has passed at `nowMs`. */
function lastClosedWindow(nowMs: number, sizeMs: number, latenessMs: number): TimeWindow {
  return windowAt(nowMs - latenessMs - sizeMs, sizeMs);
}
