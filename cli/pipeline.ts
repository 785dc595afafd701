import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { loadConfig, type Config } from '../config';
import { runningSparkJobs, stopSparkJob } from '../spark/runner';
import { connectClient, workerIsPolling } from '../temporal/connection';
import {
  DEFAULT_STREAMING_JOB,
  PIPELINE_WORKFLOW_ID,
  STREAMING_WORKFLOW_ID,
  pipelinePauseSignal,
  pipelineResumeSignal,
  pipelineRunNowSignal,
  pipelineStatusQuery,
  requestBackfillUpdate,
  smartCityPipeline,
  type PipelineStatus,
  type SmartCityPipelineInput,
} from '../workflows';
import { isoTime, parseCommandLine, positiveInt, UsageError } from './args';

export const PIPELINE_USAGE = `smartcity pipeline <action> [options]

  start       start the controller (workflow id ${PIPELINE_WORKFLOW_ID}) on the worker's task queue
                --window-minutes N (5)  --lateness-seconds S (60)  --tick-seconds S (30)
                --backfill-concurrency N (2)  --no-streaming  --start-at TIME
  status      what it is doing: pause state, next window, queue, running and loaded windows  [--json]
  pause       stop starting batch runs; --all pauses the streaming job too
  resume      continue, catching up every window that closed meanwhile
  backfill    --from TIME --to TIME [--force]: queue the windows of the range (already loaded
              ones are skipped unless --force) and print which were accepted
  run-now     look for closed windows at once (and run windows whose end has passed)
  stop        cancel the controller and wait until its batch runs and the streaming job have
              stopped (the worker stops them); says what still runs if that takes too long`;

const options = {
  'window-minutes': { type: 'string' },
  'lateness-seconds': { type: 'string' },
  'tick-seconds': { type: 'string' },
  'backfill-concurrency': { type: 'string' },
  'no-streaming': { type: 'boolean' },
  'start-at': { type: 'string' },
  json: { type: 'boolean' },
  all: { type: 'boolean' },
  from: { type: 'string' },
  to: { type: 'string' },
  force: { type: 'boolean' },
} as const;

const schema = z.object({
  'window-minutes': positiveInt.optional(),
  'lateness-seconds': z.coerce.number().int().min(0).optional(),
  'tick-seconds': positiveInt.optional(),
  'backfill-concurrency': positiveInt.optional(),
  'no-streaming': z.boolean().optional(),
  'start-at': isoTime.optional(),
  json: z.boolean().optional(),
  all: z.boolean().optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  force: z.boolean().optional(),
});

/** Options that only some actions take: naming one elsewhere is a usage error, not ignored. */
const ACTION_OPTIONS: Record<string, (keyof typeof options)[]> = {
  start: ['window-minutes', 'lateness-seconds', 'tick-seconds', 'backfill-concurrency', 'no-streaming', 'start-at'],
  status: ['json'],
  pause: ['all'],
  resume: [],
  backfill: ['from', 'to', 'force', 'json'],
  'run-now': [],
  stop: [],
};

/** How long a cancelled controller gets to stop its batch runs, and its supervisor the streaming job. */
const STOP_TIMEOUT_MS = 150_000;

/** True once the promise settled either way; false when `timeoutMs` passed first. */
export async function settled(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  const timeout = sleep(Math.max(0, timeoutMs), false, { ref: false });
  return Promise.race([promise.then(() => true, () => true), timeout]);
}

/**
 * Cancels the controller and waits until it and the streaming supervisor have closed: the
 * supervisor stops the streaming job before it closes, and a cancelled batch run stops its curate
 * job. On the local target it then waits for the Spark jobs of the data dir to end, and stops a
 * streaming job whose supervisor closed without stopping it. Returns what still runs (nothing
 * when all of it stopped). Throws WorkflowNotFoundError when the controller is not running.
 */
export async function stopPipeline(client: Client, config: Config, say: (line: string) => void, timeoutMs = STOP_TIMEOUT_MS): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const controller = client.workflow.getHandle(PIPELINE_WORKFLOW_ID);
  await controller.cancel();
  const local = config.target === 'local';
  const sparkJobs = async () => (local ? runningSparkJobs(config) : []);
  if (!(await workerIsPolling(config))) {
    // Cancellation is recorded; only a worker can carry it out.
    const jobs = await sparkJobs();
    return [
      `the controller: no worker polls task queue ${config.temporal.taskQueue}; its cancellation is recorded and completes once a worker runs (\`smartcity worker\`)`,
      ...jobs.map((j) => `Spark job ${j.name} (pid ${j.pid})`),
    ];
  }
  say(`cancelled ${PIPELINE_WORKFLOW_ID}; waiting for its batch runs and the streaming job to stop…`);
  const left: string[] = [];
  if (!(await settled(controller.result(), deadline - Date.now()))) left.push(`the controller ${PIPELINE_WORKFLOW_ID}`);
  else if (!(await settled(client.workflow.getHandle(STREAMING_WORKFLOW_ID).result(), deadline - Date.now()))) left.push(`the streaming supervisor ${STREAMING_WORKFLOW_ID}`);
  if (!local) return left;
  for (;;) {
    const jobs = await sparkJobs();
    if (jobs.length === 0) return left;
    const orphan = left.length === 0 && jobs.find((j) => j.name === DEFAULT_STREAMING_JOB);
    if (orphan) {
      say(`the streaming job outlived its supervisor: stopping it`);
      await stopSparkJob(config, orphan.name);
      continue;
    }
    if (Date.now() >= deadline) return [...left, ...jobs.map((j) => `Spark job ${j.name} (pid ${j.pid})`)];
    await sleep(1_000);
  }
}

