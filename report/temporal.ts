// What Temporal knows about the pipeline: the controller, the streaming supervisor, fleet
// simulations and batch runs, with links to their pages in the Web UI. A completed batch run's
// result carries its window, per-stage timings, loaded rows and quality checks; it is read from
// the run's history, so no worker needs to be up.
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import type { Config } from '../config';
import type { QualityCheck, SourceCounts, TimeWindow } from '../activities/types';
import { connectClient } from '../temporal/connection';
import { PIPELINE_WORKFLOW_ID, STREAMING_WORKFLOW_ID, type batchRun, type BatchStage } from '../workflows';

/** Batch runs and fleet simulations listed, newest first. */
const MAX_BATCH_RUNS = 50;
const MAX_FLEETS = 10;

export interface RunLink {
  workflowId: string;
  runId: string;
  type: string;
  /** Temporal's status, lower case: running, completed, failed, cancelled, terminated, timed_out, … */
  status: string;
  startedAt: string;
  closedAt?: string;
  url: string;
}

export interface BatchRunReport extends RunLink {
  /** Start of the run's window, as its workflow id names it (workflows/ids.ts). */
  windowFrom?: string;
  /** The rest comes from the result of a completed run. */
  window?: TimeWindow;
  totalMs?: number;
  timings?: Partial<Record<BatchStage, number>>;
  loaded?: SourceCounts;
  checks?: QualityCheck[];
  error?: string;
}

export interface TemporalState {
  reachable: boolean;
  uiUrl: string;
  /** Why Temporal could not be read. */
  error?: string;
  controller?: RunLink;
  streaming?: RunLink;
  fleets: RunLink[];
  batchRuns: BatchRunReport[];
}

export function workflowUrl(config: Config, workflowId: string, runId: string): string {
  return `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

function link(config: Config, info: Pick<WorkflowExecutionInfo, 'workflowId' | 'runId' | 'type' | 'status' | 'startTime' | 'closeTime'>): RunLink {
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    type: info.type,
    status: info.status.name.toLowerCase(),
    startedAt: info.startTime.toISOString(),
    ...(info.closeTime && { closedAt: info.closeTime.toISOString() }),
    url: workflowUrl(config, info.workflowId, info.runId),
  };
}

async function latestRun(config: Config, client: Client, workflowId: string): Promise<RunLink | undefined> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return link(config, description);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

async function listRuns(client: Client, query: string, max: number): Promise<WorkflowExecutionInfo[]> {
  const runs: WorkflowExecutionInfo[] = [];
  for await (const info of client.workflow.list({ query, pageSize: max })) {
    runs.push(info);
    if (runs.length >= max) break;
  }
  return runs.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
}

/** `smartcity-batch-<window start>-<attempt>` (workflows/ids.ts) → the window start. */
function windowStartOf(workflowId: string): string | undefined {
  return /^smartcity-batch-(.+)-\d+$/.exec(workflowId)?.[1];
}

async function batchRunReport(config: Config, client: Client, info: WorkflowExecutionInfo): Promise<BatchRunReport> {
  const from = windowStartOf(info.workflowId);
  const base: BatchRunReport = { ...link(config, info), ...(from !== undefined && { windowFrom: from }) };
  if (base.status !== 'completed' && base.status !== 'failed') return base;
  try {
    const result = await client.workflow.getHandle<typeof batchRun>(info.workflowId, info.runId).result();
    return { ...base, windowFrom: result.window.from, window: result.window, totalMs: result.totalMs, timings: result.timings, loaded: result.loaded, checks: result.checks };
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    return { ...base, error: cause?.message ?? (err as Error).message };
  }
}

/**
 * Reads the pipeline's workflows; `since` keeps batch runs and fleets started at or after it.
 * An unreachable server is a state to report, not an error.
 */
export async function readTemporalState(config: Config, options: { since?: Date } = {}): Promise<TemporalState> {
  const state: TemporalState = { reachable: false, uiUrl: config.temporal.uiUrl, fleets: [], batchRuns: [] };
  let connection;
  try {
    connection = await connectClient(config, 2_000);
  } catch (err) {
    state.error = (err as Error).message;
    return state;
  }
  const { client } = connection;
  const since = options.since ? ` AND StartTime >= '${options.since.toISOString()}'` : '';
  try {
    state.controller = await latestRun(config, client, PIPELINE_WORKFLOW_ID);
    state.streaming = await latestRun(config, client, STREAMING_WORKFLOW_ID);
    state.fleets = (await listRuns(client, `WorkflowType = 'fleetSimulation'${since}`, MAX_FLEETS)).map((info) => link(config, info));
    const runs = await listRuns(client, `WorkflowType = 'batchRun'${since}`, MAX_BATCH_RUNS);
    state.batchRuns = await Promise.all(runs.map((info) => batchRunReport(config, client, info)));
    state.reachable = true;
  } catch (err) {
    state.error = `reading workflows from ${config.temporal.address} failed: ${(err as Error).message}`;
  } finally {
    await connection.close();
  }
  return state;
}
