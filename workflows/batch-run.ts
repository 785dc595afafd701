// batchRun: one window through the batch layers — crawl raw → count raw → curate → crawl curated →
// load the warehouse → check quality. Each stage is one activity; the workflow only sequences them,
// times them and turns a failed quality check into a non-retryable DataQualityError.
import { ActivityCancellationType, ApplicationFailure, defineQuery, proxyActivities, setHandler } from '@temporalio/workflow';
import { z } from 'zod';
import type { CurateResult, PipelineActivities, QualityCheck, QualityResult, SourceCounts, TimeWindow } from '../activities/types';
import { iso, isoTime, parseInput } from './input';
import { DEFAULT_ALLOWED_LATENESS_SECONDS, DEFAULT_WINDOW_MINUTES, MINUTE_MS, windowAt, windowLabel } from './windows';

/** Failure type of a batch run whose data failed its quality checks; retrying the run as is won't help. */
export const DATA_QUALITY_ERROR = 'DataQualityError';

// A cancelled batch run closes only once the activity has stopped its remote work (Glue run,
// Redshift statement, spark-submit): WAIT_CANCELLATION_COMPLETED. Loads replace their window in one
// transaction, so every stage is safe to retry.
const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;
const { crawlLayer } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
  cancellationType,
});
const { countRawWindows } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  cancellationType,
});
const { curateWindow } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '30s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3 },
  cancellationType,
});
const { loadWarehouse } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
  cancellationType,
});
const { checkQuality } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '15 minutes',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
  cancellationType,
});

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
  })
  .strict();
export type BatchRunInput = z.input<typeof batchRunInputSchema>;

export type BatchStage = 'crawlRaw' | 'countRaw' | 'curate' | 'crawlCurated' | 'load' | 'quality';

export interface BatchRunResult {
  window: TimeWindow;
  startedAt: string;
  /** Workflow time per stage, ms. */
  timings: Record<BatchStage, number>;
  totalMs: number;
  /** Raw rows per source counted before curating: the baseline late-data detection compares with. */
  rawRows: SourceCounts;
  curated: CurateResult;
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
  const status: BatchRunStatus = { window, stage: 'crawlRaw', startedAt: iso(startedAtMs), timings: {} };
  setHandler(batchRunStatusQuery, () => status);

  async function stage<T>(name: BatchStage, run: () => Promise<T>): Promise<T> {
    status.stage = name;
    const started = Date.now();
    try {
      return await run();
    } finally {
      status.timings[name] = Date.now() - started;
    }
  }

  const rawCrawl = await stage('crawlRaw', () => crawlLayer({ layer: 'raw', window }));
  // Counted after the raw crawl (Athena sees only crawled partitions) and before curating: an event
  // landing later is then always seen as growth by the controller's late-data check, never missed.
  const [rawRows] = await stage('countRaw', () => countRawWindows({ windows: [window] }));
  if (!rawRows) throw ApplicationFailure.nonRetryable('countRawWindows returned no counts for the window', 'ActivityContractError');
  const curated = await stage('curate', () => curateWindow({ window }));
  const curatedCrawl = await stage('crawlCurated', () => crawlLayer({ layer: 'curated', window }));
  const load = await stage('load', () => loadWarehouse({ window }));
  const quality = await stage('quality', () => checkQuality({ window }));

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
    timings: status.timings as Record<BatchStage, number>,
    totalMs: Date.now() - startedAtMs,
    rawRows,
    curated,
    loaded: load.rows,
    counts: quality.counts,
    checks: quality.checks,
    schemaChanges: [...rawCrawl.schemaChanges, ...curatedCrawl.schemaChanges],
  };
}

/** The latest window whose end plus lateness has passed at `nowMs`. */
function lastClosedWindow(nowMs: number, sizeMs: number, latenessMs: number): TimeWindow {
  return windowAt(nowMs - latenessMs - sizeMs, sizeMs);
}
