// smartCityPipeline: the long-running controller (id smartcity-pipeline). It supervises streaming
// through the streamingSupervisor child, runs a batchRun child for every window once it has closed,
// keeps a backfill queue, re-runs windows that received late data, retries failed windows a few
// times, and continues-as-new — after its running children finished — carrying its state.
//
// Two lanes: live windows run one at a time in window order; backfills, late-data re-runs and
// retries run beside them, at most backfillConcurrency at a time. A big backfill never delays the
// live schedule, and the live schedule never exceeds one run. Consecutive queued windows of a lane
// (a backfill's range, the catch-up after resume, a controller that fell behind) run as one
// backfillChunk of at most chunkMinutes: one curate job for all of them, then a batchRun per window
// that loads and checks it.
import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  rootCause,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { z } from 'zod';
import type { PipelineActivities, SourceCounts, TimeWindow } from '../activities/types';
import { MAX_CHUNK_WINDOWS, backfillChunk } from './backfill-chunk';
import { batchRun } from './batch-run';
import { BATCH_HEARTBEAT_TIMEOUT, DATA_QUALITY_ERROR, runError, type RunError } from './batch-stages';
import { countsSchema, grownSources } from './counts';
import { STREAMING_WORKFLOW_ID, backfillChunkWorkflowId, batchRunWorkflowId } from './ids';
import { INVALID_INPUT, describeIssues, iso, isoTime, parseInput } from './input';
import { addRange, covers, removeRange } from './ranges';
import { streamingPauseSignal, streamingResumeSignal, streamingSupervisor } from './streaming-supervisor';
import { DEFAULT_ALLOWED_LATENESS_SECONDS, DEFAULT_WINDOW_MINUTES, MINUTE_MS, countWindows, windowAt, windowLabel } from './windows';

/** Most windows one backfill request may cover; a larger range is split by the caller. */
export const MAX_BACKFILL_WINDOWS = 2000;
/** Most windows the queue holds: it travels through continue-as-new, whose input has a size limit. */
const MAX_QUEUED_WINDOWS = 5000;
const KEPT_REJECTED_SIGNALS = 20;
/** Window records shown in status and kept across continue-as-new (the late-data horizon may ask for more). */
const KEPT_WINDOW_RECORDS = 50;
const SHOWN_QUEUE_ENTRIES = 100;
/** A rejected payload is kept whole up to this many characters of JSON, else as a truncated string. */
const KEPT_PAYLOAD_CHARS = 500;
/**
 * While the controller drains for continue-as-new, live windows still start until the history
 * holds this many events past the threshold (a live run adds about ten): one slow backfill does
 * not hold the live schedule up, and the history stays bounded.
 */
const DRAIN_HEADROOM_EVENTS = 1000;
/** Backoff of retries to start or signal the streaming supervisor. */
const STREAMING_RETRY_FIRST_MS = 5_000;
const STREAMING_RETRY_MAX_MS = 5 * 60_000;

/**
 * Chunks, retries of the streaming supervisor's start and signals, and live runs while draining
 * came with this patch: histories of runs from before it replay as they were.
 */
export const CHUNKS_AND_RETRIES_PATCH = 'chunks-and-streaming-retries';

const { countRawWindows } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: BATCH_HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
});

// ---- payloads ------------------------------------------------------------------------------

const pauseRequestSchema = z.object({ scope: z.enum(['batches', 'all']).default('batches') }).strict();
export type PauseRequest = z.input<typeof pauseRequestSchema>;
export type PauseScope = z.output<typeof pauseRequestSchema>['scope'];

const backfillRequestSchema = z.object({ from: isoTime, to: isoTime, force: z.boolean().default(false) }).strict();
export type BackfillRequest = z.input<typeof backfillRequestSchema>;

const noPayloadSchema = z.object({}).strict();

export interface SkippedWindow extends TimeWindow {
  reason: string;
}

export interface BackfillOutcome {
  accepted: TimeWindow[];
  skipped: SkippedWindow[];
}

// ---- carried state ---------------------------------------------------------------------------

