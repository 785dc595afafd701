// smartCityPipeline on the time-skipping server with stub activities.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv } from '../helpers/temporal';
import {
  STREAMING_WORKFLOW_ID,
  type backfillChunk,
  type batchRun,
  pipelineBackfillSignal,
  pipelinePauseSignal,
  pipelineResumeSignal,
  pipelineRunNowSignal,
  pipelineStatusQuery,
  requestBackfillUpdate,
  smartCityPipeline,
  streamingStatusQuery,
  type PipelineStatus,
  type SmartCityPipelineInput,
  type WindowRecord,
} from '../../workflows';
import { MINUTE, POLL, Stubs, TIMEOUT, closeWorkflow, counts, iso, recordHistory, sleepPastBoundary, stubSnapshots, withWorker, workflowBundle, type Track } from './stubs';
import { until, when } from '../helpers/until';

const W = 5 * MINUTE;
const DAY = 24 * 60 * MINUTE;

type Pipeline = WorkflowHandleWithFirstExecutionRunId<typeof smartCityPipeline>;

const status = (handle: Pipeline) => handle.query(pipelineStatusQuery);
const loaded = (s: PipelineStatus) => s.windows.filter((w) => w.status === 'loaded').length;
const record = (s: PipelineStatus, fromMs: number): WindowRecord | undefined => s.windows.find((w) => w.window.from === iso(fromMs));
const supervisor = (env: TestWorkflowEnvironment) => env.client.workflow.getHandle(STREAMING_WORKFLOW_ID);

/**
 * Waits until the supervisor runs and has seen a watch result past micro-batch `batchId`, i.e. it
 * sleeps between watches. (Cancelling it while the stub's instant watch completes races on the
 * test server, which then holds the workflow task for its full timeout.)
 */
const streamingRunning = (env: TestWorkflowEnvironment, batchId: number) =>
  until(
    `streaming runs past micro-batch ${batchId}`,
    when(() => supervisor(env).query(streamingStatusQuery), (v) => v.state === 'running' && (v.lastProgress?.batchId ?? 0) > batchId),
    POLL,
  );

