// Stub activities for the workflow tests: a plain object implementing PipelineActivities whose
// behaviour each test sets through the knobs below, with a log of every call. Plus the little
// harness every workflow test file shares (bundle once, one worker per test, waiting for a state).
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../helpers/temporal';
import { until, when, type UntilOptions } from '../helpers/until';
import type {
  FleetSpec,
  IngestProgress,
  JourneyChunkResult,
  PipelineActivities,
  QualityResult,
  SourceCounts,
  StreamingJobState,
  TimeWindow,
  Snapshots,
} from '../../activities/types';
export { iso } from '../../workflows/input';

export const MINUTE = 60_000;

export function counts(n: number, overrides: Partial<SourceCounts> = {}): SourceCounts {
  return { vehicle: n, gps: n, traffic: n, weather: n, emergency: n, ...overrides };
}

export interface Call {
  name: keyof PipelineActivities;
  input: unknown;
  /** When the server scheduled this attempt: workflow (skipped) time, unlike Date.now() here. */
  scheduledAtMs: number;
  taskQueue: string;
}

/** What successive watchStreamingJob calls report; once the script is used up, the job runs on. */
export type WatchStep = Pick<StreamingJobState, 'state' | 'exitCode' | 'failure'>;

export class Stubs {
  readonly calls: Call[] = [];

  /** Raw rows countRawWindows reports per window start; `defaultRawRows` for the others. */
  readonly rawRows = new Map<string, SourceCounts>();
  defaultRawRows = counts(10);
  /** Windows (by start) whose quality check fails. */
  readonly failQuality = new Set<string>();
  /** Windows (by start) whose curate job fails for good, alone or in a chunk's range. */
  readonly failCurate = new Set<string>();
  /**
   * Windows (by start) whose first curate attempt hangs without a heartbeat, as on a worker that
   * died (the server's heartbeat timeout retries it), until the worker shuts down.
   */
  readonly hangFirstCurate = new Set<string>();
  /** Curate ranges whose activity saw its cancellation (a stub curate heartbeats while it waits). */
  readonly cancelledCurates: string[] = [];
  /** Curates of a range holding one of these window starts wait for its promise, heartbeating: a test acts meanwhile. */
  readonly curateGates = new Map<string, Promise<void>>();
  /** Real time curateWindow takes, so concurrent runs overlap. */
  curateDelayMs = 0;
  concurrentCurates = 0;
  maxConcurrentCurates = 0;

  readonly watchScript: WatchStep[] = [];
  jobRunning = false;
  private batchId = 0;

  /** Events per journey; one event per simulated minute, vehicle i leaving i minutes after start. */
  journeyEvents = 12;
  /** While set, produceJourneyChunk and produceFleetSlice wait for it: lets a test act while chunks are in flight. */
  chunkGate: Promise<void> | undefined;

