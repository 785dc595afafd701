import { WorkflowNotFoundError } from '@temporalio/client';
import { loadConfig, type Config } from '../config';
import { runningSparkJobs } from '../spark/runner';
import { stackDown, stackStatus, stackUp, type StackInfo } from '../stack';
import { connectClient } from '../temporal/connection';
import { PIPELINE_WORKFLOW_ID } from '../workflows/ids';
import { parseCommandLine, UsageError } from './args';
import { z } from 'zod';

export const STACK_USAGE = `smartcity stack up [--metrics] [--spark-cluster] | down [--force] | status [--json]

  up       start the Temporal dev server (gRPC, Web UI) and the Kafka broker, wait until both
           answer, create the topics, print the URLs (state kept under .data/)
             --metrics         also Debian's Prometheus (SMARTCITY_PROMETHEUS_PORT, default 9090)
                               scraping the worker's metrics (SMARTCITY_METRICS_PORT) with the
                               alert rules of ops/prometheus
             --spark-cluster   also a Spark standalone master and two workers on loopback
                               (master 7077, UI 8080, worker UIs 8081-8082); jobs run on it with
                               SMARTCITY_SPARK_MASTER=spark://127.0.0.1:7077
  down     stop exactly what \`up\` started. While a pipeline runs here (the controller open in
           Temporal, or a Spark job of this data dir) it stops nothing and says how to stop the
           pipeline first (\`smartcity pipeline stop\`)
             --force           stop the stack anyway, with the Spark jobs of this data dir
  status   show each component`;

const ACTION_OPTIONS: Record<string, string[]> = { up: ['json', 'spark-cluster', 'metrics'], down: ['force'], status: ['json'] };

export function printStack(info: StackInfo, out: (line: string) => void): void {
  for (const c of info.components) {
    const state = c.state === 'running' ? (c.answering ? 'running' : 'running, not answering') : c.answering ? 'stopped (ports answer: another process?)' : 'stopped';
    out(`  ${c.label.padEnd(20)} ${state.padEnd(24)} ports ${c.ports.join(', ')}${c.pid ? `  pid ${c.pid}` : ''}`);
  }
  out(`  Temporal gRPC        ${info.urls.temporal}`);
  out(`  Temporal Web UI      ${info.urls.temporalUi}`);
  out(`  Kafka bootstrap      ${info.urls.kafka}`);
  if (info.urls.sparkMaster) out(`  Spark master         ${info.urls.sparkMaster}`);
  if (info.urls.sparkMasterUi) out(`  Spark master UI      ${info.urls.sparkMasterUi}`);
  if (info.urls.prometheus) out(`  Prometheus           ${info.urls.prometheus}`);
}

/**
 * What of a pipeline still runs on this stack: the controller, when this stack's Temporal runs
 * (asked directly: the status's quick probe can miss a busy server), and the Spark jobs of this
 * data dir (a job can outlive a controller that was stopped without a worker).
 */
export async function runningPipeline(config: Config, warn: (line: string) => void): Promise<string[]> {
  const found: string[] = [];
  const temporal = (await stackStatus(config)).components.find((c) => c.name === 'temporal');
  if (temporal?.state === 'running' || temporal?.answering) {
    try {
      const { client, close } = await connectClient(config);
      try {
        const { status } = await client.workflow.getHandle(PIPELINE_WORKFLOW_ID).describe();
        if (status.name === 'RUNNING') found.push(`the controller ${PIPELINE_WORKFLOW_ID} is open in Temporal`);
      } finally {
        await close();
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) warn(`could not ask Temporal whether ${PIPELINE_WORKFLOW_ID} runs: ${(err as Error).message}`);
    }
  }
  for (const job of await runningSparkJobs(config)) found.push(`Spark job ${job.name} runs (pid ${job.pid})`);
  return found;
}

export async function stackCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    { json: { type: 'boolean' }, 'spark-cluster': { type: 'boolean' }, metrics: { type: 'boolean' }, force: { type: 'boolean' } },
    z.object({ json: z.boolean().optional(), 'spark-cluster': z.boolean().optional(), metrics: z.boolean().optional(), force: z.boolean().optional() }),
    { max: 1 },
  );
  const action = positionals[0];
  if (action === undefined || !(action in ACTION_OPTIONS)) {
    throw new UsageError(action === undefined ? `stack needs an action: up, down or status` : `unknown stack action "${action}"; expected up, down or status`);
  }
  const stray = Object.keys(values).find((k) => !ACTION_OPTIONS[action]!.includes(k));
  if (stray) throw new UsageError(`--${stray} does not apply to \`stack ${action}\``);
  const config = loadConfig();
  const out = (line: string) => console.log(line);
  const emit = (info: StackInfo) => (values.json ? out(JSON.stringify(info, null, 2)) : printStack(info, out));
  switch (action) {
    case 'up': {
      const info = await stackUp(config, (line) => console.error(line), { sparkCluster: values['spark-cluster'] === true, metrics: values.metrics === true });
      if (!values.json) out('stack is up:');
      emit(info);
      const master = info.urls.sparkMaster;
      if (master && config.spark.master !== master) {
        console.error(`Spark jobs run on ${config.spark.master}: start the worker with SMARTCITY_SPARK_MASTER=${master} to run them on this cluster`);
      }
      return 0;
    }
    case 'down': {
      // Asked before anything stops: once Temporal is down, `pipeline stop` cannot run.
      const running = await runningPipeline(config, (line) => console.error(line));
      if (running.length > 0) {
        const what = running.map((line) => `  - ${line}`).join('\n');
        if (!values.force) {
          throw new Error(
            `a pipeline still runs here:\n${what}\n` +
              'Stop it first with `smartcity pipeline stop` (it stops the streaming job and the batch runs; a worker must run), then `smartcity stack down`.\n' +
              '`smartcity stack down --force` stops the stack and these Spark jobs now; the controller stays open in Temporal and carries on when the stack and a worker are up again.',
          );
        }
        console.error(`stopping the stack under a running pipeline (--force):\n${what}`);
      }
      const stopped = await stackDown(config);
      out(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing was running');
      return 0;
    }
    case 'status': {
      const info = await stackStatus(config);
      emit(info);
      return info.components.every((c) => c.state === 'running' && c.answering) ? 0 : 3;
    }
  }
  return 0;
}
