// streamingSupervisor on the time-skipping server with stub activities.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv } from '../helpers/temporal';
import { streamingPauseSignal, streamingResumeSignal, streamingStatusQuery, streamingSupervisor, type StreamingStatus } from '../../workflows';
import type { StreamingJobSpec } from '../../activities/types';
import { POLL, Stubs, TIMEOUT, recordHistory, withWorker, workflowBundle } from './stubs';
import { until, when } from '../helpers/until';

const status = (handle: WorkflowHandle) => handle.query(streamingStatusQuery);

/**
 * Waits until the job runs and a watch result past micro-batch `batchId` is in, so the supervisor
 * sleeps between watches. (Cancelling the stub's instant watch as it completes races on the test
 * server, which then holds the workflow task for its full timeout.)
 */
const running = (handle: WorkflowHandle, batchId = 0) =>
  until(`the job runs past micro-batch ${batchId}`, when(() => status(handle), (s) => s.state === 'running' && (s.lastProgress?.batchId ?? 0) > batchId), POLL);

async function cancelAndWait(handle: WorkflowHandle): Promise<unknown> {
  await handle.cancel();
  return handle.result().then(
    () => assert.fail('a cancelled supervisor does not complete'),
    (err: unknown) => err,
  );
}

describe('streamingSupervisor', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    [env] = await Promise.all([createTimeSkippingEnv(loadConfig()), workflowBundle()]);
  });
  after(() => env?.teardown());

  test('restarts a crashed job with growing backoff and shows the crash reason', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.watchScript.push(
      { state: 'failed', exitCode: 1, failure: 'java.lang.OutOfMemoryError: Java heap space' },
      { state: 'failed', exitCode: 1, failure: 'java.lang.OutOfMemoryError: Java heap space' },
      { state: 'stopped', exitCode: 137 },
    );
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(streamingSupervisor, {
        taskQueue,
        workflowId: `streaming-${randomUUID()}`,
        args: [{ initialBackoffSeconds: 10, maxBackoffSeconds: 30 }],
      }));
      const crashed = await until('the first crash', when(() => status(handle), (s) => s.state === 'restarting'), POLL);
      assert.match(crashed.lastCrash?.reason ?? '', /smartcity-ingest failed \(exit code 1\): java.lang.OutOfMemoryError: Java heap space/);
      assert.equal(Date.parse(crashed.nextRestartAt ?? '') - Date.parse(crashed.lastCrash?.at ?? ''), 10_000);

      await env.sleep('3 minutes');
      const recovered = await status(handle);
      assert.equal(recovered.state, 'running');
      assert.equal(recovered.restarts, 3);
      assert.match(recovered.lastCrash?.reason ?? '', /smartcity-ingest stopped \(exit code 137\)/);
      assert.equal(recovered.nextRestartAt, undefined);
      assert.ok(recovered.lastProgress, 'the last micro-batch is shown');

      const starts = stubs.callsOf('startStreamingJob').map((c) => c.scheduledAtMs);
      const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
      assert.equal(gaps.length, 3);
      [10_000, 20_000, 30_000].forEach((expected, i) => assert.ok(Math.abs(gaps[i]! - expected) < 1000, `backoff ${i + 1}: ${gaps[i]} ms, expected ${expected}`));
      assert.ok(stubs.callsOf('startStreamingJob').every((c) => (c.input as { jobName: string }).jobName === 'smartcity-ingest'), 'one job name: its checkpoint resumes');
      await cancelAndWait(handle);
    });
  });

  test('pause stops the job and keeps it stopped; resume starts it again', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(streamingSupervisor, { taskQueue, workflowId: `streaming-${randomUUID()}`, args: [{}] }));
      await running(handle);

      await handle.signal(streamingPauseSignal);
      const paused = await until('paused', when(() => status(handle), (s) => s.state === 'paused'), POLL);
      await until('the job is stopped', when(async () => stubs.callsOf('stopStreamingJob').length, (n) => n === 1), POLL);
      assert.equal(stubs.jobRunning, false);
      const callsWhenPaused = stubs.calls.length;
      await env.sleep('10 minutes');
      assert.equal(stubs.calls.length, callsWhenPaused, 'nothing is started or watched while paused');
      assert.equal((await status(handle)).state, 'paused');

      await handle.signal(streamingResumeSignal);
      await running(handle, paused.lastProgress?.batchId);
      assert.equal(stubs.callsOf('startStreamingJob').length, 2);
      assert.equal(stubs.jobRunning, true);
      assert.equal((await status(handle)).restarts, 0, 'a resume is not a crash restart');

      await cancelAndWait(handle);
      await recordHistory(handle, 'streamingSupervisor-pause-resume-cancel');
    });
  });

  test('cancelling the supervisor stops the job', TIMEOUT, async () => {
    const stubs = new Stubs();
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(streamingSupervisor, { taskQueue, workflowId: `streaming-${randomUUID()}`, args: [{}] }));
      await running(handle);
      const err = await cancelAndWait(handle);
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, `cancelled: ${String(err)}`);
      assert.deepEqual(
        stubs.callsOf('stopStreamingJob').map((c) => c.input),
        [{ jobName: 'smartcity-ingest', graceSeconds: 90 }],
        'the stop waits past the job’s own 60 s stop timeout, then 30 s more',
      );
      assert.equal((stubs.callsOf('startStreamingJob')[0]?.input as StreamingJobSpec).stopTimeoutSeconds, 60, 'the job is told its stop timeout');
      assert.equal(stubs.jobRunning, false);
      assert.equal((await status(handle)).state, 'stopped');
    });
  });

  test('continues as new past its history threshold, carrying restarts and the running job', TIMEOUT, async () => {
    const stubs = new Stubs();
    stubs.watchScript.push({ state: 'failed', exitCode: 1, failure: 'executor lost' });
    await withWorker(env, stubs, async (taskQueue, track) => {
      const handle = track(await env.client.workflow.start(streamingSupervisor, {
        taskQueue,
        workflowId: `streaming-${randomUUID()}`,
        args: [{ historyThreshold: 20 }],
      }));
      await env.sleep('10 minutes');
      const s: StreamingStatus = await until('continued as new', when(() => status(handle), (v) => v.continuedAsNewCount >= 1), POLL);
      assert.equal(s.state, 'running');
      assert.equal(s.restarts, 1);
      assert.match(s.lastCrash?.reason ?? '', /executor lost/);
      assert.equal(stubs.callsOf('startStreamingJob').length, 2, 'the new run watches the running job instead of starting it again');
      const { runId } = await handle.describe();
      assert.notEqual(runId, handle.firstExecutionRunId);
      await cancelAndWait(handle);
    });
  });

  test('rejects a malformed input naming the field', TIMEOUT, async () => {
    await withWorker(env, new Stubs(), async (taskQueue) => {
      const err = await env.client.workflow
        .execute('streamingSupervisor', { taskQueue, workflowId: `streaming-${randomUUID()}`, args: [{ jobName: '../etc', watchSecond: 5 }] })
        .then(
          () => assert.fail('the run should fail'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /jobName: letters, digits.*; input: Unrecognized key: "watchSecond"/);
    });
  });
});
