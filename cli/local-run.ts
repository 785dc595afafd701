// The local pipeline as `smartcity demo` and `smartcity start` run it: the stack, a worker process,
// the controller and fleet simulations, brought up in order and shut down in reverse, stopping only
// what this command started. The worker runs as a background process (pid record and log under
// the data dir, like the stack's), so `demo --keep` can leave it running after the command exits.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { PROJECT_ROOT, type Config } from '../config';
import { runningSparkJobs } from '../spark/runner';
import { stackDown, stackStatus, stackUp } from '../stack';
import { logPath, runningProcess, startProcess, stopProcess, waitUntilReady } from '../stack/processes';
import { topicOffsets } from '../kafka/client';
import { connectClient } from '../temporal/connection';
import type { SourceCounts } from '../activities/types';
import { countLayerRows } from '../report/lake';
import { SOURCES, TOPICS } from '../schemas';
import {
  batchRunStatusQuery,
  fleetSimulation,
  fleetStatusQuery,
  PIPELINE_WORKFLOW_ID,
  pipelineStatusQuery,
  smartCityPipeline,
  STREAMING_WORKFLOW_ID,
  streamingStatusQuery,
  type FleetSimulationInput,
  type PipelineStatus,
  type SmartCityPipelineInput,
} from '../workflows';
import { fleetSimulationWorkflowId } from '../workflows/ids';
import { settled, stopPipeline } from './pipeline';
import { fleetProgressLine } from './simulate';

export const WORKER_PROCESS = 'worker';
/** What cli/worker.ts prints once it polls: the worker is ready. */
const WORKER_READY_LINE = 'worker polling task queue';
const WORKER_START_TIMEOUT_MS = 120_000;
/** Counting the raw lake reads every file's footer: not on every refresh. */
const RAW_COUNT_EVERY_MS = 15_000;
/** Records per topic (high watermarks): one admin connection per topic. */
const KAFKA_READ_EVERY_MS = 4_000;