  readonly activities: PipelineActivities = {
    startStreamingJob: async (spec) => {
      this.log('startStreamingJob', spec);
      this.jobRunning = true;
      return { jobName: spec.jobName, state: 'running', pid: 4242, lastProgress: this.progress() };
    },
    watchStreamingJob: async ({ jobName }) => {
      this.log('watchStreamingJob', { jobName });
      const step = this.watchScript.shift() ?? { state: 'running' };
      if (step.state !== 'running') this.jobRunning = false;
      else this.batchId += 1;
      return { jobName, ...step, lastProgress: this.progress() };
    },
    stopStreamingJob: async (input) => {
      this.log('stopStreamingJob', input);
      this.jobRunning = false;
      return { jobName: input.jobName, state: 'stopped', exitCode: 0 };
    },
    crawlLayer: async (input) => {
      this.log('crawlLayer', input);
      return { layer: input.layer, tables: [`${input.layer}_gps`], partitionsAdded: 1, schemaChanges: [], startedAt: new Date().toISOString() };
    },
    curateWindow: async (input) => {
      this.log('curateWindow', input);
      const { from, to } = input.window;
      const covers = (start: string) => Date.parse(start) >= Date.parse(from) && Date.parse(start) < Date.parse(to);
      const ctx = Context.current();
      if (ctx.info.attempt === 1 && [...this.hangFirstCurate].some(covers)) return ctx.cancelled;
      this.concurrentCurates += 1;
      this.maxConcurrentCurates = Math.max(this.maxConcurrentCurates, this.concurrentCurates);
      try {
        if ([...this.failCurate].some(covers)) throw ApplicationFailure.nonRetryable('spark-submit exited with code 1: AnalysisException', 'SparkJobFailed');
        const gate = [...this.curateGates].find(([start]) => covers(start))?.[1];
        if (gate) await this.heartbeatUntil(gate, `${from}/${to}`);
        if (this.curateDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.curateDelayMs));
        const raw = this.raw(input.window);
        return { rowsRead: total(raw), duplicatesDropped: 0, rowsWritten: raw, snapshots: stubSnapshots(input.window) };
      } finally {
        this.concurrentCurates -= 1;
      }
    },
    loadWarehouse: async (input) => {
      this.log('loadWarehouse', input);
      return { rows: this.raw(input.window) };
    },
    checkQuality: async (input): Promise<QualityResult> => {
      this.log('checkQuality', input);
      const raw = this.raw(input.window);
      const passed = !this.failQuality.has(input.window.from);
      return {
        passed,
        checks: [
          { name: 'raw_curated_warehouse_counts_match', passed: true, detail: 'all layers agree' },
          { name: 'no_null_locations', passed, detail: passed ? '0 null locations' : '3 gps rows without location' },
        ],
        counts: { raw, curated: raw, warehouse: raw },
      };
    },
    countRawWindows: async (input) => {
      this.log('countRawWindows', input);
      return input.windows.map((w) => this.raw(w));
    },
    produceJourneyChunk: async (input) => {
      this.log('produceJourneyChunk', input);
      await this.chunkGate;
      return this.chunk(input.fleet, input.vehicleIndex, 1, input.fromIndex, input.untilEventTime);
    },
    produceFleetSlice: async (input) => {
      this.log('produceFleetSlice', input);
      await this.chunkGate;
      return this.chunk(input.fleet, input.slice.firstVehicle, input.slice.vehicles, input.fromIndex, input.untilEventTime);
    },
  };

  callsOf(name: keyof PipelineActivities): Call[] {
    return this.calls.filter((c) => c.name === name);
  }

  /** Window starts curateWindow was called for, in call order. */
  curated(): string[] {
    return this.curatedRanges().map((w) => w.from);
  }

  /** The windows or chunk ranges curateWindow was called for, in call order. */
  curatedRanges(): TimeWindow[] {
    return this.callsOf('curateWindow').map((c) => (c.input as { window: TimeWindow }).window);
  }

  /** Window starts of the calls of an activity that takes one window (load, quality), in call order. */
  windowsOf(name: 'loadWarehouse' | 'checkQuality'): string[] {
    return this.callsOf(name).map((c) => (c.input as { window: TimeWindow }).window.from);
  }

  private async heartbeatUntil(gate: Promise<void>, range: string): Promise<void> {
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(), 200);
    try {
      await Promise.race([gate, ctx.cancelled]);
    } catch (err) {
      this.cancelledCurates.push(range);
      throw err;
    } finally {
      clearInterval(beat);
    }
  }

  private log(name: keyof PipelineActivities, input: unknown): void {
    const { info } = Context.current();
    this.calls.push({ name, input, scheduledAtMs: info.currentAttemptScheduledTimestampMs, taskQueue: info.taskQueue });
  }

  private raw(window: TimeWindow): SourceCounts {
    return this.rawRows.get(window.from) ?? this.defaultRawRows;
  }

  private progress(): IngestProgress {
    return { batchId: this.batchId, at: new Date().toISOString(), consumed: 100, valid: 99, quarantined: 1, durationMs: 850 };
  }

  /**
   * A chunk of the merged stream of vehicles first … first+count−1 (each sending `journeyEvents`
   * events, one a minute from i minutes after the start, counted as one vehicle and one gps event),
   * merged by time and then vehicle as the real fleet merges.
   */
  private chunk(fleet: FleetSpec, first: number, count: number, fromIndex: number, untilEventTime: string): JourneyChunkResult {
    const times: number[] = [];
    for (let v = first; v < first + count; v++) for (let k = 0; k < this.journeyEvents; k++) times.push(Date.parse(fleet.start) + (v + k) * MINUTE);
    times.sort((a, b) => a - b);
    const until = Date.parse(untilEventTime);
    let next = fromIndex;
    while (next < times.length && times[next]! < until) next += 1;
    const sent = next - fromIndex;
    return { nextIndex: next, arrived: next === times.length, sent: counts(0, { vehicle: sent, gps: sent }) };
  }
}

