// backfillChunk: consecutive windows through the batch layers with one Spark run, as Dagster's
// single-run backfill policy does: crawl raw → count raw (per window) → one curate over the whole
// range (one Iceberg commit per table), then one batchRun per window that only loads and checks it,
// reading the snapshot the chunk committed. (Chunks recorded before the lake was Iceberg crawled
// curated after the curate.) Every window
// keeps its own run (and Web UI entry), status and checks; the controller records each window's
// outcome from this workflow's result.
import { ParentClosePolicy, defineQuery, executeChild, isCancellation, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import type { CurateResult, SourceCounts, TimeWindow } from '../activities/types';
import { batchRun } from './batch-run';
import { ICEBERG_CURATED_PATCH, countRawWindows, crawlLayer, curateWindow, runError, timedStages, type RunError } from './batch-stages';
import { iso, isoTime, parseInput } from './input';

/** Most windows in one chunk: its history holds a child run per window (~7 events each). */
export const MAX_CHUNK_WINDOWS = 300;
/** Windows per countRawWindows call: the aws target counts them in one Athena query. */
const COUNT_BATCH = 100;

const chunkWindowSchema = z
  .object({
    window: z.object({ from: isoTime, to: isoTime }).strict(),
    /** The batchRun that loads and checks the window (the controller names it). */
    workflowId: z.string().min(1),
  })
  .strict();

export const backfillChunkInputSchema = z
  .object({
    /** Consecutive windows, in order: each starts where the one before ends. */
    windows: z.array(chunkWindowSchema).min(1).max(MAX_CHUNK_WINDOWS),
    /** Batch runs loading and checking a window at the same time. */
    loadConcurrency: z.number().int().min(1).max(20).default(4),
  })
  .strict()
  .superRefine(({ windows }, ctx) => {
    windows.forEach(({ window }, i) => {
      if (window.from >= window.to) ctx.addIssue({ code: 'custom', message: 'from must be before to', path: ['windows', i, 'window'] });
      const previous = windows[i - 1];
      if (previous && previous.window.to !== window.from) {
        ctx.addIssue({ code: 'custom', message: `must start where window ${i - 1} ends (${iso(previous.window.to)})`, path: ['windows', i, 'window', 'from'] });
      }
    });
  });
export type BackfillChunkInput = z.input<typeof backfillChunkInputSchema>;

export type ChunkStage = 'crawlRaw' | 'countRaw' | 'curate' | 'crawlCurated' | 'windows';

/** One window's outcome, in the order of the input's windows. */
export type ChunkWindowOutcome =
  | { workflowId: string; status: 'loaded'; loaded: SourceCounts; rawRows: SourceCounts }
  | { workflowId: string; status: 'failed'; error: RunError };

export interface BackfillChunkResult {
  range: TimeWindow;
  /** Workflow time per stage, ms; `windows` is the load and checks of every window. */
  timings: Partial<Record<ChunkStage, number>>;
  curated: CurateResult;
  schemaChanges: string[];
  windows: ChunkWindowOutcome[];
}

export interface BackfillChunkStatus {
  range: TimeWindow;
  stage: ChunkStage | 'done';
  windows: number;
  loaded: number;
  failed: number;
  timings: Partial<Record<ChunkStage, number>>;
}

export const backfillChunkStatusQuery = defineQuery<BackfillChunkStatus>('status');

export async function backfillChunk(rawInput?: BackfillChunkInput): Promise<BackfillChunkResult> {
  const input = parseInput('backfillChunk', backfillChunkInputSchema, rawInput);
  const windows = input.windows.map(({ window, workflowId }) => ({ window: { from: iso(window.from), to: iso(window.to) }, workflowId }));
  const range: TimeWindow = { from: windows[0]!.window.from, to: windows[windows.length - 1]!.window.to };
  const status: BackfillChunkStatus = { range, stage: 'crawlRaw', windows: windows.length, loaded: 0, failed: 0, timings: {} };
  setHandler(backfillChunkStatusQuery, () => status);

  const stage = timedStages(status);

  const rawCrawl = await stage('crawlRaw', () => crawlLayer({ layer: 'raw', window: range }));
  // As in batchRun: counted after the raw crawl and before curating, the late-data baseline.
  const rawRows = await stage('countRaw', async () => {
    const counted: SourceCounts[] = [];
    for (let i = 0; i < windows.length; i += COUNT_BATCH) {
      counted.push(...(await countRawWindows({ windows: windows.slice(i, i + COUNT_BATCH).map((w) => w.window) })));
    }
    return counted;
  });
  const curated = await stage('curate', () => curateWindow({ window: range }));
  // An Iceberg commit registers its table: nothing to crawl (runs recorded before did crawl).
  const curatedCrawl = patched(ICEBERG_CURATED_PATCH) ? undefined : await stage('crawlCurated', () => crawlLayer({ layer: 'curated', window: range }));

  const curatedBy = workflowInfo().workflowId;
  const outcomes: ChunkWindowOutcome[] = [];
  async function loadAndCheck(i: number): Promise<ChunkWindowOutcome> {
    const { window, workflowId } = windows[i]!;
    const counted = rawRows[i];
    if (!counted) return { workflowId, status: 'failed', error: { type: 'BatchRunError', message: 'countRawWindows returned no counts for the window' } };
    try {
      const result = await executeChild(batchRun, {
        workflowId,
        args: [{ window, curatedBy: { workflowId: curatedBy, rawRows: counted, ...(curated.snapshots && { snapshots: curated.snapshots }) } }],
        // Cancelling or terminating the chunk cancels its runs, so their activities stop too.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      status.loaded += 1;
      return { workflowId, status: 'loaded', loaded: result.loaded, rawRows: result.rawRows };
    } catch (err) {
      if (isCancellation(err)) throw err;
      status.failed += 1;
      return { workflowId, status: 'failed', error: runError(err, workflowId) };
    }
  }
  let next = 0;
  async function lane(): Promise<void> {
    while (next < windows.length) {
      const i = next++;
      outcomes[i] = await loadAndCheck(i);
    }
  }
  await stage('windows', () => Promise.all(Array.from({ length: Math.min(input.loadConcurrency, windows.length) }, lane)));
  status.stage = 'done';
  return { range, timings: status.timings, curated, schemaChanges: [...rawCrawl.schemaChanges, ...(curatedCrawl?.schemaChanges ?? [])], windows: outcomes };
}