/** The worker as `bin/smartcity worker` runs it; the record's command line identifies the process later. */
function workerCommandLine(): string[] {
  return [process.execPath, '--import', join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs'), join(PROJECT_ROOT, 'cli', 'main.ts'), 'worker'];
}

export class LocalPipeline {
  /** What this command started, so shutdown stops exactly that. */
  private started = { stack: false, worker: false, controller: false };
  readonly fleets: WorkflowHandle<typeof fleetSimulation>[] = [];
  private connection: { client: Client; close: () => Promise<void> } | undefined;

  constructor(
    readonly config: Config,
    private readonly say: (line: string) => void,
  ) {
    if (config.target !== 'local') throw new Error(`this command runs the local target; SMARTCITY_TARGET is "${config.target}"`);
  }

  get client(): Client {
    if (!this.connection) throw new Error('not connected to Temporal yet');
    return this.connection.client;
  }

  /** Starts the stack unless all of it answers already; returns whether this call started it. */
  async stackUp(): Promise<boolean> {
    const before = await stackStatus(this.config);
    if (before.components.every((c) => c.state === 'running' && c.answering)) {
      this.say('the stack is already running: using it (and leaving it running afterwards)');
    } else {
      await stackUp(this.config, this.say);
      this.started.stack = true;
    }
    this.connection = await connectClient(this.config);
    return this.started.stack;
  }

  /** Starts a worker process unless the one a previous command left (demo --keep) still runs. */
  async workerUp(): Promise<{ pid: number; log: string }> {
    const running = runningProcess(this.config.dataDir, WORKER_PROCESS);
    if (running) {
      this.say(`the worker started earlier (pid ${running.pid}) is still running: using it`);
      return { pid: running.pid, log: running.log };
    }
    // The log is appended to across runs: only what this worker writes counts.
    const log = logPath(this.config.dataDir, WORKER_PROCESS);
    const offset = existsSync(log) ? statSync(log).size : 0;
    const record = startProcess(this.config.dataDir, WORKER_PROCESS, workerCommandLine(), { cwd: PROJECT_ROOT });
    this.started.worker = true;
    const ready = async () => readFileSync(log).indexOf(WORKER_READY_LINE, offset) >= 0;
    await waitUntilReady(record, 'the worker', ready, WORKER_START_TIMEOUT_MS);
    return { pid: record.pid, log };
  }

  /**
   * Starts the controller. A running one is replaced (`replace`, for settings of its own) or used
   * as it is.
   */
  async startController(input: SmartCityPipelineInput, options: { replace: boolean }): Promise<WorkflowHandle<typeof smartCityPipeline>> {
    const existing = this.client.workflow.getHandle<typeof smartCityPipeline>(PIPELINE_WORKFLOW_ID);
    try {
      const { status } = await existing.describe();
      if (status.name === 'RUNNING') {
        if (!options.replace) {
          this.say(`${PIPELINE_WORKFLOW_ID} is already running: using it (and leaving it running afterwards)`);
          return existing;
        }
        this.say(`stopping the running ${PIPELINE_WORKFLOW_ID} to start it with this command's settings…`);
        await this.stopController();
      }
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
    try {
      const handle = await this.client.workflow.start(smartCityPipeline, {
        workflowId: PIPELINE_WORKFLOW_ID,
        taskQueue: this.config.temporal.taskQueue,
        args: [input],
      });
      this.started.controller = true;
      return handle;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      return existing;
    }
  }

  /**
   * Why a fleet ended badly (failed, timed out, terminated), with what Kafka had acknowledged of it:
   * an error to stop on. Undefined while it runs or once it completed or was cancelled.
   */
  async fleetFailure(fleet: WorkflowHandle<typeof fleetSimulation>): Promise<Error | undefined> {
    const { status } = await fleet.describe();
    if (['RUNNING', 'COMPLETED', 'CANCELLED', 'CONTINUED_AS_NEW'].includes(status.name)) return undefined;
    const reason = await fleet.result().then(
      () => status.name.toLowerCase(),
      (err: unknown) => rootCause(err),
    );
    const progress = await ask(() => fleet.query(fleetStatusQuery));
    return new Error(`fleet ${fleet.workflowId} ${status.name.toLowerCase()}: ${reason}${progress ? `\n  until then: ${fleetProgressLine(progress)}` : ''}`);
  }

  /** The fleet's result; if it ends badly, the error says why and what was acknowledged. */
  async fleetResult(fleet: WorkflowHandle<typeof fleetSimulation>): Promise<Awaited<ReturnType<typeof fleetSimulation>>> {
    try {
      return await fleet.result();
    } catch (err) {
      throw (await this.fleetFailure(fleet)) ?? err;
    }
  }

  async startFleet(input: FleetSimulationInput & { seed: number; start: string }): Promise<WorkflowHandle<typeof fleetSimulation>> {
    const handle = await this.client.workflow.start(fleetSimulation, {
      taskQueue: this.config.temporal.taskQueue,
      workflowId: `${fleetSimulationWorkflowId(input.seed, input.start)}-${Date.now()}`,
      args: [input],
    });
    this.fleets.push(handle);
    return handle;
  }

  /** Stops the controller and what it runs (as `smartcity pipeline stop`); says what is left. */
  private async stopController(): Promise<void> {
    try {
      const left = await stopPipeline(this.client, this.config, this.say);
      for (const line of left) this.say(`still running: ${line}`);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  /**
   * Stops what this command started, newest first: fleets, controller (and streaming), worker,
   * stack. `beforeStackDown` runs while Temporal still answers (to read the final state).
   */
  async shutdown(beforeStackDown?: () => Promise<void>): Promise<string[]> {
    const stopped: string[] = [];
    if (this.connection) {
      for (const fleet of this.fleets) {
        const running = await fleet
          .describe()
          .then((d) => d.status.name === 'RUNNING')
          .catch(() => false);
        if (!running) continue;
        await fleet.cancel().catch(() => undefined);
        await settled(fleet.result(), 30_000);
        stopped.push(`fleet ${fleet.workflowId}`);
      }
      if (this.started.controller) {
        this.say('stopping the controller and the streaming job…');
        await this.stopController();
        stopped.push('controller and streaming job');
      }
      await this.connection.close();
      this.connection = undefined;
    }
    if (this.started.worker && (await stopProcess(this.config.dataDir, WORKER_PROCESS, 45_000))) stopped.push('worker');
    await beforeStackDown?.();
    // The stack goes down with the Spark jobs of the data dir (a controller this command did not
    // start stays open in Temporal and starts its job again when the stack and a worker are back).
    if (this.started.stack) stopped.push(...(await stackDown(this.config)));
    else {
      for (const job of await runningSparkJobs(this.config)) this.say(`left running with the pipeline that was running before: Spark job ${job.name} (pid ${job.pid})`);
    }
    this.started = { stack: false, worker: false, controller: false };
    return stopped;
  }

  /** Stops the controller (and streaming), the worker process and the stack, whoever started them. */
  async stopAll(): Promise<string[]> {
    this.started = { stack: true, worker: true, controller: false };
    const stack = await stackStatus(this.config);
    // Its process, not only the status's quick probe, which a busy server can miss.
    if (stack.components.some((c) => c.name === 'temporal' && (c.state === 'running' || c.answering))) {
      this.connection = await connectClient(this.config);
      const controller = this.client.workflow.getHandle<typeof smartCityPipeline>(PIPELINE_WORKFLOW_ID);
      // Stopped like `pipeline stop` does; without a worker the cancellation waits for the next
      // one, and the stack takes the Spark jobs down with it.
      this.started.controller = await controller
        .describe()
        .then((d) => d.status.name === 'RUNNING')
        .catch(() => false);
      // A fleet left open would resume producing with the next worker.
      for await (const fleet of this.client.workflow.list({ query: "WorkflowType = 'fleetSimulation' AND ExecutionStatus = 'Running'" })) {
        this.fleets.push(this.client.workflow.getHandle(fleet.workflowId, fleet.runId));
      }
    }
    return this.shutdown();
  }
}

/**
 * Ctrl-C (or SIGTERM): `first` once, `again` on a later one. npm forwards the terminal's SIGINT to
 * the script it runs, which then gets it twice at once: a repeat within a second counts once.
 * Returns the function that removes the handler.
 */
export function onInterrupt(first: () => void, again: () => void): () => void {
  let firstAt: number | undefined;
  const handler = () => {
    if (firstAt === undefined) {
      firstAt = Date.now();
      first();
    } else if (Date.now() - firstAt > 1_000) {
      again();
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

const QUERY_TIMEOUT_MS = 3_000;

/** A query's answer, or undefined when the workflow does not answer in time (closed, no worker yet). */
async function ask<T>(query: () => Promise<T>): Promise<T | undefined> {
  const answer = query().catch(() => undefined);
  return Promise.race([answer, sleep(QUERY_TIMEOUT_MS, undefined, { ref: false })]);
}

const clock = (iso: string) => iso.slice(11, 19);

/** The innermost message of a failure chain (workflow failed ← activity failed ← what the activity threw). */
interface Failure {
  message?: string;
  cause?: unknown;
}

function rootCause(err: unknown): string {
  let current = err as Failure;
  while (typeof current.cause === 'object' && current.cause !== null) current = current.cause;
  return current.message ?? String(err);
}

/** What the live view shows under the stages: Kafka, the streaming job, the raw lake, the windows. */
export class PipelineWatch {
  private raw: SourceCounts | undefined;
  private rawCountedAt = 0;
  private topics: number[] | undefined;
  private topicsReadAt = 0;
  pipeline: PipelineStatus | undefined;

  constructor(
    private readonly config: Config,
    private readonly client: Client,
    /** The fleets to show (the command's own; the list may grow). */
    private readonly fleets: readonly WorkflowHandle<typeof fleetSimulation>[] = [],
  ) {}

  async lines(): Promise<string[]> {
    if (Date.now() - this.topicsReadAt >= KAFKA_READ_EVERY_MS) {
      this.topicsReadAt = Date.now();
      this.topics = await Promise.all(SOURCES.map((s) => topicOffsets(this.config, TOPICS[s]))).catch(() => this.topics);
    }
    const streaming = await ask(() => this.client.workflow.getHandle(STREAMING_WORKFLOW_ID).query(streamingStatusQuery));
    this.pipeline = (await ask(() => this.client.workflow.getHandle(PIPELINE_WORKFLOW_ID).query(pipelineStatusQuery))) ?? this.pipeline;
    if (Date.now() - this.rawCountedAt >= RAW_COUNT_EVERY_MS) {
      this.rawCountedAt = Date.now();
      this.raw = await countLayerRows(this.config, 'raw').catch(() => this.raw);
    }
    const lines: string[] = [];
    if (this.topics) lines.push(`Kafka      ${SOURCES.map((s, i) => `${TOPICS[s]} ${this.topics![i]}`).join(' · ')}`);
    if (streaming) {
      const p = streaming.lastProgress;
      lines.push(
        `streaming  ${streaming.state}${p ? ` · micro-batch ${p.batchId} at ${clock(p.at)}: ${p.consumed} consumed, ${p.quarantined} quarantined` : ' · waiting for the first micro-batch'}${streaming.restarts ? ` · ${streaming.restarts} restart(s)` : ''}`,
      );
    }
    for (const fleet of this.fleets) {
      const status = await ask(() => fleet.query(fleetStatusQuery));
      if (status && status.parts.some((p) => !p.arrived)) lines.push(`fleet      ${fleetProgressLine(status)}`);
    }
    if (this.raw) lines.push(`raw lake   ${SOURCES.map((s) => `${s} ${this.raw![s]}`).join(' · ')}`);
    if (this.pipeline) {
      const p = this.pipeline;
      const loaded = p.windows.filter((w) => w.status === 'loaded').length;
      const failed = p.windows.filter((w) => w.status === 'failed').length;
      const running: string[] = [];
      for (const r of p.running) {
        const run = await ask(() => this.client.workflow.getHandle(r.workflowId).query(batchRunStatusQuery));
        running.push(`${clock(r.window.from).slice(0, 5)} ${r.reason}${run ? ` (${run.stage})` : ''}`);
      }
      lines.push(
        `windows    ${loaded} loaded${failed ? ` · ${failed} failed` : ''} · running ${running.length ? running.join(', ') : '—'} · queued ${p.queued} · next closes ${clock(p.cursor.closesAt)}`,
      );
    }
    return lines;
  }
}
