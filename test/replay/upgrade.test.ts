// Shipping a workflow change while runs are open (README, "Upgrading without stopping"). A batchRun
// history recorded with today's code stands for a run that is open when new code is deployed; the
// change (test/fixtures/upgrade: a timer before the first stage) is replayed against it in each of
// the shapes it takes through the patch lifecycle: patched() → deprecatePatch() → removed. Runs of
// each step are recorded live here (time-skipping server, stub activities) for the next step.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import type { History } from '@temporalio/common/lib/proto-utils';
import { loadConfig } from '../../config';
import { createTimeSkippingEnv, workflowBundle } from '../helpers/temporal';
import { Stubs } from '../workflows/stubs';
import { PATCH_ID } from '../fixtures/upgrade/change';

type Step = 'patched' | 'deprecated' | 'unguarded';
const WINDOW = { from: '2024-05-01T12:00:00.000Z', to: '2024-05-01T12:05:00.000Z' };
// Recorded from workflows/batch-run.ts as it is committed (test/workflows/batch-run.test.ts).
const openBeforeDeploy: unknown = JSON.parse(readFileSync(join(__dirname, '..', 'histories', 'batchRun-happy-path.json'), 'utf8'));

const bundle = (step: Step) => workflowBundle(require.resolve(`../fixtures/upgrade/${step}`));

async function replay(step: Step, history: unknown): Promise<void> {
  await Worker.runReplayHistory({ workflowBundle: await bundle(step) }, history, `replay-${step}`);
}

async function assertNondeterministic(step: Step, history: unknown): Promise<void> {
  await assert.rejects(replay(step, history), (err: Error) => {
    assert.ok(err instanceof DeterminismViolationError, `${err.name}: ${err.message}`);
    return true;
  });
}

describe('shipping a workflow change with patching', { timeout: 5 * 60_000 }, () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await createTimeSkippingEnv(loadConfig());
  });
  after(() => env?.teardown());

  /** A batchRun started and completed on a worker running the code of `step`: a run open during the next deploy. */
  async function recordRun(step: Step): Promise<History> {
    const taskQueue = `upgrade-${step}-${randomUUID()}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await bundle(step), activities: new Stubs().activities });
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start('batchRun', { taskQueue, workflowId: `upgrade-${randomUUID()}`, args: [{ window: WINDOW }] });
      await handle.result();
      return handle.fetchHistory();
    });
  }

  test('the change without a patch breaks a run that was open when it was deployed', async () => {
    await assertNondeterministic('unguarded', openBeforeDeploy);
  });

  test('step 1, patched(): the open run replays on the old path; a new run takes the new one', async () => {
    await replay('patched', openBeforeDeploy);
    const fresh = await recordRun('patched');
    // batchRun's own patches record markers too: count the fixture's.
    const patchOf = (data: Uint8Array | null | undefined) => (data ? (JSON.parse(Buffer.from(data).toString()) as { id?: string }).id : undefined);
    const markers = (fresh.events ?? []).filter((e) => patchOf(e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data) === PATCH_ID);
    assert.equal(markers.length, 1, 'a new run records the patch marker');
    await replay('patched', fresh);
  });

  test('step 2, deprecatePatch(): replays runs from step 1, but not runs from before it — deploy it once those closed', async () => {
    await replay('deprecated', await recordRun('patched'));
    await assertNondeterministic('deprecated', openBeforeDeploy);
  });

  test('step 3, the patch call removed: replays runs from step 2, but not runs from step 1 — deploy it once those closed', async () => {
    await replay('unguarded', await recordRun('deprecated'));
    await assertNondeterministic('unguarded', await recordRun('patched'));
  });
});
