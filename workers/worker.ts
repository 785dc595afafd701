// The smartcity worker: workflows and the pipeline's activities on the task queue, and the fleet's
// producer activities on a queue of their own (<task queue>-fleet) with a separate slot budget, so
// however much a fleet produces, the pipeline's activities start at once. Activities are bound to
// the configured target at start-up. Workflows come from the bundle in dist/ (workers/bundle.ts),
// built once and reused by every worker while workflows/ and its dependencies are unchanged.
import { Worker, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../config';
import { createActivities } from '../activities';
import { startPipelineMetrics } from '../metrics';
import { workflowBundlePath } from './bundle';
import { connectWorker } from '../temporal/connection';
import { fleetTaskQueue } from '../workflows/ids';

export interface RunningWorker {
  /** Workflows and the pipeline's activities, on config.temporal.taskQueue. */
  worker: Worker;
  /** The fleet's producer activities, on fleetTaskQueue(config.temporal.taskQueue). */
  fleetWorker: Worker;
  /** Resolves when both have shut down (one stopping stops the other) and resources are released. */
  done: Promise<void>;
}

/**
 * Slots on the fleet's queue: a fleet run holds at most MAX_SLICES (8) of them, so this runs a few
 * fleets at once. What bounds a fleet is CPU and Kafka, not slots: a slice is mostly waiting.
 */
const FLEET_SLOTS = 32;

/**
 * Connects and starts polling. SIGINT/SIGTERM (installed by the SDK's runtime) begin a graceful
 * shutdown: no new tasks, running activities are cancelled and given `shutdownGraceTime` to
 * flush, then the Kafka producer and other resources are closed. `overrides` apply to the
 * pipeline's worker (tests put stub activities there).
 */
export async function startWorker(config: Config, overrides: Partial<WorkerOptions> = {}, options: { metrics?: boolean } = {}): Promise<RunningWorker> {
  const connection = await connectWorker(config);
  const activitySet = createActivities(config);
  const { produceFleetSlice, ...pipelineActivities } = activitySet.activities;
  // Exported by the Runtime's Prometheus exporter (workers/runtime.ts), which must be installed.
  const metrics = options.metrics ? startPipelineMetrics(config, { producerStats: activitySet.producerStats }) : undefined;
  const common = {
    connection,
    namespace: config.temporal.namespace,
    shutdownGraceTime: '30s',
    ...(metrics && { interceptors: { activity: [metrics.activityInterceptor] } }),
  } as const;
  let worker: Worker;
  let fleetWorker: Worker;
  try {
    worker = await Worker.create({
      ...common,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: { codePath: await workflowBundlePath() },
      activities: pipelineActivities,
      // Spark jobs, DuckDB loads and the streaming job's watch; fleets have their own slots below.
      maxConcurrentActivityTaskExecutions: 64,
      ...overrides,
    });
    fleetWorker = await Worker.create({
      ...common,
      taskQueue: fleetTaskQueue(config.temporal.taskQueue),
      activities: { produceFleetSlice },
      maxConcurrentActivityTaskExecutions: FLEET_SLOTS,
    });
  } catch (err) {
    await metrics?.stop();
    throw err;
  }
  const stop = (w: Worker) => {
    if (w.getState() === 'RUNNING') w.shutdown();
  };
  const done = Promise.all([worker.run().finally(() => stop(fleetWorker)), fleetWorker.run().finally(() => stop(worker))]).finally(async () => {
    await metrics?.stop();
    await activitySet.close();
    await connection.close();
  });
  return { worker, fleetWorker, done: done.then(() => undefined) };
}