describe('smartCityPipeline', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  /** Starts a controller that is cancelled when the test ends; with streaming, its supervisor is closed too. */
  async function start(taskQueue: string, track: Track, input: SmartCityPipelineInput): Promise<Pipeline> {
    const handle = track(await env.client.workflow.start(smartCityPipeline, { taskQueue, workflowId: `pipeline-${randomUUID()}`, args: [input] }));
    if (input.streaming !== false) track(supervisor(env));
    return handle;
  }

  test('the closed windows it finds at start run as one chunk, then one batch run per window as each closes', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - 3 * W) });
      let s = await until('the three closed windows are loaded', when(() => status(handle), (v) => loaded(v) === 3), POLL);
      assert.deepEqual(stubs.curatedRanges(), [{ from: iso(b - 3 * W), to: iso(b) }], 'one curate job for the three windows');
      assert.deepEqual(stubs.windowsOf('loadWarehouse').sort(), [iso(b - 3 * W), iso(b - 2 * W), iso(b - W)], 'each window loaded on its own');
      assert.deepEqual(stubs.windowsOf('checkQuality').sort(), [iso(b - 3 * W), iso(b - 2 * W), iso(b - W)], 'and checked on its own');
      for (const [i, fromMs] of [b - 3 * W, b - 2 * W, b - W].entries()) {
        const r = record(s, fromMs)!;
        assert.equal(r.workflowId, `smartcity-batch-${iso(fromMs)}-1`, `window ${i} has its own batch run`);
        assert.equal(r.chunk, `smartcity-chunk-${iso(b - 3 * W)}-${iso(b)}-1`);
        assert.deepEqual(r.rawRows, counts(10));
        const run = await env.client.workflow.getHandle<typeof batchRun>(r.workflowId).result();
        assert.equal(run.curatedBy, r.chunk, 'its batch run loaded what the chunk curated');
      }
      assert.deepEqual(s.loaded, [{ from: iso(b - 3 * W), to: iso(b) }]);
      assert.equal(s.cursor.from, iso(b), 'the open window is next');
      assert.equal(s.cursor.closesAt, iso(b + W + MINUTE));
      assert.deepEqual(s.loaded, [{ from: iso(b - 3 * W), to: iso(b) }]);

      await env.sleep(5 * MINUTE);
      s = await until('the next window is loaded once it closed', when(() => status(handle), (v) => loaded(v) === 4), POLL);
      assert.deepEqual(stubs.curatedRanges(), [
        { from: iso(b - 3 * W), to: iso(b) },
        { from: iso(b), to: iso(b + W) },
      ]);
      const newest = s.windows[0]!;
      const { loadedAt, ...rest } = newest;
      assert.ok(loadedAt && Date.parse(loadedAt) >= b + W + MINUTE, 'loaded after it closed');
      assert.deepEqual(rest, {
        window: { from: iso(b), to: iso(b + W) },
        status: 'loaded',
        attempts: 1,
        failures: 0,
        lastReason: 'live',
        workflowId: `smartcity-batch-${iso(b)}-1`,
        rows: counts(10),
        rawRows: counts(10),
      });
      const ticks = stubs.callsOf('countRawWindows').length - 4;
      assert.ok(ticks <= 5 * 2 + 2, `late-data checks at most once per tick: ${ticks} in five minutes`);
    });
  });

  test('pause stops new batch runs; resume catches up every window that closed meanwhile', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false });
      await handle.signal(pipelinePauseSignal);
      await until('paused', when(() => status(handle), (v) => v.paused && v.pauseScope === 'batches'), POLL);
      await env.sleep(16 * MINUTE);
      const paused = await status(handle);
      assert.deepEqual(stubs.curated(), []);
      assert.equal(paused.cursor.from, iso(b), 'the cursor waits where it stopped');

      await handle.signal(pipelineResumeSignal);
      await until('the missed windows are caught up', when(() => status(handle), (v) => loaded(v) === 3), POLL);
      assert.deepEqual(stubs.curatedRanges(), [{ from: iso(b), to: iso(b + 3 * W) }], 'by one chunk');
      assert.equal((await status(handle)).paused, false);
    });
  });

  test('backfill skips windows already loaded unless forced, and runs at most backfillConcurrency at a time', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.curateDelayMs = 150;
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      // The live schedule starts tomorrow, so only the backfill runs here; chunks of one window each.
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY), backfillConcurrency: 2, chunkMinutes: 5 });

      const first = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 6 * W), to: iso(b - 2 * W) }] });
      assert.deepEqual(first.accepted.map((w) => w.from), [b - 6 * W, b - 5 * W, b - 4 * W, b - 3 * W].map(iso));
      assert.deepEqual(first.skipped, []);
      await until('the first backfill is loaded', when(() => status(handle), (v) => loaded(v) === 4), POLL);

      const second = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 8 * W), to: iso(b - W) }] });
      assert.deepEqual(second.accepted.map((w) => w.from), [b - 8 * W, b - 7 * W, b - 2 * W].map(iso));
      assert.deepEqual(
        second.skipped.map((w) => [w.from, w.reason]),
        [b - 6 * W, b - 5 * W, b - 4 * W, b - 3 * W].map((t) => [iso(t), 'already loaded']),
      );
      await until('the second backfill is loaded', when(() => status(handle), (v) => loaded(v) === 7 && v.running.length === 0), POLL);

      await handle.signal(pipelineBackfillSignal, { from: iso(b - 6 * W), to: iso(b - 5 * W), force: true });
      const s = await until('the forced window ran again', when(() => status(handle), (v) => record(v, b - 6 * W)?.attempts === 2 && v.running.length === 0), POLL);
      assert.equal(record(s, b - 6 * W)?.workflowId, `smartcity-batch-${iso(b - 6 * W)}-2`);
      assert.deepEqual(s.loaded, [{ from: iso(b - 8 * W), to: iso(b - W) }]);

      assert.equal(stubs.curated().length, 4 + 3 + 1, 'no window ran twice without force');
      assert.equal(stubs.maxConcurrentCurates, 2);
    });
  });

  test('a backfill signalled with the start (signalWithStart) runs: handlers registered at start may run at once', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = track(
        await env.client.workflow.signalWithStart(smartCityPipeline, {
          taskQueue,
          workflowId: `pipeline-${randomUUID()}`,
          args: [{ streaming: false, startAt: iso(b + DAY), chunkMinutes: 5 }],
          signal: pipelineBackfillSignal,
          signalArgs: [{ from: iso(b - 2 * W), to: iso(b) }],
        }),
      ) as unknown as Pipeline;
      const s = await until('the backfill sent with the start is loaded', when(() => status(handle), (v) => loaded(v) === 2 && v.running.length === 0), POLL);
      assert.deepEqual(s.rejectedSignals, []);
    });
  });

  test('a backfill runs as chunks of at most chunkMinutes: one curate per chunk, then a batch run per window that loads and checks it', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY), chunkMinutes: 20 });
      const windows = [6, 5, 4, 3, 2, 1].map((k) => b - k * W);
      const outcome = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 6 * W), to: iso(b) }] });
      assert.equal(outcome.accepted.length, 6);
      const s = await until('the six windows are loaded', when(() => status(handle), (v) => loaded(v) === 6 && v.running.length === 0), POLL);

      // The two chunks run side by side (backfillConcurrency 2): in either order.
      assert.deepEqual(stubs.curatedRanges().sort((x, y) => x.from.localeCompare(y.from)), [
        { from: iso(b - 6 * W), to: iso(b - 2 * W) },
        { from: iso(b - 2 * W), to: iso(b) },
      ], 'two chunks of at most 20 minutes, one curate each');
      assert.deepEqual(stubs.callsOf('countRawWindows').map((c) => (c.input as { windows: unknown[] }).windows.length).sort(), [2, 4], 'one count per chunk, per window');
      const crawls = stubs.callsOf('crawlLayer').map((c) => c.input as { layer: string; window: { from: string; to: string } });
      assert.deepEqual(
        crawls.map((c) => `${c.layer} ${c.window.from}/${c.window.to}`).sort(),
        [`raw ${iso(b - 6 * W)}/${iso(b - 2 * W)}`, `raw ${iso(b - 2 * W)}/${iso(b)}`],
        'raw crawled once per chunk, over its range; curated not at all (an Iceberg commit registers its table)',
      );
      const chunkSnapshots = stubSnapshots({ from: iso(b - 6 * W), to: iso(b - 2 * W) });
      assert.deepEqual(
        stubs.callsOf('loadWarehouse').filter((c) => (c.input as { window: { from: string } }).window.from === iso(b - 5 * W)).map((c) => (c.input as { snapshots?: unknown }).snapshots),
        [chunkSnapshots],
        "a window's load reads the snapshots its chunk committed",
      );
      assert.deepEqual(stubs.windowsOf('loadWarehouse').sort(), windows.map(iso));
      assert.deepEqual(stubs.windowsOf('checkQuality').sort(), windows.map(iso));
      const chunks = [`smartcity-chunk-${iso(b - 6 * W)}-${iso(b - 2 * W)}-1`, `smartcity-chunk-${iso(b - 2 * W)}-${iso(b)}-1`];
      assert.deepEqual(windows.map((t) => record(s, t)?.chunk), [chunks[0], chunks[0], chunks[0], chunks[0], chunks[1], chunks[1]]);
      const chunk = env.client.workflow.getHandle<typeof backfillChunk>(chunks[0]!);
      const result = await chunk.result();
      assert.deepEqual(result.range, { from: iso(b - 6 * W), to: iso(b - 2 * W) });
      assert.deepEqual(result.windows.map((w) => [w.workflowId, w.status]), windows.slice(0, 4).map((t) => [`smartcity-batch-${iso(t)}-1`, 'loaded']));
      const run = env.client.workflow.getHandle<typeof batchRun>(`smartcity-batch-${iso(b - 5 * W)}-1`);
      const runResult = await run.result();
      assert.deepEqual(Object.keys(runResult.timings), ['load', 'quality'], 'a window curated by its chunk is only loaded and checked');
      assert.equal(runResult.curatedBy, chunks[0]);
      // Loaded and checked by local activities: markers in the window's history, no activity tasks.
      const events = (await run.fetchHistory()).events ?? [];
      assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes).length, 0, 'no activity task for a window its chunk curated');
      assert.equal(events.filter((e) => e.markerRecordedEventAttributes).length, 3, 'the patch marker and two local activities');
      // backfillChunk-four-windows.json, recorded before the lake was Iceberg (it crawls curated), stays as it is.
      await recordHistory(chunk, 'backfillChunk-iceberg-four-windows');
      // batchRun-curated-by-chunk.json, recorded before the patch (activity tasks), stays as it is.
      await recordHistory(run, 'batchRun-curated-by-chunk-local-activities');
      assert.equal(await closeWorkflow(handle), 'CANCELLED');
      await recordHistory(env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId), 'smartCityPipeline-chunked-backfill');
    });
  });

  test('in a chunk, a window that fails its checks is retried alone; loaded windows are not redone; force re-runs them as a chunk', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      stubs.failQuality.add(iso(b - 2 * W));
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY) });
      await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 3 * W), to: iso(b) }] });
      let s = await until('two loaded, one failed', when(() => status(handle), (v) => loaded(v) === 2 && record(v, b - 2 * W)?.status === 'failed'), POLL);
      const bad = record(s, b - 2 * W)!;
      assert.equal(bad.lastError?.type, 'DataQualityError');
      assert.deepEqual(bad.lastError?.failedChecks, ['no_null_locations']);
      assert.ok(bad.nextRetryAt, 'a retry is planned');

      stubs.failQuality.clear();
      await env.sleep(MINUTE);
      s = await until('the retry loaded it', when(() => status(handle), (v) => loaded(v) === 3), POLL);
      assert.equal(record(s, b - 2 * W)?.attempts, 2);
      assert.equal(record(s, b - 2 * W)?.chunk, undefined, 'a retry of one window is a plain batch run');
      assert.deepEqual(stubs.curatedRanges(), [
        { from: iso(b - 3 * W), to: iso(b) },
        { from: iso(b - 2 * W), to: iso(b - W) },
      ]);
      assert.deepEqual(stubs.windowsOf('loadWarehouse').sort(), [b - 3 * W, b - 2 * W, b - 2 * W, b - W].map(iso), 'the loaded windows were not loaded again');

      const forced = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 3 * W), to: iso(b), force: true }] });
      assert.equal(forced.accepted.length, 3);
      s = await until('forced windows ran again', when(() => status(handle), (v) => record(v, b - W)?.attempts === 2 && v.running.length === 0), POLL);
      assert.equal(record(s, b - 3 * W)?.chunk, `smartcity-chunk-${iso(b - 3 * W)}-${iso(b)}-2`);
      assert.deepEqual(stubs.curatedRanges().at(-1), { from: iso(b - 3 * W), to: iso(b) }, 'one curate for the forced range');
      assert.equal(loaded(s), 3);
    });
  });

  test('a chunk whose curate fails fails each of its windows with the reason', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      stubs.failCurate.add(iso(b - W));
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY), maxBatchAttempts: 1 });
      await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 2 * W), to: iso(b) }] });
      const s = await until('both windows failed', when(() => status(handle), (v) => v.windows.filter((w) => w.status === 'failed').length === 2), POLL);
      for (const t of [b - 2 * W, b - W]) {
        assert.equal(record(s, t)?.lastError?.type, 'BatchRunError');
        assert.match(record(s, t)?.lastError?.message ?? '', /spark-submit exited with code 1/);
      }
      assert.deepEqual(stubs.callsOf('loadWarehouse'), [], 'nothing was loaded');
    });
  });

  test('cancelling the controller cancels a running chunk, and its curate activity stops', TIMEOUT, async () => {
    const stubs = new Stubs();
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    try {
      await withWorker(env, stubs, async (taskQueue, track) => {
        const b = await sleepPastBoundary(env, W, 2 * MINUTE);
        stubs.curateGates.set(iso(b - 3 * W), gate);
        const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY) });
        await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 3 * W), to: iso(b) }] });
        await until('the chunk curates', when(async () => stubs.callsOf('curateWindow').length, (n) => n === 1), POLL);
        assert.equal(await closeWorkflow(handle), 'CANCELLED');
        const chunk = env.client.workflow.getHandle(`smartcity-chunk-${iso(b - 3 * W)}-${iso(b)}-1`);
        assert.equal(await until('the chunk closed', when(async () => (await chunk.describe()).status.name, (n) => n !== 'RUNNING'), POLL), 'CANCELLED');
        assert.deepEqual(stubs.cancelledCurates, [`${iso(b - 3 * W)}/${iso(b)}`], 'the curate activity was cancelled (the real one then stops its Spark job)');
      });
    } finally {
      release();
    }
  });

  test('a curate whose worker died is retried after the heartbeat timeout; live windows go on meanwhile', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      stubs.hangFirstCurate.add(iso(b - W));
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - W), tickSeconds: 10 });
      await until('the first curate attempt hangs', when(async () => stubs.callsOf('curateWindow').length, (n) => n === 1), POLL);
      await env.sleep(2 * MINUTE);
      let s = await until('the window is loaded by the retried attempt', when(() => status(handle), (v) => record(v, b - W)?.status === 'loaded'), POLL);
      assert.equal(record(s, b - W)?.attempts, 1, 'the batch run itself did not fail');
      const [first, second] = stubs.callsOf('curateWindow');
      assert.ok(second && second.scheduledAtMs - first!.scheduledAtMs < 60_000, `retried within a minute of workflow time: ${(second?.scheduledAtMs ?? 0) - first!.scheduledAtMs} ms`);
      await env.sleep(10 * MINUTE);
      s = await until('the live windows after it are loaded as they close', when(() => status(handle), (v) => loaded(v) >= 3), POLL);
      assert.deepEqual(s.loaded, [{ from: iso(b - W), to: iso(b + 2 * W) }]);
    });
  });

  test('draining for continue-as-new, a slow backfill does not hold up the live windows', TIMEOUT, async () => {
    const stubs = new Stubs();
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      // Six closed live windows, one run each (chunks of one window); the backfill's curate waits for the gate.
      stubs.curateGates.set(iso(b - DAY), gate);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - 6 * W), historyThreshold: 50, chunkMinutes: 5 });
      await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - DAY), to: iso(b - DAY + W) }] });
      await until('the backfill curates (and waits)', when(async () => stubs.curated().includes(iso(b - DAY)), Boolean), POLL);
      try {
        const s = await until('every live window is loaded', when(() => status(handle), (v) => v.loaded.some((r) => r.from === iso(b - 6 * W) && r.to === iso(b))), POLL);
        assert.ok(s.historyLength > 50, `past the threshold, draining: ${s.historyLength} events`);
        assert.equal(s.continuedAsNewCount, 0, 'still draining: the backfill runs');
        assert.deepEqual(s.running.map((r) => r.window.from), [iso(b - DAY)]);
      } finally {
        release();
      }
      await until('continued as new once the backfill finished', when(async () => (await handle.describe()).runId !== handle.firstExecutionRunId, Boolean), POLL);
    });
  });

  test('requestBackfill rejects bad ranges with a clear error and accepts a good one', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY) });
      const bad: [unknown, RegExp][] = [
        [{ from: 'yesterday', to: iso(b) }, /invalid backfill request: from: expected an ISO-8601 time with a zone/],
        [{ from: iso(b), to: iso(b - W) }, /from \(.*\) must be before to/],
        [{ from: iso(b - W), to: iso(b + DAY) }, /to \(.*\) is in the future/],
        [{ from: iso(b - 3000 * W), to: iso(b) }, /covers 3000 windows of 5 min; at most 2000 per request/],
        [{ from: iso(b - W), to: iso(b), forced: true }, /Unrecognized key: "forced"/],
      ];
      for (const [request, message] of bad) {
        await assert.rejects(
          handle.executeUpdate('requestBackfill', { args: [request] }),
          (err: unknown) => err instanceof WorkflowUpdateFailedError && message.test(String(err.cause?.message)),
          `rejects ${JSON.stringify(request)}`,
        );
      }
      const outcome = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: iso(b - 2 * W + MINUTE), to: iso(b) }] });
      assert.deepEqual(outcome, {
        accepted: [
          { from: iso(b - 2 * W), to: iso(b - W) },
          { from: iso(b - W), to: iso(b) },
        ],
        skipped: [],
      });
      await until('the accepted windows are loaded', when(() => status(handle), (v) => loaded(v) === 2), POLL);
      const events = (await handle.fetchHistory()).events ?? [];
      const updates = events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;
      assert.equal(updates, 1, 'rejected requests leave no trace in the history');
      assert.deepEqual((await status(handle)).rejectedSignals, []);
    });
  });

  test('a malformed signal payload is recorded in status and the pipeline keeps working', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b + DAY) });
      await handle.signal('pause', { scope: 'everything' });
      await handle.signal('backfill', 'last tuesday');
      await handle.signal('backfill', { from: iso(b - W) });
      await handle.signal('runNow', { now: true });
      await handle.signal('resume', 42);
      let s = await until('five rejections', when(() => status(handle), (v) => v.rejectedSignals.length === 5), POLL);
      assert.deepEqual(
        s.rejectedSignals.map((r) => [r.name, r.payload]),
        [
          ['pause', { scope: 'everything' }],
          ['backfill', 'last tuesday'],
          ['backfill', { from: iso(b - W) }],
          ['runNow', { now: true }],
          ['resume', 42],
        ],
      );
      assert.match(s.rejectedSignals[0]!.reason, /^scope: Invalid option: expected one of "batches"\|"all"/);
      assert.match(s.rejectedSignals[1]!.reason, /^input: Invalid input: expected object, received string/);
      assert.match(s.rejectedSignals[2]!.reason, /^to: /);
      assert.match(s.rejectedSignals[3]!.reason, /Unrecognized key: "now"/);
      assert.ok(s.rejectedSignals.every((r) => !Number.isNaN(Date.parse(r.at))));
      assert.equal(s.paused, false, 'a rejected pause does not pause');

      for (let i = 0; i < 20; i++) await handle.signal('runNow', i);
      s = await until('the last rejection', when(() => status(handle), (v) => v.rejectedSignals.at(-1)?.payload === 19), POLL);
      assert.equal(s.rejectedSignals.length, 20, 'only the last 20 are kept');
      assert.equal(s.rejectedSignals[0]!.payload, 0);

      await handle.signal(pipelineBackfillSignal, { from: iso(b - W), to: iso(b) });
      await until('a good backfill still runs', when(() => status(handle), (v) => loaded(v) === 1), POLL);
    });
  });

  test('late data: a loaded window whose raw count grew is re-run, with the reason recorded', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - 2 * W) });
      await until('two windows are loaded', when(() => status(handle), (v) => loaded(v) === 2), POLL);

      stubs.rawRows.set(iso(b - 2 * W), counts(10, { gps: 15 }));
      await env.sleep(MINUTE);
      let s = await until(
        'the window with late data ran again',
        when(() => status(handle), (v) => record(v, b - 2 * W)?.attempts === 2 && record(v, b - 2 * W)?.status === 'loaded'),
        POLL,
      );
      const rerun = record(s, b - 2 * W)!;
      assert.equal(rerun.lastReason, 'late data: raw gps 10 → 15');
      assert.deepEqual(rerun.rawRows, counts(10, { gps: 15 }));
      assert.equal(record(s, b - W)?.attempts, 1, 'the other window is left alone');

      await env.sleep(2 * MINUTE);
      s = await status(handle);
      assert.equal(record(s, b - 2 * W)?.attempts, 2, 'counted again after the re-run, it no longer differs');
      assert.deepEqual(stubs.curatedRanges(), [
        { from: iso(b - 2 * W), to: iso(b) },
        { from: iso(b - 2 * W), to: iso(b - W) },
      ]);
    });
  });

  test('failed batch runs are recorded with their error type and retried up to the cap without blocking other windows', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      stubs.failQuality.add(iso(b - 3 * W));
      stubs.failCurate.add(iso(b - 2 * W));
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - 3 * W), maxBatchAttempts: 3, chunkMinutes: 5 });
      let s = await until('the window after the failures is loaded', when(() => status(handle), (v) => record(v, b - W)?.status === 'loaded'), POLL);
      const quality = record(s, b - 3 * W)!;
      assert.equal(quality.status, 'failed');
      assert.equal(quality.lastError?.type, 'DataQualityError');
      assert.deepEqual(quality.lastError?.failedChecks, ['no_null_locations']);
      assert.match(quality.lastError?.message ?? '', /quality checks failed .*no_null_locations/);
      assert.ok(quality.nextRetryAt, 'a retry is planned');
      const other = record(s, b - 2 * W)!;
      assert.equal(other.lastError?.type, 'BatchRunError');
      assert.match(other.lastError?.message ?? '', /spark-submit exited with code 1/);

      await env.sleep(5 * MINUTE);
      s = await until('the next live window is loaded', when(() => status(handle), (v) => record(v, b)?.status === 'loaded'), POLL);
      for (const fromMs of [b - 3 * W, b - 2 * W]) {
        const r = record(s, fromMs)!;
        assert.equal(r.attempts, 3, `${iso(fromMs)} ran three times`);
        assert.equal(r.failures, 3);
        assert.equal(r.nextRetryAt, undefined, 'no retry after the cap');
        assert.match(r.lastReason, /^retry 3\/3 after /);
      }
      await env.sleep(5 * MINUTE);
      assert.equal(record(await status(handle), b - 3 * W)?.attempts, 3);
      assert.deepEqual(s.loaded, [{ from: iso(b - W), to: iso(b + W) }]);
    });
  });

  test('runNow runs at once every window whose end has passed, even within its lateness', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 20_000);
      const handle = await start(taskQueue, track, { streaming: false, startAt: iso(b - W) });
      const before = await status(handle);
      assert.equal(before.cursor.from, iso(b - W), 'the window that just ended is still within its lateness');
      await handle.signal(pipelineRunNowSignal);
      const s = await until('it ran', when(() => status(handle), (v) => loaded(v) === 1), POLL);
      assert.deepEqual(stubs.curated(), [iso(b - W)]);
      assert.equal(s.cursor.from, iso(b));
    });
  });

  test('continues as new carrying its state; the streaming child keeps running and follows pause {scope: "all"}', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      // Headroom: the run must not continue as new before the test has paused it and queued a backfill.
      const handle = await start(taskQueue, track, { startAt: iso(b - 2 * W), historyThreshold: 80 });
      await until('two windows loaded, streaming attached', when(() => status(handle), (v) => loaded(v) === 2 && v.streaming?.attached === true), POLL);
      const supervisorRun = (await supervisor(env).describe()).runId;
      await streamingRunning(env, 0);

      await handle.signal(pipelinePauseSignal, { scope: 'all' });
      const paused = await until('streaming paused too', when(() => supervisor(env).query(streamingStatusQuery), (v) => v.state === 'paused'), POLL);
      await handle.signal(pipelineBackfillSignal, { from: iso(b - 5 * W), to: iso(b - 3 * W) });
      const before = await until('the backfill is queued while paused', when(() => status(handle), (v) => v.queued === 2), POLL);
      assert.equal(before.continuedAsNewCount, 0);

      // Signals are history events too: send harmless ones until the controller continues as new.
      // (Polled with describe: a query that lands during continue-as-new can stall on the test server.)
      const { runId } = await handle.describe();
      await until(
        'continued as new',
        when(
          async () => {
            await handle.signal(pipelinePauseSignal, { scope: 'all' });
            return (await handle.describe()).runId;
          },
          (current) => current !== runId,
        ),
        POLL,
      );
      const s = await until('the new run re-attached', when(() => status(handle), (v) => v.continuedAsNewCount > before.continuedAsNewCount && v.streaming?.attached === true), POLL);
      assert.equal(s.paused, true);
      assert.equal(s.pauseScope, 'all');
      assert.deepEqual(s.queue.map((q) => [q.window.from, q.reason]), [
        [iso(b - 5 * W), 'backfill'],
        [iso(b - 4 * W), 'backfill'],
      ]);
      assert.deepEqual(
        s.windows.map((w) => [w.window.from, w.status]),
        [
          [iso(b - W), 'loaded'],
          [iso(b - 2 * W), 'loaded'],
        ],
      );
      assert.deepEqual(s.loaded, [{ from: iso(b - 2 * W), to: iso(b) }]);
      assert.deepEqual(s.streaming, { workflowId: STREAMING_WORKFLOW_ID, attached: true });
      const described = await supervisor(env).describe();
      assert.equal(described.status.name, 'RUNNING');
      assert.equal(described.runId, supervisorRun, 'the supervisor was never restarted');
      assert.equal(stubs.callsOf('startStreamingJob').length, 1);

      await handle.signal(pipelineResumeSignal);
      await until('the carried queue runs after resume', when(() => status(handle), (v) => loaded(v) === 4), POLL);
      await streamingRunning(env, paused.lastProgress?.batchId ?? 0);
      assert.equal(stubs.callsOf('startStreamingJob').length, 2);

      assert.equal(await closeWorkflow(handle), 'CANCELLED');
      assert.equal(
        await until('the supervisor closed', when(async () => (await supervisor(env).describe()).status.name, (name) => name !== 'RUNNING'), POLL),
        'CANCELLED',
        'cancelling the controller stops streaming',
      );
      assert.equal(stubs.callsOf('stopStreamingJob').length, 2, 'stopped on pause {scope: "all"} and on cancellation');
      await recordHistory(env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId), 'smartCityPipeline-signals-continue-as-new');
    });
  });

  test('started with {} it watches the current window and starts streaming', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = await start(taskQueue, track, {});
      const s = await until('streaming attached', when(() => status(handle), (v) => v.streaming?.attached === true), POLL);
      const startedAt = (await handle.describe()).startTime.getTime();
      assert.equal(Date.parse(s.cursor.from), Math.floor(startedAt / W) * W);
      assert.equal(s.windowMinutes, 5);
      assert.equal(s.allowedLatenessSeconds, 60);
      await streamingRunning(env, 0);
      assert.equal(stubs.callsOf('startStreamingJob').length, 1);
    });
  });
});

// On a test server of its own: terminating the supervisor while an activity of it is in flight
// leaves the time-skipping test server's time locked, which would stall every later test.
describe('smartCityPipeline: a supervisor terminated from outside', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  test('a supervisor that is gone is started again and told to pause, until the signal lands', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const b = await sleepPastBoundary(env, W, 2 * MINUTE);
      const handle = track(await env.client.workflow.start(smartCityPipeline, { taskQueue, workflowId: `pipeline-${randomUUID()}`, args: [{ startAt: iso(b + DAY) }] }));
      track(supervisor(env));
      await until('streaming attached', when(() => status(handle), (v) => v.streaming?.attached === true), POLL);
      await streamingRunning(env, 0);
      const first = (await supervisor(env).describe()).runId;
      await supervisor(env).terminate('the test removes it');
      await handle.signal(pipelinePauseSignal, { scope: 'all' });
      const paused = await until(
        'a new supervisor runs, paused',
        when(async () => ((await supervisor(env).describe()).runId === first ? undefined : supervisor(env).query(streamingStatusQuery)), (v) => v?.state === 'paused'),
        POLL,
      );
      assert.ok(paused);
      assert.equal((await status(handle)).streaming?.error, undefined, 'the error is cleared once the signal landed');
    });
  });
});
