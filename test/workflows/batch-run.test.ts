// batchRun on the time-skipping server with stub activities.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv } from '../helpers/temporal';
import { DATA_QUALITY_ERROR, INVALID_INPUT, batchRun, batchRunStatusQuery } from '../../workflows';
import { MINUTE, Stubs, TIMEOUT, counts, recordHistory, stubSnapshots, withWorker, workflowBundle } from './stubs';

const window = { from: '2024-05-01T12:00:00.000Z', to: '2024-05-01T12:05:00.000Z' };

describe('batchRun', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  test('runs crawl raw → count → curate → load → quality, the load and checks reading the snapshots curate committed', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.rawRows.set(window.from, counts(7, { gps: 21 }));
    await withWorker(env, stubs, async (taskQueue) => {
      const handle = await env.client.workflow.start(batchRun, { taskQueue, workflowId: `batch-${randomUUID()}`, args: [{ window }] });
      const result = await handle.result();
      assert.deepEqual(result.window, window);
      assert.deepEqual(Object.keys(result.timings), ['crawlRaw', 'countRaw', 'curate', 'load', 'quality'], 'an Iceberg commit registers its table: no curated crawl');
      assert.ok(Object.values(result.timings).every((ms) => ms >= 0));
      assert.ok(result.totalMs >= 0);
      assert.deepEqual(result.rawRows, counts(7, { gps: 21 }));
      assert.deepEqual(result.loaded, counts(7, { gps: 21 }));
      assert.deepEqual(result.counts.warehouse, counts(7, { gps: 21 }));
      assert.equal(result.curated?.rowsRead, 49);
      assert.deepEqual(
        stubs.calls.map((c) => c.name),
        ['crawlLayer', 'countRawWindows', 'curateWindow', 'loadWarehouse', 'checkQuality'],
      );
      assert.deepEqual(
        stubs.callsOf('crawlLayer').map((c) => (c.input as { layer: string }).layer),
        ['raw'],
      );
      assert.deepEqual(result.curated?.snapshots, stubSnapshots(window));
      for (const stage of ['loadWarehouse', 'checkQuality'] as const) {
        assert.deepEqual(stubs.callsOf(stage)[0]?.input, { window, snapshots: stubSnapshots(window) }, `${stage} reads the snapshots curate committed`);
      }
      const status = await handle.query(batchRunStatusQuery);
      assert.equal(status.stage, 'done');
      const events = (await handle.fetchHistory()).events ?? [];
      assert.ok(events.length <= 45, `a batch run is a handful of activities: ${events.length} history events`);
      // batchRun-happy-path.json, recorded before the lake was Iceberg (it crawls curated), stays as it is.
      await recordHistory(handle, 'batchRun-iceberg-curated');
    });
  });

  test('a failed quality check fails the run with a non-retryable DataQualityError naming the check', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.failQuality.add(window.from);
    await withWorker(env, stubs, async (taskQueue) => {
      const handle = await env.client.workflow.start(batchRun, { taskQueue, workflowId: `batch-${randomUUID()}`, args: [{ window }] });
      const err = await handle.result().then(
        () => assert.fail('the run should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.ok(err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, DATA_QUALITY_ERROR);
      assert.equal(err.cause.nonRetryable, true);
      assert.match(err.cause.message, /no_null_locations \(3 gps rows without location\)/);
      assert.doesNotMatch(err.cause.message, /raw_curated_warehouse_counts_match/);
      const [details] = err.cause.details as [{ failedChecks: { name: string }[] }];
      assert.deepEqual(details.failedChecks.map((c) => c.name), ['no_null_locations']);
      assert.equal(stubs.callsOf('checkQuality').length, 1, 'the quality check is not retried');
      assert.equal((await handle.query(batchRunStatusQuery)).stage, 'quality');
    });
  });

  test('started with {} it runs the most recent closed window of the default size', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue) => {
      const handle = await env.client.workflow.start(batchRun, { taskQueue, workflowId: `batch-${randomUUID()}`, args: [{}] });
      const result = await handle.result();
      const started = (await handle.describe()).startTime.getTime();
      const from = Date.parse(result.window.from);
      const to = Date.parse(result.window.to);
      assert.equal(to - from, 5 * MINUTE);
      assert.equal(from % (5 * MINUTE), 0, 'aligned to the window size');
      assert.ok(to + MINUTE <= started, 'closed: its end plus the allowed lateness had passed');
      assert.ok(to + MINUTE + 5 * MINUTE > started, 'the most recent such window');
    });
  });

  test('rejects a malformed input with a non-retryable InvalidInput failure naming the field', TIMEOUT, async () => {
    await withWorker(env, new Stubs(), async (taskQueue) => {
      const err = await env.client.workflow
        .execute('batchRun', { taskQueue, workflowId: `batch-${randomUUID()}`, args: [{ window: { from: window.to, to: window.from } }] })
        .then(
          () => assert.fail('the run should fail'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure);
      assert.equal(err.cause.type, INVALID_INPUT);
      assert.match(err.cause.message, /window: from must be before to/);
    });
  });
});
