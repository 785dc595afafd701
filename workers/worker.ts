// The smartcity worker: one task queue for workflows and activities, activities bound to the
// configured target at start-up. Production starts load the prebuilt workflow bundle
// (`npm run build:workflows`); without it the worker bundles workflows/ itself.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode, Worker, type WorkerOptions } from '@temporalio/worker';
import { PROJECT_ROOT, type Config } from '../config';
import { createActivities } from '../activities';
import { logAtLeast } from '../logging';
import { startPipelineMetrics } from '../metrics';
import { connectWorker } from '../temporal/connection';

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
  worker: Worker;
  /** Resolves when the worker has shut down and its resources are released. */
  done: Promise<void>;
}

/**
 * Connects and starts polling. SIGINT/SIGTERM (installed by the SDK's runtime) begin a graceful
 * shutdown: no new tasks, running activities are cancelled and given `shutdownGraceTime` to
 * flush, then the Kafka producer and other resources are closed.
 */
export async function startWorker(config: Config, overrides: Partial<WorkerOptions> = {}, options: { metrics?: boolean } = {}): Promise<RunningWorker> {
  const connection = await connectWorker(config);
  const activitySet = createActivities(config);
  // Exported by the Runtime's Prometheus exporter (workers/runtime.ts), which must be installed.
  const metrics = options.metrics ? startPipelineMetrics(config, { producerStats: activitySet.producerStats }) : undefined;
  let worker: Worker;
  try {
    worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      ...(await workflowSource()),
      activities: activitySet.activities,
      // Journeys of a fleet run concurrently and mostly wait (pacing, Kafka acks); Spark jobs and
      // DuckDB loads are few. Bounded so a big fleet cannot starve batch runs of slots.
      maxConcurrentActivityTaskExecutions: 64,
      shutdownGraceTime: '30s',
      ...(metrics && { interceptors: { activity: [metrics.activityInterceptor] } }),
      ...overrides,
    });
  } catch (err) {
    await metrics?.stop();
    throw err;
  }
  const done = worker.run().finally(async () => {
    await metrics?.stop();
    await activitySet.close();
    await connection.close();
  });
  return { worker, done };
}
