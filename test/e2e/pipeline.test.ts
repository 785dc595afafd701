// The local target end to end, through Temporal with the real activities: a fleet simulation
// into Kafka, the streaming job into the raw lake, a backfill batch run through curate, the
// DuckDB catalog and warehouse — and the warehouse holds, per source, exactly what Kafka
// acknowledged. With RECORD_HISTORIES=1 the runs' histories are saved for the replay tests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig, type Config } from '../../config';
import { queryActivities } from '../../activities/queries';
import { sparkJobStatus } from '../../spark/runner';
import { connectClient } from '../../temporal/connection';
import { startWorker, type RunningWorker } from '../../workers/worker';
import {
  DEFAULT_STREAMING_JOB,
  fleetSimulation,
  PIPELINE_WORKFLOW_ID,
  pipelineStatusQuery,
  requestBackfillUpdate,
  smartCityPipeline,
  STREAMING_WORKFLOW_ID,
  type FleetSimulationResult,
} from '../../workflows';
import { SOURCES } from '../../schemas';
import { recordHistory } from '../helpers/temporal';
import { until } from '../helpers/until';

const config: Config = { ...loadConfig(), temporal: { ...loadConfig().temporal, taskQueue: `e2e-${randomUUID()}` } };
// A past hour no other test writes to: the streaming job reads whole topics, and the windows below
// select this run's events by event time.
const window = { from: '2026-03-10T08:00:00.000Z', to: '2026-03-10T08:30:00.000Z' };


describe('local target end to end', { timeout: 15 * 60_000 }, () => {
  let worker: RunningWorker;
  let connection: Awaited<ReturnType<typeof connectClient>>;
  let produced: FleetSimulationResult;
  const handles: Record<string, WorkflowHandle> = {};

  before(async () => {
    worker = await startWorker(config);
    connection = await connectClient(config);
  });

  after(async () => {
    for (const [name, handle] of Object.entries(handles)) await recordHistory(handle, `real-${name}`);
    worker.worker.shutdown();
    await worker.done;
    await connection.close();
  });

  test('fleetSimulation produces a journey chunk by chunk into Kafka', async () => {
    const handle = await connection.client.workflow.start(fleetSimulation, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `e2e-fleet-${randomUUID()}`,
      args: [{ vehicles: 2, seed: 2026, start: '2026-03-10T08:00:00Z', asFastAsPossible: true, durationMinutes: 20 }],
    });
    handles.fleetSimulation = handle;
    produced = await handle.result();
    assert.ok(produced.totals.vehicle > 200 && produced.totals.weather > 20, JSON.stringify(produced.totals));
  });

  test('the controller streams the events into raw and a backfill loads the window into the warehouse', async () => {
    const pipeline = await connection.client.workflow.start(smartCityPipeline, {
      taskQueue: config.temporal.taskQueue,
      workflowId: PIPELINE_WORKFLOW_ID,
      args: [{ windowMinutes: 30, tickSeconds: 5 }],
    });
    handles.smartCityPipeline = pipeline;
    handles.streamingSupervisor = connection.client.workflow.getHandle(STREAMING_WORKFLOW_ID);

    const queries = queryActivities(config);
    await until('the streaming job to land every produced event in raw', async () => {
      const [raw] = await queries.countRawWindows({ windows: [window] });
      return SOURCES.every((s) => raw![s] >= produced.totals[s]) ? raw : undefined;
    }, { timeoutMs: 8 * 60_000, everyMs: 2_000 });

    const outcome = await pipeline.executeUpdate(requestBackfillUpdate, { args: [{ from: window.from, to: window.to }] });
    assert.deepEqual(outcome.accepted, [window]);

    const loaded = await until('the backfilled window to be loaded', async () => {
      const status = await pipeline.query(pipelineStatusQuery);
      const entry = status.windows.find((w) => w.window.from === window.from);
      if (entry?.status === 'failed') throw new Error(`batch run failed: ${entry.lastError?.type}: ${entry.lastError?.message}`);
      return entry?.status === 'loaded' ? entry : undefined;
    }, { timeoutMs: 8 * 60_000, everyMs: 2_000 });
    handles.batchRun = connection.client.workflow.getHandle(loaded.workflowId);
    assert.deepEqual(loaded.rows, produced.totals, 'warehouse rows per source = events Kafka acknowledged');

    const quality = await queries.checkQuality({ window });
    assert.ok(quality.passed, JSON.stringify(quality.checks.filter((c) => !c.passed)));
    assert.deepEqual(quality.counts.warehouse, produced.totals);
  });

  test('stopping the controller stops the streaming job', async () => {
    await handles.smartCityPipeline!.cancel();
    await assert.rejects(handles.smartCityPipeline!.result());
    await until('the streaming job to stop', async () => {
      const status = await sparkJobStatus(config, DEFAULT_STREAMING_JOB);
      return status.state === 'running' ? undefined : status;
    }, { timeoutMs: 3 * 60_000, everyMs: 2_000 });
  });
});