function total(c: SourceCounts): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

// ---- harness ----------------------------------------------------------------------------------


/** Per test: a test that hangs fails instead of stalling the run. */
export const TIMEOUT = { timeout: 60_000 };

/** How the workflow tests `until` a state (a query, mostly): real time, a few ms at a time. */
export const POLL: UntilOptions = { timeoutMs: 15_000, everyMs: 20 };

/** Registers a workflow to close when the test ends, whatever happens. */
export type Track = <H extends WorkflowHandle>(handle: H) => H;

/**
 * Runs `fn` with a worker on a fresh task queue serving the workflows and `stubs`. Tracked
 * workflows still open at the end are cancelled while the worker still runs: an open workflow
 * left without a worker would hold the shared test server's time skipping for the next tests.
 */
export async function withWorker<T>(env: TestWorkflowEnvironment, stubs: Stubs, fn: (taskQueue: string, track: Track) => Promise<T>): Promise<T> {
  const taskQueue = `wf-test-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: stubs.activities,
  });
  const tracked: WorkflowHandle[] = [];
  return worker.runUntil(async () => {
    try {
      return await fn(taskQueue, (handle) => {
        tracked.push(handle);
        return handle;
      });
    } finally {
      for (const handle of tracked) await closeWorkflow(handle);
    }
  });
}

/**
 * Cancels a workflow and waits, by polling, until it is closed. Awaiting `result()` instead would
 * let the time-skipping server jump years ahead.
 */
export async function closeWorkflow(handle: WorkflowHandle): Promise<string> {
  const state = async () => (await handle.describe()).status.name;
  if ((await state()) === 'RUNNING') await handle.cancel();
  try {
    return await until(`${handle.workflowId} closed`, when(state, (name) => name !== 'RUNNING'), { ...POLL, timeoutMs: 10_000 });
  } catch {
    await handle.terminate('the test could not cancel it');
    return state();
  }
}

/** Sleeps the test server until `offsetMs` past the next multiple of `sizeMs`; returns that boundary. */
export async function sleepPastBoundary(env: TestWorkflowEnvironment, sizeMs: number, offsetMs: number): Promise<number> {
  const now = await env.currentTimeMs();
  const boundary = (Math.floor(now / sizeMs) + 1) * sizeMs;
  await env.sleep(boundary + offsetMs - now);
  return boundary;
}

export { recordHistory, workflowBundle } from '../helpers/temporal';

/** The snapshot ids the stub curate reports for a range (one per source, told apart by range). */
export function stubSnapshots(range: TimeWindow): Snapshots {
  const base = BigInt(Date.parse(range.from)) * 10n;
  return { vehicle: String(base + 1n), gps: String(base + 2n), traffic: String(base + 3n), weather: String(base + 4n), emergency: String(base + 5n) };
}
