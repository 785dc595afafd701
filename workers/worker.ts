// The smartcity worker: one task queue for workflows and activities, activities bound to the
// configured target at start-up. Production starts load the prebuilt workflow bundle
// (`npm run build:workflows`); without it the worker bundles workflows/ itself.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode, Worker, type WorkerOptions } from '@temporalio/worker';
import { PROJECT_ROOT, type Config } from '../config';
import { createActivities } from '../activities';
import { connectWorker } from '../temporal/connection';

export const WORKFLOWS_PATH = join(PROJECT_ROOT, 'workflows', 'index.ts');
export const WORKFLOW_BUNDLE_PATH = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

/** Bundles workflows/ ahead of time, so a production worker starts without webpack. */
export async function buildWorkflowBundle(path = WORKFLOW_BUNDLE_PATH): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, code);
  return path;
}

function workflowSource(): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return existsSync(WORKFLOW_BUNDLE_PATH) ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } } : { workflowsPath: WORKFLOWS_PATH };
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
export async function startWorker(config: Config, overrides: Partial<WorkerOptions> = {}): Promise<RunningWorker> {
  const connection = await connectWorker(config);
  const activitySet = createActivities(config);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflowSource(),
    activities: activitySet.activities,
    // Journeys of a fleet run concurrently and mostly wait (pacing, Kafka acks); Spark jobs and
    // DuckDB loads are few. Bounded so a big fleet cannot starve batch runs of slots.
    maxConcurrentActivityTaskExecutions: 64,
    shutdownGraceTime: '30s',
    ...overrides,
  });
  const done = worker.run().finally(async () => {
    await activitySet.close();
    await connection.close();
  });
  return { worker, done };
}