const windowSchema = z.object({ from: z.iso.datetime(), to: z.iso.datetime() }).strict();

const queueReasonSchema = z.enum(['live', 'backfill', 'late-data', 'retry']);
type QueueReason = z.output<typeof queueReasonSchema>;

const queueEntrySchema = z
  .object({
    /** Window start, epoch ms; its end follows from windowMinutes. */
    fromMs: z.number(),
    reason: queueReasonSchema,
    force: z.boolean(),
    detail: z.string().optional(),
  })
  .strict();
type QueueEntry = z.output<typeof queueEntrySchema>;

const windowRecordSchema = z
  .object({
    window: windowSchema,
    status: z.enum(['running', 'loaded', 'failed']),
    /** Batch runs started for the window; the next run's id ends in attempts + 1. */
    attempts: z.number().int().nonnegative(),
    /** Failed runs since the last success: retries stop at maxBatchAttempts. */
    failures: z.number().int().nonnegative(),
    /** Why it last ran: live, backfill, retry, or the late data that was found. */
    lastReason: z.string(),
    workflowId: z.string(),
    /** The backfillChunk that curated the window with its neighbours, when its last run was part of one. */
    chunk: z.string().optional(),
    /** Warehouse rows after the last successful load. */
    rows: countsSchema.optional(),
    /** Raw rows counted by the last successful run: what late-data detection compares with. */
    rawRows: countsSchema.optional(),
    loadedAt: z.string().optional(),
    lastError: z
      .object({
        type: z.enum([DATA_QUALITY_ERROR, 'BatchRunError']),
        message: z.string(),
        at: z.string(),
        failedChecks: z.array(z.string()).optional(),
      })
      .strict()
      .optional(),
    nextRetryAt: z.string().optional(),
  })
  .strict();
export type WindowRecord = z.output<typeof windowRecordSchema>;

const rejectedSignalSchema = z.object({ name: z.string(), payload: z.unknown(), reason: z.string(), at: z.string() }).strict();
export type RejectedSignal = z.output<typeof rejectedSignalSchema>;

const pipelineStateSchema = z
  .object({
    /** Start of the next live window, epoch ms. */
    cursorMs: z.number(),
    paused: z.boolean(),
    pauseScope: z.enum(['batches', 'all']),
    queue: z.array(queueEntrySchema),
    /** Window records by window start (ISO). */
    windows: z.record(z.string(), windowRecordSchema),
    /** Every window whose latest run succeeded, as merged ranges: the backfill dedupe. */
    loadedRanges: z.array(z.tuple([z.number(), z.number()])),
    rejectedSignals: z.array(rejectedSignalSchema),
    /** What the streaming supervisor was last told. */
    streamingPaused: z.boolean(),
    continuedAsNewCount: z.number().int().nonnegative(),
  })
  .strict();
type PipelineState = z.output<typeof pipelineStateSchema>;

export const smartCityPipelineInputSchema = z
  .object({
    windowMinutes: z.number().int().min(1).max(1440).default(DEFAULT_WINDOW_MINUTES),
    allowedLatenessSeconds: z.number().int().min(0).max(86_400).default(DEFAULT_ALLOWED_LATENESS_SECONDS),
    /** How often the controller looks for closed windows, late data and due retries. */
    tickSeconds: z.number().int().min(1).max(3600).default(30),
    backfillConcurrency: z.number().int().min(1).max(20).default(2),
    /** Most event time one curate job covers when consecutive queued windows run as a chunk (a day). */
    chunkMinutes: z.number().int().min(1).max(7 * 1440).default(1440),
    /**
     * Batch runs loading and checking a chunk's windows at the same time. Each is short and mostly
     * waits on Temporal round trips, so several overlap well (measured by `npm run bench -- backfill`).
     */
    chunkLoadConcurrency: z.number().int().min(1).max(20).default(8),
    /** Run the streaming supervisor as child smartcity-streaming. */
    streaming: z.boolean().default(true),
    /** Start of the first live window (rounded down to a window boundary); default: the current window. */
    startAt: isoTime.optional(),
    /** How many of the most recent loaded windows each tick re-counts for late data. */
    lateDataHorizonWindows: z.number().int().min(0).max(100).default(6),
    /** Runs of a window before a failing one is left alone (a backfill can still ask again). */
    maxBatchAttempts: z.number().int().min(1).max(20).default(3),
    /** Continue-as-new once the history holds this many events. */
    historyThreshold: z.number().int().min(50).max(40_000).default(2000),
    /** Carried across continue-as-new; not for people. */
    state: pipelineStateSchema.optional(),
  })
  .strict();