export function printPipelineStatus(s: PipelineStatus, out: (line: string) => void): void {
  out(`state      ${s.paused ? `paused (${s.pauseScope})` : 'running'} · windows of ${s.windowMinutes} min, lateness ${s.allowedLatenessSeconds}s`);
  out(`next       ${s.cursor.from} → ${s.cursor.to} (closes ${s.cursor.closesAt})`);
  out(`streaming  ${s.streaming ? `${s.streaming.workflowId}${s.streaming.attached ? '' : ' (not attached)'}${s.streaming.error ? ` — ${s.streaming.error}` : ''}` : 'off'}`);
  out(`queue      ${s.queued} window(s)${s.queue.length ? `: ${s.queue.slice(0, 5).map((q) => `${q.window.from} (${q.reason})`).join(', ')}${s.queued > 5 ? ', …' : ''}` : ''}`);
  out(`running    ${s.running.length ? s.running.map((r) => `${r.window.from} [${r.workflowId}]`).join(', ') : '—'}`);
  out(`loaded     ${s.loaded.length ? s.loaded.map((w) => `${w.from} → ${w.to}`).join(', ') : '—'}`);
  for (const w of s.windows.slice(0, 10)) {
    const rows = w.rows ? Object.values(w.rows).reduce((a, b) => a + b, 0) : undefined;
    out(`  ${w.window.from}  ${w.status.padEnd(7)} attempts ${w.attempts}${rows === undefined ? '' : `, ${rows} rows`}${w.lastError ? `, ${w.lastError.type}: ${w.lastError.message}` : ''}`);
  }
  for (const r of s.rejectedSignals) out(`rejected   ${r.at} signal ${r.name}: ${r.reason}`);
  out(`history    ${s.historyLength} events, continued as new ${s.continuedAsNewCount} time(s)`);
}

export async function pipelineCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseCommandLine(argv, options, schema, { max: 1 });
  const action = positionals[0];
  if (action === undefined || !(action in ACTION_OPTIONS)) {
    throw new UsageError(action === undefined ? 'pipeline needs an action' : `unknown pipeline action "${action}"; expected ${Object.keys(ACTION_OPTIONS).join(', ')}`);
  }
  const stray = Object.keys(v).filter((k) => !ACTION_OPTIONS[action]!.includes(k as keyof typeof options));
  if (stray.length) throw new UsageError(`--${stray[0]} does not apply to \`pipeline ${action}\``);

  const config = loadConfig();
  const { client, close } = await connectClient(config);
  const handle = client.workflow.getHandle<typeof smartCityPipeline>(PIPELINE_WORKFLOW_ID);
  const out = (line: string) => console.log(line);
  try {
    switch (action) {
      case 'start': {
        const input: SmartCityPipelineInput = {
          ...(v['window-minutes'] !== undefined && { windowMinutes: v['window-minutes'] }),
          ...(v['lateness-seconds'] !== undefined && { allowedLatenessSeconds: v['lateness-seconds'] }),
          ...(v['tick-seconds'] !== undefined && { tickSeconds: v['tick-seconds'] }),
          ...(v['backfill-concurrency'] !== undefined && { backfillConcurrency: v['backfill-concurrency'] }),
          ...(v['no-streaming'] && { streaming: false }),
          ...(v['start-at'] && { startAt: v['start-at'].toISOString() }),
        };
        try {
          await client.workflow.start(smartCityPipeline, { workflowId: PIPELINE_WORKFLOW_ID, taskQueue: config.temporal.taskQueue, args: [input] });
          out(`started ${PIPELINE_WORKFLOW_ID} on task queue ${config.temporal.taskQueue}; see ${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${PIPELINE_WORKFLOW_ID}`);
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
          out(`${PIPELINE_WORKFLOW_ID} is already running`);
        }
        return 0;
      }
      case 'status': {
        const status = await handle.query(pipelineStatusQuery);
        if (v.json) out(JSON.stringify(status, null, 2));
        else printPipelineStatus(status, out);
        return 0;
      }
      case 'pause':
        await handle.signal(pipelinePauseSignal, { scope: v.all ? 'all' : 'batches' });
        out(v.all ? 'paused batch runs and streaming' : 'paused batch runs (streaming continues; --all pauses it too)');
        return 0;
      case 'resume':
        await handle.signal(pipelineResumeSignal);
        out('resumed');
        return 0;
      case 'run-now':
        await handle.signal(pipelineRunNowSignal);
        out('asked the controller to look for closed windows now');
        return 0;
      case 'backfill': {
        if (!v.from || !v.to) throw new UsageError('backfill needs --from and --to');
        let outcome;
        try {
          outcome = await handle.executeUpdate(requestBackfillUpdate, { args: [{ from: v.from.toISOString(), to: v.to.toISOString(), force: v.force ?? false }] });
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError) throw new Error(`backfill refused: ${err.cause?.message ?? err.message}`);
          throw err;
        }
        if (v.json) out(JSON.stringify(outcome, null, 2));
        else {
          out(`accepted ${outcome.accepted.length} window(s)${outcome.accepted.length ? `: ${outcome.accepted[0]!.from} … ${outcome.accepted[outcome.accepted.length - 1]!.to}` : ''}`);
          for (const s of outcome.skipped) out(`skipped  ${s.from} → ${s.to}: ${s.reason}`);
        }
        return 0;
      }
      case 'stop': {
        const left = await stopPipeline(client, config, out);
        if (left.length === 0) {
          out(`stopped ${PIPELINE_WORKFLOW_ID}, its batch runs and the streaming job`);
          return 0;
        }
        console.error(`still running:\n${left.map((line) => `  - ${line}`).join('\n')}`);
        return 1;
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new Error(`${PIPELINE_WORKFLOW_ID} is not running; start it with \`smartcity pipeline start\``);
    throw err;
  } finally {
    await close();
  }
}
