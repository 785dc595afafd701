import { z } from 'zod';
import { loadConfig } from '../config';
import { log } from '../logging';
import { installWorkerRuntime, metricsAddress } from '../workers/runtime';
import { bundleIsCurrent, buildWorkflowBundle, WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH } from '../workers/bundle';
import { startWorker } from '../workers/worker';
import { fleetTaskQueue } from '../workflows/ids';
import { parseCommandLine } from './args';

export const WORKER_USAGE = `smartcity worker [--build-bundle]

  Runs the smartcity worker (workflows and activities of the configured target) on the task
  queue SMARTCITY_TASK_QUEUE (default smartcity), and the fleet's producer activities on
  <task queue>-fleet with slots of their own, until Ctrl-C / SIGTERM, then shuts down
  gracefully. It serves Prometheus metrics on SMARTCITY_METRICS_PORT (default 9464; 0: none)
  and logs as SMARTCITY_LOG_FORMAT says (human, or json: one object per line).
  --build-bundle writes the workflow bundle (dist/) unless it is current, and exits: every worker
  then starts without bundling (workers/bundle.ts keeps it current by the content of its files).`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, { 'build-bundle': { type: 'boolean' } }, z.object({ 'build-bundle': z.boolean().optional() }));
  if (values['build-bundle']) {
    if (bundleIsCurrent(WORKFLOW_BUNDLE_PATH, WORKFLOWS_PATH)) console.log(`workflow bundle ${WORKFLOW_BUNDLE_PATH} is current`);
    else console.log(`workflow bundle written to ${await buildWorkflowBundle()}`);
    return 0;
  }
  const config = loadConfig();
  installWorkerRuntime(config);
  const metrics = metricsAddress(config);
  const { done } = await startWorker(config, {}, { metrics: metrics !== undefined });
  log.info(
    `worker polling task queue ${config.temporal.taskQueue} (workflows, pipeline activities) and ${fleetTaskQueue(config.temporal.taskQueue)} (fleet producers) ` +
      `at ${config.temporal.address} (target ${config.target}); Ctrl-C stops it`,
    { metrics: metrics === undefined ? 'off' : `http://${metrics}/metrics` },
  );
  await done;
  return 0;
}