export type SmartCityPipelineInput = z.input<typeof smartCityPipelineInputSchema>;

// ---- status ----------------------------------------------------------------------------------

export interface QueuedWindow {
  window: TimeWindow;
  reason: QueueReason;
  force: boolean;
  detail?: string;
}

export interface RunningWindow {
  window: TimeWindow;
  workflowId: string;
  reason: QueueReason;
  startedAt: string;
  /** The backfillChunk that curates the window with its neighbours before its run loads it. */
  chunk?: string;
}

export interface PipelineStatus {
  paused: boolean;
  pauseScope: PauseScope;
  windowMinutes: number;
  allowedLatenessSeconds: number;
  /** The next live window and when it closes (its end plus the allowed lateness). */
  cursor: TimeWindow & { closesAt: string };
  /** The first queued windows, in the order they will run; `queued` counts them all. */
  queue: QueuedWindow[];
  queued: number;
  running: RunningWindow[];
  /** The most recent windows that ran, newest first. */
  windows: WindowRecord[];
  /** Every window whose latest run succeeded, merged into ranges. */
  loaded: TimeWindow[];
  rejectedSignals: RejectedSignal[];
  streaming: { workflowId: string; attached: boolean; error?: string } | null;
  continuedAsNewCount: number;
  historyLength: number;
}

// ---- definitions ---------------------------------------------------------------------------

export const pipelinePauseSignal = defineSignal<[PauseRequest?]>('pause');
export const pipelineResumeSignal = defineSignal('resume');
export const pipelineBackfillSignal = defineSignal<[BackfillRequest]>('backfill');
export const pipelineRunNowSignal = defineSignal('runNow');
export const requestBackfillUpdate = defineUpdate<BackfillOutcome, [BackfillRequest]>('requestBackfill');
export const pipelineStatusQuery = defineQuery<PipelineStatus>('status');

type Lane = 'live' | 'other';
const laneOf = (entry: QueueEntry): Lane => (entry.reason === 'live' ? 'live' : 'other');

/** One child run: a batchRun, or a backfillChunk covering several windows. */
interface Run {
  lane: Lane;
  done: Promise<void>;
}

interface Running extends RunningWindow {
  run: Run;
}

