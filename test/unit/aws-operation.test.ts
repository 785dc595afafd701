import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { allOperations, awaitOperation, runRemoteOperation, sequenceOperations, type RemoteOperation } from '../../activities/aws/operation';
import { mockedAwsDeps, runActivity, type CancelHow } from '../helpers/aws-mock';

const { deps } = mockedAwsDeps();

/** A fake remote run: done after `pollsUntilDone` polls; records every call. */
function fakeOperation(opts: { existing?: string; pollsUntilDone?: number; failOnPoll?: Error } = {}) {
  const calls: string[] = [];
  let polls = 0;
  const op: RemoteOperation<string, { rows: number }> = {
    what: 'fake run',
    find: () => {
      calls.push('find');
      return Promise.resolve(opts.existing);
    },
    start: () => {
      calls.push('start');
      return Promise.resolve('run-new');
    },
    poll: (handle) => {
      calls.push(`poll ${handle}`);
      if (opts.failOnPoll) return Promise.reject(opts.failOnPoll);
      polls += 1;
      return Promise.resolve(polls >= (opts.pollsUntilDone ?? 1) ? { done: true as const, result: { rows: polls } } : { done: false as const, progress: { polls } });
    },
    cancel: (handle) => {
      calls.push(`cancel ${handle}`);
      return Promise.resolve();
    },
  };
  return { op, calls };
}

