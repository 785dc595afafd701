// The smartcity worker: workflows and the pipeline's activities on the task queue, and the fleet's
// producer activities on a queue of their own (<task queue>-fleet) with a separate slot budget, so
// however much a fleet produces, the pipeline's activities start at once. Activities are bound to
// the configured target at start-up. Production starts load the prebuilt workflow bundle
// (`npm run build:workflows`); without it the worker bundles workflows/ itself.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode, Worker, type WorkerOptions } from '@temporalio/worker';
import { PROJECT_ROOT, type Config } from '../config';
import { createActivities } from '../activities';
import { logAtLeast } from '../logging';
import { startPipelineMetrics } from '../metrics';
import { connectWorker } from '../temporal/connection';
import { fleetTaskQueue } from '../workflows/ids';

export const WORKFLOWS_PATH = join(PROJECT_ROOT, 'workflows', 'index.ts');
export const WORKFLOW_BUNDLE_PATH = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

/** Bundles workflows/ ahead of time, so a production worker starts without webpack. */
export async function buildWorkflowBundle(path = WORKFLOW_BUNDLE_PATH): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: logAtLeast('WARN') });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, code);
  return path;
}

async function workflowSource(): Promise<Pick<WorkerOptions, 'workflowBundle'>> {
  if (existsSync(WORKFLOW_BUNDLE_PATH)) return { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } };
  // Bundling logs webpack's module statistics at INFO; only its warnings and errors are news.
  return { workflowBundle: await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: logAtLeast('WARN') }) };
}

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
      ...(await workflowSource()),
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
