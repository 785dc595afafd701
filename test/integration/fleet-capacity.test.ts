// A 1,000-vehicle fleet at real time does not take the pipeline's capacity: with the worker as
// workers/worker.ts runs it (the pipeline's queue and the fleet's queue, each with its own slots),
// the fleet producing into the test stack's Kafka through the real produceFleetSlice, the
// controller's batch runs complete within seconds of their windows closing and `smartcity
// pipeline stop` stops the streaming job within seconds.
//
// The pipeline's own activities are the workflow tests' stubs (test/workflows/stubs.ts): with Spark
// a batch run takes minutes on a shared 2-core machine and the test would measure Spark, not
// whether the activities start. Before slicing, this fleet was 1,000 activities holding the 64
// slots of the pipeline's queue, and none of these activities would have started.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { WorkflowHandle } from '@temporalio/client';
import type { PipelineActivities } from '../../activities/types';
import { loadConfig, type Config } from '../../config';
import { connectClient } from '../../temporal/connection';
import { startWorker, type RunningWorker } from '../../workers/worker';
import { fleetSimulation, fleetStatusQuery, MAX_SLICES, PIPELINE_WORKFLOW_ID, pipelineStatusQuery, smartCityPipeline } from '../../workflows';
import { Child } from '../helpers/child';
import { Stubs, closeWorkflow } from '../workflows/stubs';
import { until, type UntilOptions } from '../helpers/until';

const base = loadConfig();
const config: Config = {
  ...base,
  temporal: { ...base.temporal, taskQueue: `capacity-${randomUUID()}` },
};
const VEHICLES = 1_000;
const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
/** Up to 3 minutes: the fleet and the pipeline share two cores here. */
const WAIT: UntilOptions = { timeoutMs: 3 * 60_000 };

describe('a 1,000-vehicle fleet at real time beside the pipeline', { timeout: 15 * 60_000 }, () => {
  const stubs = new Stubs();
  const activities: PipelineActivities = {
    ...stubs.activities,
    // Waits as the real watch does (until its deadline or a cancellation), instead of returning at once.
    watchStreamingJob: async (input) => {
      await Context.current().sleep(Math.min(input.maxWaitSeconds, 5) * 1000);
      return stubs.activities.watchStreamingJob(input);
    },
  };
  let worker: RunningWorker;
  let connection: Awaited<ReturnType<typeof connectClient>>;
  let fleet: WorkflowHandle<typeof fleetSimulation>;

  before(async () => {
    connection = await connectClient(config);
    // The controller's id is fixed: another test's controller must have finished.
    await until('no other smartcity-pipeline to run', async () => {
      const running = await connection.client.workflow
        .getHandle(PIPELINE_WORKFLOW_ID)
        .describe()
        .then((d) => d.status.name === 'RUNNING')
        .catch(() => false);
      return running ? undefined : true;
    }, WAIT);
    worker = await startWorker(config, { activities });
    fleet = await connection.client.workflow.start(fleetSimulation, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `capacity-fleet-${randomUUID()}`,
      args: [
        {
          vehicles: VEHICLES,
          seed: 15,
          start: new Date().toISOString(),
          speedup: 1,
        },
      ],
    });
  });

  after(async () => {
    if (fleet) await closeWorkflow(fleet);
    await closeWorkflow(connection.client.workflow.getHandle(PIPELINE_WORKFLOW_ID)).catch(() => undefined);
    if (worker) {
      worker.worker.shutdown();
      await worker.done;
    }
    await connection?.close();
  });

  test('the fleet is a handful of slice activities on its own queue, producing', async () => {
    const status = await until('every slice to run and Kafka to acknowledge events', async () => {
      const s = await fleet.query(fleetStatusQuery).catch(() => undefined);
      return s && s.parts.every((p) => p.running) && total(s.totals) > 0 ? s : undefined;
    }, WAIT);
    assert.ok(status.parts.length <= MAX_SLICES);
    assert.equal(
      status.parts.reduce((n, p) => n + p.vehicles, 0),
      VEHICLES,
    );
    const { raw } = await fleet.describe();
    assert.equal(raw.pendingActivities?.length, status.parts.length, 'one pending activity per slice');
    assert.equal(stubs.callsOf('produceFleetSlice').length, 0, "no slice ran on the pipeline's queue");
  });

  test('batch runs of the windows that closed complete within seconds', async () => {
    const startedAt = Date.now();
    const minute = 60_000;
    const controller = await connection.client.workflow.start(smartCityPipeline, {
      taskQueue: config.temporal.taskQueue,
      workflowId: PIPELINE_WORKFLOW_ID,
      // Two windows have closed already; the current one closes within the minute.
      args: [
        {
          windowMinutes: 1,
          allowedLatenessSeconds: 0,
          tickSeconds: 5,
          startAt: new Date(Math.floor(startedAt / minute - 2) * minute).toISOString(),
        },
      ],
    });
    const status = await until(
      'three windows loaded',
      async () => {
        const s = await controller.query(pipelineStatusQuery).catch(() => undefined);
        return s && s.windows.filter((w) => w.status === 'loaded').length >= 3 ? s : undefined;
      },
      { timeoutMs: 4 * minute },
    );
    for (const record of status.windows.filter((w) => w.status === 'loaded')) {
      const run = await connection.client.workflow.getHandle(record.workflowId).describe();
      const tookMs = run.closeTime!.getTime() - run.startTime.getTime();
      assert.ok(tookMs < 30_000, `the batch run of ${record.window.from} took ${tookMs} ms`);
      // A window is run once it has closed, at the controller's next tick (5 s).
      const closedAt = Math.max(Date.parse(record.window.to), startedAt);
      assert.ok(
        run.startTime.getTime() - closedAt < 30_000,
        `the batch run of ${record.window.from} started ${run.startTime.getTime() - closedAt} ms after its window closed`,
      );
    }
    assert.ok(stubs.callsOf('startStreamingJob').length >= 1, 'the streaming job was started');
  });

  test('`smartcity pipeline stop` stops the streaming job within seconds, while the fleet goes on', async () => {
    const before = total((await fleet.query(fleetStatusQuery)).totals);
    const stoppedAt = Date.now();
    const stop = new Child(['pipeline', 'stop'], {
      SMARTCITY_TASK_QUEUE: config.temporal.taskQueue,
    });
    assert.equal(await stop.exited, 0, stop.stderr);
    await until('the streaming job to be stopped', async () => (stubs.callsOf('stopStreamingJob').length > 0 ? true : undefined), { timeoutMs: 60_000 });
    const tookMs = Date.now() - stoppedAt;
    assert.ok(tookMs < 30_000, `the streaming job was stopped ${tookMs} ms after \`pipeline stop\` was run`);
    await until('the controller to close', async () => {
      const { status } = await connection.client.workflow.getHandle(PIPELINE_WORKFLOW_ID).describe();
      return status.name === 'RUNNING' ? undefined : true;
    }, WAIT);
    // Slices report their counts every 10 s: the fleet's total moves past `before` within a report or two.
    const after = await until(
      'the fleet to report more events after the stop',
      async () => {
        const s = await fleet.query(fleetStatusQuery);
        return total(s.totals) > before ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.ok(after.parts.some((p) => p.running));
  });
});