describe('runRemoteOperation', () => {
  test('starts when nothing runs yet, heartbeats the handle, returns the result', async () => {
    const { op, calls } = fakeOperation({ pollsUntilDone: 3 });
    const run = await runActivity(() => runRemoteOperation(deps, op));
    assert.deepEqual(run.result, { rows: 3 });
    assert.deepEqual(calls, ['find', 'start', 'poll run-new', 'poll run-new', 'poll run-new']);
    assert.deepEqual(run.heartbeats[0], { handle: 'run-new' });
    assert.deepEqual(run.heartbeats[1], { handle: 'run-new', progress: { polls: 1 } });
  });

  test('as a local activity (a chunk window) it does not heartbeat, still finds a run already started', async () => {
    const { op, calls } = fakeOperation({ existing: 'run-old', pollsUntilDone: 2 });
    const run = await runActivity(() => runRemoteOperation(deps, op), { info: { isLocal: true } });
    assert.deepEqual(run.result, { rows: 2 });
    assert.deepEqual(calls, ['find', 'poll run-old', 'poll run-old']);
    assert.deepEqual(run.heartbeats, []);
  });

  test('joins the run already started for the same work instead of starting another', async () => {
    const { op, calls } = fakeOperation({ existing: 'run-old' });
    const run = await runActivity(() => runRemoteOperation(deps, op));
    assert.deepEqual(run.result, { rows: 1 });
    assert.deepEqual(calls, ['find', 'poll run-old']);
  });

  test('a retried attempt resumes the handle from its heartbeat details without find or start', async () => {
    const { op, calls } = fakeOperation();
    const run = await runActivity(() => runRemoteOperation(deps, op), { heartbeatDetails: { handle: 'run-7', progress: { polls: 4 } } });
    assert.deepEqual(run.result, { rows: 1 });
    assert.deepEqual(calls, ['poll run-7']);
  });

  test('a failed remote run fails the activity with its evidence and is not cancelled', async () => {
    const failure = ApplicationFailure.nonRetryable('run failed: OutOfMemory; logs in /aws-glue/jobs/error', 'Glue.JobRunFailed');
    const { op, calls } = fakeOperation({ failOnPoll: failure });
    const run = await runActivity(() => runRemoteOperation(deps, op));
    assert.equal(run.error, failure);
    assert.deepEqual(calls, ['find', 'start', 'poll run-new']);
  });

  test('a workflow cancellation stops the remote work, then the activity reports cancelled', async () => {
    const { op, calls } = fakeOperation({ pollsUntilDone: 1_000_000 });
    const run = await runActivity(() => runRemoteOperation(deps, op), { cancel: { afterHeartbeats: 3, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
    assert.equal(calls.at(-1), 'cancel run-new');
    assert.equal(calls.filter((c) => c.startsWith('cancel')).length, 1);
  });

  for (const how of ['worker-shutdown', 'heartbeat-timeout'] as CancelHow[]) {
    test(`a ${how} leaves the remote work running for the next attempt`, async () => {
      const { op, calls } = fakeOperation({ pollsUntilDone: 1_000_000 });
      const run = await runActivity(() => runRemoteOperation(deps, op), { cancel: { afterHeartbeats: 2, how } });
      assert.ok(run.error instanceof CancelledFailure, String(run.error));
      assert.ok(!calls.some((c) => c.startsWith('cancel')), calls.join(', '));
    });
  }

  test('a failing stop call does not hide the cancellation', async () => {
    const { op } = fakeOperation({ pollsUntilDone: 1_000_000 });
    op.cancel = () => Promise.reject(new Error('stop failed'));
    const run = await runActivity(() => runRemoteOperation(deps, op), { cancel: { afterHeartbeats: 2, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
  });
});

describe('sequenceOperations', () => {
  /** A fake run whose handle is `<name>-run`; done after `pollsUntilDone` polls; calls recorded in `calls`. */
  function named(name: string, calls: string[], pollsUntilDone = 1): RemoteOperation<string, string> {
    let polls = 0;
    return {
      what: name,
      start: () => {
        calls.push(`start ${name}`);
        return Promise.resolve(`${name}-run`);
      },
      poll: (handle) => {
        calls.push(`poll ${handle}`);
        polls += 1;
        return Promise.resolve(polls >= pollsUntilDone ? { done: true as const, result: `${name} done` } : { done: false as const, progress: { polls } });
      },
      cancel: (handle) => {
        calls.push(`cancel ${handle}`);
        return Promise.resolve();
      },
    };
  }

  test('starts the second operation only once the first finished, heartbeating the handle of whichever runs', async () => {
    const calls: string[] = [];
    const first = named('schema', calls, 2);
    const then = allOperations('loads', { gps: named('gps', calls, 2) });
    const run = await runActivity(() => runRemoteOperation(deps, sequenceOperations('load', first, () => then)));
    assert.deepEqual(run.result, { gps: 'gps done' });
    assert.deepEqual(calls, ['start schema', 'poll schema-run', 'poll schema-run', 'start gps', 'poll gps-run', 'poll gps-run']);
    assert.deepEqual(
      run.heartbeats.map((h) => (h as { handle: unknown }).handle),
      [{ phase: 'first', handle: 'schema-run' }, { phase: 'first', handle: 'schema-run' }, { phase: 'then', handle: { gps: 'gps-run' } }, { phase: 'then', handle: { gps: 'gps-run' } }],
    );
  });

  test('a retry resumes the phase its heartbeat names; a workflow cancel stops the running one', async () => {
    const calls: string[] = [];
    const resumed = await runActivity(() => runRemoteOperation(deps, sequenceOperations('load', named('schema', calls), () => named('gps', calls))), {
      heartbeatDetails: { handle: { phase: 'then', handle: 'gps-old' } },
    });
    assert.equal(resumed.result, 'gps done');
    assert.deepEqual(calls, ['poll gps-old']);

    const cancelled: string[] = [];
    const run = await runActivity(() => runRemoteOperation(deps, sequenceOperations('load', named('schema', cancelled, 1_000), () => named('gps', cancelled))), {
      cancel: { afterHeartbeats: 2, how: 'workflow' },
    });
    assert.ok(run.error instanceof CancelledFailure);
    assert.deepEqual(cancelled.filter((c) => c.startsWith('cancel') || c.startsWith('start')), ['start schema', 'cancel schema-run']);
  });

  test('a heartbeat of another shape (a version that ran the work as one operation) starts over from the first operation', async () => {
    const calls: string[] = [];
    const run = await runActivity(() => runRemoteOperation(deps, sequenceOperations('load', named('schema', calls), () => named('gps', calls))), {
      heartbeatDetails: { handle: { gps: 'stmt-gps', vehicle: 'stmt-vehicle' } },
    });
    assert.equal(run.result, 'gps done');
    assert.deepEqual(calls, ['start schema', 'poll schema-run', 'start gps', 'poll gps-run']);
  });

  test('awaitOperation (no activity) follows the hand-over too', async () => {
    const calls: string[] = [];
    assert.equal(await awaitOperation(deps, sequenceOperations('load', named('schema', calls), () => named('gps', calls)), 10_000), 'gps done');
    assert.deepEqual(calls, ['start schema', 'poll schema-run', 'start gps', 'poll gps-run']);
  });
});