export async function smartCityPipeline(rawInput?: SmartCityPipelineInput): Promise<void> {
  const input = parseInput('smartCityPipeline', smartCityPipelineInputSchema, rawInput);
  const v2 = patched(CHUNKS_AND_RETRIES_PATCH);
  const sizeMs = input.windowMinutes * MINUTE_MS;
  const latenessMs = input.allowedLatenessSeconds * 1000;
  const tickMs = input.tickSeconds * 1000;
  const startMs = Date.now();
  if (input.startAt !== undefined && countWindows(input.startAt, startMs, sizeMs) > MAX_BACKFILL_WINDOWS) {
    throw ApplicationFailure.nonRetryable(
      `invalid smartCityPipeline input: startAt: more than ${MAX_BACKFILL_WINDOWS} windows before now; start later and backfill the older windows`,
      INVALID_INPUT,
    );
  }
  const state: PipelineState = input.state ?? {
    cursorMs: Math.floor((input.startAt ?? startMs) / sizeMs) * sizeMs,
    paused: false,
    pauseScope: 'batches',
    queue: [],
    windows: {},
    loadedRanges: [],
    rejectedSignals: [],
    streamingPaused: false,
    continuedAsNewCount: 0,
  };
  const running = new Map<number, Running>();
  const streaming: PipelineStatus['streaming'] = input.streaming ? { workflowId: STREAMING_WORKFLOW_ID, attached: false } : null;
  /** The tick timer fired: look for closed windows, late data and retries, then arm the next one. */
  let tickDue = true;
  /** Look now without arming a timer (after resume). */
  let lookNow = false;
  let runNowRequested = false;
  /** Something a loop pass may act on happened: a signal, a queued window, a finished run. */
  let changed = false;
  let draining = false;
  /** A start of, or a signal to, the streaming supervisor failed: the next try waits for a backoff timer. */
  let streamingBackoff = false;
  let streamingFailures = 0;

  const windowOf = (fromMs: number): TimeWindow => windowAt(fromMs, sizeMs);

  // ---- signals, update, query ----

  function reject(name: string, payload: unknown, reason: string): void {
    const json = JSON.stringify(payload) as string | undefined;
    const kept = json === undefined || json.length <= KEPT_PAYLOAD_CHARS ? payload : `${json.slice(0, KEPT_PAYLOAD_CHARS)}…`;
    state.rejectedSignals.push({ name, payload: kept, reason, at: iso(Date.now()) });
    state.rejectedSignals.splice(0, state.rejectedSignals.length - KEPT_REJECTED_SIGNALS);
    log.warn('signal rejected', { name, reason });
  }

  /** The signal's one optional argument, parsed; undefined (and recorded) when it does not fit. */
  function payloadOf<S extends z.ZodType>(name: string, schema: S, args: unknown[]): z.output<S> | undefined {
    if (args.length > 1) return void reject(name, args, `expected at most one argument, got ${args.length}`);
    const result = schema.safeParse(args[0] ?? {});
    if (result.success) return result.data;
    reject(name, args[0], describeIssues(result.error));
  }

  setHandler(pipelinePauseSignal, (...args: unknown[]) => {
    const request = payloadOf('pause', pauseRequestSchema, args);
    if (!request) return;
    state.paused = true;
    state.pauseScope = request.scope;
    changed = true;
  });
  setHandler(pipelineResumeSignal, (...args: unknown[]) => {
    if (!payloadOf('resume', noPayloadSchema, args) || !state.paused) return;
    state.paused = false;
    lookNow = true;
  });
  setHandler(pipelineRunNowSignal, (...args: unknown[]) => {
    if (!payloadOf('runNow', noPayloadSchema, args)) return;
    if (state.paused) return reject('runNow', args[0], 'the pipeline is paused; send resume first');
    runNowRequested = true;
  });
  setHandler(pipelineBackfillSignal, (...args: unknown[]) => {
    const request = payloadOf('backfill', backfillRequestSchema, args);
    if (!request) return;
    const plan = planBackfill(request);
    if (typeof plan === 'string') return reject('backfill', args[0], plan);
    applyBackfill(plan, request.force);
  });
  setHandler(
    requestBackfillUpdate,
    (request) => {
      // The validator accepted this request in this same activation, against this same state.
      const parsed = backfillRequestSchema.parse(request);
      const plan = planBackfill(parsed);
      if (typeof plan === 'string') throw ApplicationFailure.nonRetryable(plan, INVALID_INPUT);
      applyBackfill(plan, parsed.force);
      return plan;
    },
    {
      validator: (request) => {
        const parsed = backfillRequestSchema.safeParse(request);
        if (!parsed.success) throw ApplicationFailure.nonRetryable(`invalid backfill request: ${describeIssues(parsed.error)}`, INVALID_INPUT);
        const plan = planBackfill(parsed.data);
        if (typeof plan === 'string') throw ApplicationFailure.nonRetryable(plan, INVALID_INPUT);
      },
    },
  );
  setHandler(pipelineStatusQuery, (): PipelineStatus => {
    const cursor = windowOf(state.cursorMs);
    return {
      paused: state.paused,
      pauseScope: state.pauseScope,
      windowMinutes: input.windowMinutes,
      allowedLatenessSeconds: input.allowedLatenessSeconds,
      cursor: { ...cursor, closesAt: iso(state.cursorMs + sizeMs + latenessMs) },
      queue: state.queue.slice(0, SHOWN_QUEUE_ENTRIES).map(({ fromMs, reason, force, detail }) => ({ window: windowOf(fromMs), reason, force, detail })),
      queued: state.queue.length,
      running: [...running.values()].map(({ run: _run, ...window }) => window),
      windows: recentRecords(KEPT_WINDOW_RECORDS),
      loaded: state.loadedRanges.map(([from, to]) => ({ from: iso(from), to: iso(to) })),
      rejectedSignals: state.rejectedSignals,
      streaming,
      continuedAsNewCount: state.continuedAsNewCount,
      historyLength: workflowInfo().historyLength,
    };
  });

  // ---- the queue ----

  // A function declaration, hoisted: a signal or update buffered at start runs its handler inside
  // setHandler above, before this line is reached.
  function queuedWindows(): Set<number> {
    return new Set(state.queue.map((e) => e.fromMs));
  }

  /** Why a window is not queued again: queued, running, or (without force) loaded already. */
  function skipReason(fromMs: number, force: boolean, queued: ReadonlySet<number>): string | undefined {
    if (queued.has(fromMs)) return 'already queued';
    if (running.has(fromMs)) return 'running now';
    if (!force && covers(state.loadedRanges, fromMs, fromMs + sizeMs)) return 'already loaded';
  }

  function enqueue(entry: QueueEntry): void {
    if (skipReason(entry.fromMs, entry.force, queuedWindows()) !== undefined) return;
    state.queue.push(entry);
    changed = true;
  }

  /** A backfill's windows sorted into accepted and skipped, or why the request is refused. */
  function planBackfill(request: z.output<typeof backfillRequestSchema>): BackfillOutcome | string {
    const now = Date.now();
    const { from, to } = request;
    if (from >= to) return `from (${iso(from)}) must be before to (${iso(to)})`;
    if (to > now) return `to (${iso(to)}) is in the future (now ${iso(now)}); only windows that have ended can be backfilled`;
    const count = countWindows(from, to, sizeMs);
    if (count > MAX_BACKFILL_WINDOWS) {
      return `${iso(from)}/${iso(to)} covers ${count} windows of ${input.windowMinutes} min; at most ${MAX_BACKFILL_WINDOWS} per request, split the range`;
    }
    if (state.queue.length + count > MAX_QUEUED_WINDOWS) {
      return `the queue holds ${state.queue.length} windows; adding ${count} would pass ${MAX_QUEUED_WINDOWS}; wait for it to drain`;
    }
    const queued = queuedWindows();
    const outcome: BackfillOutcome = { accepted: [], skipped: [] };
    for (let fromMs = Math.floor(from / sizeMs) * sizeMs; fromMs < to; fromMs += sizeMs) {
      const window = windowOf(fromMs);
      const reason =
        fromMs >= state.cursorMs && fromMs + sizeMs + latenessMs > now
          ? 'not closed yet: the live schedule runs it when it closes'
          : skipReason(fromMs, request.force, queued);
      if (reason) outcome.skipped.push({ ...window, reason });
      else outcome.accepted.push(window);
    }
    return outcome;
  }

  function applyBackfill(plan: BackfillOutcome, force: boolean): void {
    for (const window of plan.accepted) state.queue.push({ fromMs: Date.parse(window.from), reason: 'backfill', force });
    changed = true;
    log.info('backfill queued', { accepted: plan.accepted.length, skipped: plan.skipped.length });
  }

  /** Queues, in order, every live window that has closed (with runNow: that has ended). */
  function enqueueClosedWindows(ignoreLateness: boolean): void {
    const now = Date.now();
    while (state.cursorMs + sizeMs + (ignoreLateness ? 0 : latenessMs) <= now) {
      enqueue({ fromMs: state.cursorMs, reason: 'live', force: false });
      state.cursorMs += sizeMs;
    }
  }

  function enqueueDueRetries(): void {
    const now = Date.now();
    for (const record of Object.values(state.windows)) {
      if (record.status !== 'failed' || record.nextRetryAt === undefined || Date.parse(record.nextRetryAt) > now) continue;
      record.nextRetryAt = undefined;
      const detail = `retry ${record.failures + 1}/${input.maxBatchAttempts} after ${record.lastError?.type ?? 'a failure'}`;
      enqueue({ fromMs: Date.parse(record.window.from), reason: 'retry', force: true, detail });
    }
  }

  function recentRecords(n: number, loadedOnly = false): WindowRecord[] {
    return Object.values(state.windows)
      .filter((r) => !loadedOnly || (r.status === 'loaded' && r.rawRows !== undefined))
      .sort((a, b) => Date.parse(b.window.from) - Date.parse(a.window.from))
      .slice(0, n);
  }

  /** Re-counts raw rows of the recent loaded windows and queues the ones that received late data. */
  async function checkLateData(): Promise<void> {
    const recent = recentRecords(input.lateDataHorizonWindows, true);
    if (recent.length === 0) return;
    let counts;
    try {
      counts = await countRawWindows({ windows: recent.map((r) => r.window) });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('late-data check failed; trying again next tick', { error: rootCause(err) });
      return;
    }
    recent.forEach((record, i) => {
      const now = counts[i];
      // The window may have been re-queued or re-run while the count ran.
      if (!now || !record.rawRows || record.status !== 'loaded') return;
      const grown = grownSources(record.rawRows, now);
      if (grown.length > 0) enqueue({ fromMs: Date.parse(record.window.from), reason: 'late-data', force: true, detail: `late data: raw ${grown.join(', ')}` });
    });
  }

  // ---- batch runs ----

  /** Live runs may still start while draining, up to the headroom; other runs wait for the next run of the controller. */
  function liveWhileDraining(): boolean {
    return v2 && workflowInfo().historyLength < input.historyThreshold + DRAIN_HEADROOM_EVENTS;
  }

  function startRuns(): void {
    if (state.paused || (draining && !liveWhileDraining())) return;
    const busy = (lane: Lane) => new Set([...running.values()].filter((r) => r.run.lane === lane).map((r) => r.run)).size;
    if (busy('live') === 0) {
      const next = state.queue.findIndex((e) => e.reason === 'live');
      if (next >= 0) launch(next);
    }
    if (draining) return;
    for (let free = input.backfillConcurrency - busy('other'); free > 0; free--) {
      const next = state.queue.findIndex((e) => e.reason !== 'live');
      if (next < 0) break;
      launch(next);
    }
  }

  /**
   * Takes the queued entry at `index` off the queue and with it (patched runs) the queued entries
   * of its lane for the windows right after it, up to a chunk's span.
   */
  function takeRun(index: number): QueueEntry[] {
    const first = state.queue[index];
    if (!first) return [];
    const maxWindows = v2 ? Math.min(MAX_CHUNK_WINDOWS, Math.max(1, Math.floor(input.chunkMinutes / input.windowMinutes))) : 1;
    const lane = laneOf(first);
    const byStart = new Map(state.queue.filter((e) => laneOf(e) === lane).map((e) => [e.fromMs, e]));
    const group = [first];
    for (let next = byStart.get(first.fromMs + sizeMs); next && group.length < maxWindows; next = byStart.get(next.fromMs + sizeMs)) group.push(next);
    const taken = new Set(group);
    state.queue = state.queue.filter((e) => !taken.has(e));
    return group;
  }

  /** Marks the entry's window running in a new attempt and returns its record. */
  function startRecord(entry: QueueEntry): WindowRecord {
    const window = windowOf(entry.fromMs);
    const previous = state.windows[window.from];
    const attempts = (previous?.attempts ?? 0) + 1;
    const record: WindowRecord = {
      failures: 0,
      ...previous,
      window,
      status: 'running',
      attempts,
      lastReason: entry.detail ?? entry.reason,
      workflowId: batchRunWorkflowId(window, attempts),
      chunk: undefined,
      nextRetryAt: undefined,
    };
    state.windows[window.from] = record;
    return record;
  }

  function launch(index: number): void {
    const group = takeRun(index);
    if (group.length === 0) return;
    const records = group.map(startRecord);
    // Terminating the controller still cancels its runs, so their activities stop remote work.
    const parentClosePolicy = ParentClosePolicy.REQUEST_CANCEL;
    let done: Promise<void>;
    if (records.length === 1) {
      const record = records[0]!;
      done = executeChild(batchRun, { workflowId: record.workflowId, args: [{ window: record.window }], parentClosePolicy }).then(
        (result) => succeeded(record, result),
        (err: unknown) => failed(record, runError(err, record.workflowId)),
      );
    } else {
      const chunk = backfillChunkWorkflowId({ from: records[0]!.window.from, to: records[records.length - 1]!.window.to }, records[0]!.attempts);
      for (const record of records) record.chunk = chunk;
      const windows = records.map((r) => ({ window: r.window, workflowId: r.workflowId }));
      done = executeChild(backfillChunk, { workflowId: chunk, args: [{ windows, loadConcurrency: input.chunkLoadConcurrency }], parentClosePolicy }).then(
        (result) =>
          records.forEach((record, i) => {
            const outcome = result.windows[i];
            if (outcome?.status === 'loaded') succeeded(record, outcome);
            else failed(record, outcome?.error ?? { type: 'BatchRunError', message: `${chunk} returned no outcome for the window` });
          }),
        (err: unknown) => {
          const error = runError(err, chunk);
          for (const record of records) failed(record, error);
        },
      );
    }
    const run: Run = {
      lane: laneOf(group[0]!),
      done: done.finally(() => {
        for (const entry of group) running.delete(entry.fromMs);
        changed = true;
      }),
    };
    const startedAt = iso(Date.now());
    group.forEach((entry, i) => {
      const { window, workflowId, chunk } = records[i]!;
      running.set(entry.fromMs, { run, window, workflowId, reason: entry.reason, startedAt, ...(chunk !== undefined && { chunk }) });
    });
  }

  function succeeded(record: WindowRecord, result: { loaded: SourceCounts; rawRows: SourceCounts }): void {
    record.status = 'loaded';
    record.failures = 0;
    record.rows = result.loaded;
    record.rawRows = result.rawRows;
    record.loadedAt = iso(Date.now());
    record.lastError = undefined;
    state.loadedRanges = addRange(state.loadedRanges, Date.parse(record.window.from), Date.parse(record.window.to));
  }

  function failed(record: WindowRecord, error: RunError): void {
    record.status = 'failed';
    record.failures += 1;
    record.lastError = { type: error.type, message: error.message, at: iso(Date.now()), failedChecks: error.failedChecks };
    record.nextRetryAt = record.failures < input.maxBatchAttempts ? iso(Date.now() + tickMs * 2 ** (record.failures - 1)) : undefined;
    state.loadedRanges = removeRange(state.loadedRanges, Date.parse(record.window.from), Date.parse(record.window.to));
    log.warn('batch run failed', { window: windowLabel(record.window), type: record.lastError.type, message: record.lastError.message });
  }

  // ---- streaming ----

  async function attachStreaming(link: NonNullable<PipelineStatus['streaming']>): Promise<void> {
    try {
      // Abandoned on close so continue-as-new leaves it running; started outside the root scope so
      // that cancelling the controller stops it only through the explicit cancel below, in every run.
      await CancellationScope.nonCancellable(() =>
        startChild(streamingSupervisor, { workflowId: link.workflowId, args: [{}], parentClosePolicy: ParentClosePolicy.ABANDON }),
      );
      link.attached = true;
      link.error = undefined;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        link.attached = true;
        link.error = undefined;
      } else link.error = `starting ${link.workflowId} failed: ${rootCause(err) ?? String(err)}`;
    }
  }

  /** Tells the supervisor to pause or resume when the pause scope says so. */
  async function syncStreaming(link: NonNullable<PipelineStatus['streaming']>): Promise<void> {
    const pause = state.paused && state.pauseScope === 'all';
    if (pause === state.streamingPaused) return;
    // Before the patch the state changed before the signal, so a signal that failed was never sent again.
    if (!v2) state.streamingPaused = pause;
    try {
      await getExternalWorkflowHandle(link.workflowId).signal(pause ? streamingPauseSignal : streamingResumeSignal);
      state.streamingPaused = pause;
      link.error = undefined;
    } catch (err) {
      if (isCancellation(err)) throw err;
      link.error = `signalling ${pause ? 'pause' : 'resume'} to ${link.workflowId} failed: ${rootCause(err) ?? String(err)}`;
      // The supervisor is gone (a signal fails for nothing else): start it again on the next try.
      if (v2) link.attached = false;
    }
  }

  /**
   * Attaches to the supervisor and brings it in line with the pause scope. A start or a signal
   * that failed is tried again after a backoff (5 s doubling to 5 min), until it lands.
   */
  async function superviseStreaming(link: NonNullable<PipelineStatus['streaming']>): Promise<void> {
    if (!v2) {
      if (link.attached) await syncStreaming(link);
      return;
    }
    if (streamingBackoff) return;
    if (!link.attached) await attachStreaming(link);
    if (link.attached) await syncStreaming(link);
    if (link.error === undefined) {
      streamingFailures = 0;
      return;
    }
    streamingBackoff = true;
    const delayMs = Math.min(STREAMING_RETRY_FIRST_MS * 2 ** streamingFailures, STREAMING_RETRY_MAX_MS);
    streamingFailures += 1;
    log.warn('streaming supervisor not reached; trying again', { error: link.error, delayMs });
    void sleep(delayMs)
      .then(() => {
        streamingBackoff = false;
        changed = true;
      })
      .catch(() => undefined);
  }

  // ---- continue-as-new ----

  function continueAsNewDue(): boolean {
    return workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.historyThreshold;
  }

  async function continueWithState(): Promise<never> {
    const keep = new Set(recentRecords(Math.max(KEPT_WINDOW_RECORDS, input.lateDataHorizonWindows)).map((r) => r.window.from));
    for (const [from, record] of Object.entries(state.windows)) {
      if (!keep.has(from) && record.nextRetryAt === undefined) delete state.windows[from];
    }
    state.continuedAsNewCount += 1;
    // The cursor carries on where startAt began it.
    const { startAt: _startAt, state: _state, ...settings } = input;
    return continueAsNew<typeof smartCityPipeline>({ ...settings, state });
  }

  // ---- the control loop ----

  /** Whether the loop looks for closed windows: not while paused; patched runs go on while draining. */
  function ticking(): boolean {
    return !state.paused && (!draining || v2);
  }

  function armTick(): void {
    void sleep(tickMs)
      .then(() => void (tickDue = true))
      .catch(() => undefined);
  }

  try {
    if (streaming && !v2) await attachStreaming(streaming);
    for (;;) {
      if (streaming) await superviseStreaming(streaming);
      if (ticking() && (tickDue || lookNow || runNowRequested)) {
        const ignoreLateness = runNowRequested;
        runNowRequested = false;
        lookNow = false;
        if (tickDue) {
          tickDue = false;
          armTick();
        }
        enqueueClosedWindows(ignoreLateness);
        enqueueDueRetries();
        startRuns();
        await checkLateData();
      }
      startRuns();
      draining ||= continueAsNewDue();
      if (draining && running.size === 0) {
        await condition(allHandlersFinished);
        await continueWithState();
      }
      await condition(() => changed || (ticking() && (tickDue || lookNow || runNowRequested)));
      changed = false;
    }
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        // Patched runs cancel it even when the last start or signal failed: it may run all the same.
        if (streaming && (v2 || streaming.attached)) {
          await getExternalWorkflowHandle(streaming.workflowId)
            .cancel()
            .catch((e: unknown) => log.warn('cancelling the streaming supervisor failed', { error: rootCause(e) }));
        }
        await Promise.allSettled(new Set([...running.values()].map((r) => r.run.done)));
      });
    }
    throw err;
  }
}
