// The faults, one at a time: each finds its victim, SIGKILLs it, brings back what the operator
// would (the broker and Temporal with `smartcity stack up`, a worker with a new `smartcity
// worker`; the ingest and curate jobs are the pipeline's own to restart), and measures recovery
// as defined on each. A fault passes when recovery happened within its bound and no process the
// tier did not kill died meanwhile.
import { runningProcess } from '../../stack/processes';
import { fleetStatusQuery, STREAMING_WORKFLOW_ID } from '../../workflows';
import {
  controllerStatus,
  curatedDataFiles,
  curateJobs,
  ingestedOffsets,
  ingestJvm,
  ingestProgress,
  injectMalformed,
  isLoaded,
  loadedSince,
  recordOf,
  requestBackfill,
  sum,
  type CurateJob,
  type Scenario,
} from './observe';
import { kill, listProcesses, waitGone } from '../helpers/processes';
import { until } from '../helpers/until';
import { seconds, type Tier } from './tier';
import { label, type Window } from './truth';

export const FAULTS = ['broker', 'ingest', 'worker', 'temporal', 'curate'] as const;
export type Fault = (typeof FAULTS)[number];

export interface FaultSettings {
  brokerDownSeconds: number;
  temporalDownSeconds: number;
  /**
   * Kill the worker only while a live window is about to close, so the outage always shows
   * whether the live schedule goes on (can wait up to a window's length for the moment).
   */
  alignWorkerKill: boolean;
}

export interface FaultReport {
  fault: Fault;
  /** What was killed, and its pid. */
  victim: string;
  killedAt?: number;
  /** Recovery as this fault defines it, in words with the figures. */
  recovery: string;
  /** The headline figure: kill → recovered, ms. */
  recoveryMs?: number;
  passed: boolean;
  detail: string;
}

export const RECOVERY_DEFINITIONS: Record<Fault, string> = {
  broker:
    'broker SIGKILLed, kept down, `stack up`: recovered when the restarted broker acknowledged a new event and the ingest job has written every offset Kafka held then',
  ingest:
    'the Spark ingest driver (spark-submit JVM) SIGKILLed, malformed records sent: recovered when the streaming supervisor has started a new one and its first micro-batch landed',
  worker:
    'the worker SIGKILLed while curating a backfilled window, a new worker started: recovered when that window is loaded (required within 3 min); live windows closing meanwhile must be scheduled',
  temporal:
    'the Temporal dev server SIGKILLed, kept down, `stack up`: recovered when the worker answers queries and has advanced the controller (its history) and the fleet, if still running (events acknowledged)',
  curate: 'a curate job (its Spark Connect client, or its spark-submit JVM) SIGKILLed while writing the curated layer: recovered when its window is loaded',
};

const WORKER_WINDOW_DEADLINE_MS = 3 * 60_000;
/**
 * Bound of every other recovery: generous, because a busy 2-core machine takes minutes per Spark
 * batch; these bounds catch what never recovers, the figures say how fast it did.
 */
const RECOVERY_BOUND_MS = 10 * 60_000;
/** A live window closing during the worker's outage must have its batch run started this long after it closed. */
const LIVE_SCHEDULING_SLACK_MS = 90_000;

/** Collects the figures of a fault as they come; what did not happen ends it with a reason. */
class Run {
  killedAt: number | undefined;
  victim = '—';
  readonly figures: string[] = [];
  readonly problems: string[] = [];
  recoveryMs: number | undefined;

  constructor(
    readonly tier: Tier,
    readonly fault: Fault,
  ) {}

  killed(pid: number, what: string): void {
    kill(pid, 'SIGKILL');
    this.record(pid, what);
  }

  /** For a victim the tier itself kills (a worker: so its exit is not taken for an incident). */
  record(pid: number, what: string): void {
    this.killedAt = Date.now();
    this.victim = `${what} pid ${pid}`;
    this.tier.log(`SIGKILL ${what} (pid ${pid})`);
  }

  since(ms: number, from = this.killedAt ?? ms): string {
    return seconds(ms - from);
  }

  report(): FaultReport {
    const incidents = this.tier.incidents.filter((i) => i.phase === this.fault);
    for (const i of incidents) this.problems.push(`${i.what}; its log ends:\n      ${i.evidence.split('\n').join('\n      ')}`);
    const passed = this.killedAt !== undefined && this.problems.length === 0;
    return {
      fault: this.fault,
      victim: this.victim,
      killedAt: this.killedAt,
      recovery: this.figures.join('; ') || 'not recovered',
      recoveryMs: this.recoveryMs,
      passed,
      detail: passed ? this.figures.join('; ') : [...this.problems, ...(this.figures.length ? [`so far: ${this.figures.join('; ')}`] : [])].join('; '),
    };
  }
}

async function attempt(run: Run, body: () => Promise<void>): Promise<FaultReport> {
  try {
    await body();
  } catch (err) {
    run.problems.unshift((err as Error).message);
  }
  return run.report();
}

export function runFault(fault: Fault, s: Scenario, settings: FaultSettings): Promise<FaultReport> {
  const run = new Run(s.tier, fault);
  const body = {
    broker: brokerFault,
    ingest: ingestFault,
    worker: workerFault,
    temporal: temporalFault,
    curate: curateFault,
  }[fault];
  return attempt(run, () => body(run, s, settings));
}

/** SIGKILL to a component of the stack, `downSeconds` of absence, then `smartcity stack up`; returns when it is back. */
async function killStackComponent(run: Run, tier: Tier, component: 'kafka' | 'temporal', what: string, downSeconds: number): Promise<number> {
  const record = runningProcess(tier.dataDir, component);
  if (!record) throw new Error(`no running ${what} is recorded in <data dir>/run/${component}.json`);
  run.killed(record.pid, what);
  await waitGone([record.pid], 10_000);
  await tier.pause(downSeconds * 1000);
  await tier.stackUp();
  const restartedAt = Date.now();
  run.figures.push(`down ${run.since(restartedAt)}`);
  tier.log(`${what} back after ${run.since(restartedAt)} (smartcity stack up)`);
  return restartedAt;
}

async function brokerFault(run: Run, s: Scenario, settings: FaultSettings): Promise<void> {
  const { tier } = s;
  await tier.until('the replay to get events into Kafka', async () => (sum(await tier.watermarks()) >= 50 ? true : undefined), { timeoutMs: 5 * 60_000 });
  const restartedAt = await killStackComponent(run, tier, 'kafka', 'Kafka broker', settings.brokerDownSeconds);
  const atRestart = sum(await tier.watermarks());
  const firstAckAt = await tier.until(
    'the restarted broker acknowledging a new event of the replay',
    async () => (sum(await tier.watermarks()) > atRestart ? Date.now() : undefined),
    { timeoutMs: 3 * 60_000, everyMs: 1_000 },
  );
  run.figures.push(`first acknowledged event ${run.since(firstAckAt, restartedAt)} after the restart`);
  const target = await tier.watermarks();
  const caughtUpAt = await tier.until(
    `the ingest job writing every offset Kafka held ${seconds(Date.now() - firstAckAt)} after the first new acknowledgement`,
    () => {
      const done = ingestedOffsets(ingestProgress(s));
      return [...target].every(([partition, high]) => high === 0 || (done.get(partition) ?? 0) >= high) ? Date.now() : undefined;
    },
    { timeoutMs: RECOVERY_BOUND_MS },
  );
  run.figures.push(`ingest caught up ${run.since(caughtUpAt, restartedAt)} after the restart`);
  run.recoveryMs = caughtUpAt - run.killedAt!;
}

async function ingestFault(run: Run, s: Scenario): Promise<void> {
  const { tier } = s;
  const jvm = await tier.until(
    'the ingest job running with a micro-batch written',
    () => (ingestProgress(s).length > 0 ? ingestJvm(s) : undefined),
    { timeoutMs: 5 * 60_000 },
  );
  run.killed(jvm.pid, 'Spark ingest driver (spark-submit JVM of smartcity-ingest)');
  const killedAt = run.killedAt!;
  await waitGone([jvm.pid], 10_000);
  // New records for the restarted job, whether or not the replay still produces: they must reach
  // quarantine exactly once across the restart.
  await injectMalformed(s, 2);
  const next = await tier.until('the streaming supervisor starting a new ingest job', () => {
    const now = ingestJvm(s);
    return now && now.pid !== jvm.pid ? now : undefined;
  }, { timeoutMs: 5 * 60_000 });
  const restartedAt = Date.now();
  run.figures.push(`restarted by the supervisor after ${run.since(restartedAt)} (pid ${next.pid})`);
  const batch = await tier.until(
    'a micro-batch of the restarted ingest job landing',
    () => ingestProgress(s).find((line) => Date.parse(line.ingest_time) >= killedAt),
    { timeoutMs: RECOVERY_BOUND_MS },
  );
  const landedAt = Date.parse(batch.ingest_time) + batch.duration_ms;
  run.figures.push(`micro-batch ${batch.batch_id} (${batch.consumed} records) landed ${run.since(landedAt)} after the kill`);
  run.recoveryMs = landedAt - killedAt;
  const left = listProcesses().filter((p) => p.pgid === jvm.pgid);
  if (left.length > 0)
    run.problems.push(`processes of the killed job are still alive: ${left.map((p) => `${p.pid} ${p.argv.slice(0, 2).join(' ')}`).join(', ')}`);
}

/** The next instant a live window closes, at least `leadMs` from now. */
async function nextLiveClose(s: Scenario, leadMs: number): Promise<number> {
  const status = await controllerStatus(s);
  let close = Date.parse(status.cursor.closesAt);
  while (close < Date.now() + leadMs) close += s.windowMs;
  return close;
}

/**
 * Makes sure a replay window gets curated soon: when no replay curate job runs and none is queued,
 * the earliest loaded one is backfilled again with force (a re-run must give the same rows anyway).
 */
async function demandCurate(s: Scenario): Promise<void> {
  if (curateJobs(s).some((j) => j.replay)) return;
  const status = await controllerStatus(s);
  if (s.windows.some((w) => status.queue.some((q) => Date.parse(q.window.from) === w.fromMs))) return;
  const loaded = s.windows.find((w) => isLoaded(status, w));
  if (loaded) await requestBackfill(s, [loaded], true);
}

async function workerFault(run: Run, s: Scenario, settings: FaultSettings): Promise<void> {
  const { tier } = s;
  const worker = tier.worker;
  if (!worker) throw new Error('no worker is running');
  let demandedAt = 0;
  const what = `a backfill curate job running${settings.alignWorkerKill ? ' shortly before a live window closes' : ''}`;
  const target = await tier.until(
    what,
    async () => {
      const close = await nextLiveClose(s, 0);
      const lead = close - Date.now();
      if ((!settings.alignWorkerKill || lead < 200_000) && Date.now() - demandedAt > 120_000) {
        demandedAt = Date.now();
        await demandCurate(s);
      }
      const job = curateJobs(s).find((j) => j.replay);
      return job && (!settings.alignWorkerKill || (lead >= 15_000 && lead <= 150_000)) ? { job, close } : undefined;
    },
    { timeoutMs: 2 * s.windowMs + 5 * 60_000, everyMs: 1_000 },
  );
  const window = target.job.replay!;
  const liveFromMs = target.close - s.latenessMs - s.windowMs;
  tier.log(
    `curate of ${label(window)} running (pid ${target.job.jvm.pid}); live window ${new Date(liveFromMs).toISOString().slice(11, 16)} closes in ${seconds(target.close - Date.now())}`,
  );
  tier.killWorker(worker);
  run.record(worker.pid, 'worker node process');
  const killedAt = run.killedAt!;
  const replacement = await tier.startWorker();
  run.figures.push(`new worker (pid ${replacement.pid}) polling ${run.since(Date.now())} after the kill`);

  let liveScheduledAt: number | undefined;
  let loadedAt: number | undefined;
  try {
    await tier.until(
      `window ${label(window)} loaded within ${seconds(WORKER_WINDOW_DEADLINE_MS)} of the kill`,
      async () => {
        const status = await controllerStatus(s);
        if (liveScheduledAt === undefined && (recordOf(status, liveFromMs) || status.running.some((r) => Date.parse(r.window.from) === liveFromMs)))
          liveScheduledAt = Date.now();
        const record = loadedSince(status, window.fromMs, killedAt);
        if (record) loadedAt = Date.parse(record.loadedAt!);
        return loadedAt;
      },
      { timeoutMs: killedAt + WORKER_WINDOW_DEADLINE_MS - Date.now() },
    );
  } catch (err) {
    run.problems.push(`${(err as Error).message}${await stuckEvidence(s, window)}`);
  }
  if (loadedAt !== undefined) {
    run.recoveryMs = loadedAt - killedAt;
    run.figures.push(`window ${label(window)} loaded ${run.since(loadedAt)} after the kill`);
  }
  const live = new Date(liveFromMs).toISOString().slice(11, 16);
  const outageEnd = loadedAt ?? killedAt + WORKER_WINDOW_DEADLINE_MS;
  if (!settings.alignWorkerKill && target.close > outageEnd) {
    run.figures.push(
      `no live window closed during the outage (the next, ${live}, closed ${seconds(target.close - outageEnd)} after it): live scheduling not exercised`,
    );
    return;
  }
  // The live window may close after the curate recovered: follow it to its deadline either way.
  const liveDeadline = target.close + LIVE_SCHEDULING_SLACK_MS;
  if (liveScheduledAt === undefined) {
    liveScheduledAt = await tier
      .until(`live window ${new Date(liveFromMs).toISOString().slice(11, 16)} started`, async () => {
        const status = await controllerStatus(s);
        return recordOf(status, liveFromMs) || status.running.some((r) => Date.parse(r.window.from) === liveFromMs) ? Date.now() : undefined;
      }, { timeoutMs: Math.max(0, liveDeadline - Date.now()) })
      .catch(() => undefined);
  }
  if (liveScheduledAt === undefined || liveScheduledAt > liveDeadline) {
    const why = await liveLaneEvidence(s).catch((err: unknown) => `; (${(err as Error).message})`);
    run.problems.push(
      `live window ${live}, closed ${seconds(target.close - killedAt)} after the kill, was not started within ${seconds(LIVE_SCHEDULING_SLACK_MS)} of closing${why}`,
    );
  } else {
    run.figures.push(
      `live window ${live} (closed ${seconds(target.close - killedAt)} after the kill) started ${seconds(Math.max(0, liveScheduledAt - target.close))} after closing`,
    );
  }
}

/** What a batch run waits for: its pending activities as Temporal describes them. */
async function pendingOf(s: Scenario, workflowId: string): Promise<string> {
  try {
    const description = await s.tier.ask((client) => client.workflow.getHandle(workflowId).describe());
    const pending = (description.raw.pendingActivities ?? []).map((a) => {
      const heartbeat = a.lastHeartbeatTime?.seconds ? new Date(Number(a.lastHeartbeatTime.seconds) * 1000).toISOString().slice(11, 19) : 'never';
      return `${a.activityType?.name} attempt ${a.attempt}, last heartbeat ${heartbeat}, on ${a.lastWorkerIdentity || '?'}`;
    });
    return `${workflowId} is ${description.status.name}, pending: ${pending.join('; ') || 'none'}`;
  } catch (err) {
    return `describing ${workflowId} failed: ${(err as Error).message}`;
  }
}

/** Why a window did not load: its batch run's pending activities. */
async function stuckEvidence(s: Scenario, window: Window): Promise<string> {
  const record = recordOf(await controllerStatus(s), window.fromMs);
  return record ? `; its batch run ${await pendingOf(s, record.workflowId)}` : '; the controller has no record of the window';
}

/** Why a live window did not start: what holds the live lane (one live run at a time). */
async function liveLaneEvidence(s: Scenario): Promise<string> {
  const status = await controllerStatus(s);
  const live = status.running.filter((r) => r.reason === 'live');
  if (live.length === 0)
    return `; no live run is in the way (queue: ${status.queue.map((q) => `${q.window.from.slice(11, 16)} ${q.reason}`).join(', ') || 'empty'})`;
  const held = await Promise.all(
    live.map(async (r) => `${r.window.from.slice(11, 16)} since ${r.startedAt.slice(11, 19)}: ${await pendingOf(s, r.workflowId)}`),
  );
  return `; the live lane is held by ${held.join('; ')}`;
}

/** What the workers report (queries run on a worker): the controller's history length, the fleet's events so far. */
async function progressMarks(s: Scenario): Promise<{ controller: number; fleet: number | undefined }> {
  const controller = (await controllerStatus(s)).historyLength;
  if (!s.fleet) return { controller, fleet: undefined };
  const fleet = s.fleet;
  const running = (await s.tier.ask(() => fleet.describe())).status.name === 'RUNNING';
  if (!running) return { controller, fleet: undefined };
  const status = await s.tier.ask(() => fleet.query(fleetStatusQuery));
  return {
    controller,
    fleet: Object.values(status.totals).reduce((a, b) => a + b, 0),
  };
}

async function temporalFault(run: Run, s: Scenario, settings: FaultSettings): Promise<void> {
  const { tier } = s;
  const restartedAt = await killStackComponent(run, tier, 'temporal', 'Temporal dev server', settings.temporalDownSeconds);
  const before = await tier.until('the worker answering queries again after the restart', () => progressMarks(s), { timeoutMs: 3 * 60_000 });
  run.figures.push(`worker answering queries ${run.since(Date.now(), restartedAt)} after the restart`);
  const what = `the controller${before.fleet === undefined ? '' : ' and the fleet'} making progress after the restart`;
  const progressedAt = await tier.until(what, async () => {
    const now = await progressMarks(s);
    const fleet = before.fleet === undefined || now.fleet === undefined || now.fleet > before.fleet;
    return now.controller > before.controller && fleet ? Date.now() : undefined;
  }, { timeoutMs: 3 * 60_000 });
  run.figures.push(`controller${before.fleet === undefined ? '' : ' and fleet'} progressing ${run.since(progressedAt, restartedAt)} after the restart`);
  run.recoveryMs = progressedAt - run.killedAt!;
  const streaming = await tier.ask((client) => client.workflow.getHandle(STREAMING_WORKFLOW_ID).describe()).catch(() => undefined);
  if (streaming && streaming.status.name !== 'RUNNING') run.problems.push(`the streaming supervisor is ${streaming.status.name} after the restart`);
}

async function curateFault(run: Run, s: Scenario): Promise<void> {
  const { tier } = s;
  let demandedAt = 0;
  let job: CurateJob | undefined;
  let staging: string[] = [];
  await tier.until(
    'a curate job of a replay window writing the curated layer',
    async () => {
      if (Date.now() - demandedAt > 120_000) {
        demandedAt = Date.now();
        await demandCurate(s);
      }
      job = curateJobs(s).find((j) => j.replay);
      if (!job) return undefined;
      // The MERGEs write files, then commit: look closely (every 100 ms, for 10 s) for this job's
      // first new file, and kill it then, mid-MERGE.
      const before = curatedDataFiles(s);
      const writing = () => {
        staging = [...curatedDataFiles(s)].filter((f) => !before.has(f));
        return staging.length > 0 ? true : undefined;
      };
      return until('the curate job to write curated files', writing, { timeoutMs: 10_000, everyMs: 100 }).catch(() => undefined);
    },
    { timeoutMs: 10 * 60_000, everyMs: 500 },
  );
  const window = job!.replay!;
  const what = job!.jvm.argv.includes('org.apache.spark.deploy.SparkSubmit') ? 'spark-submit JVM' : 'Spark Connect client (its write runs on in the server)';
  run.killed(job!.jvm.pid, `curate ${what} of ${label(window)} (writing ${staging.join(', ')})`);
  const killedAt = run.killedAt!;
  const record = await tier.until(
    `window ${label(window)} loaded after its curate job was killed`,
    async () => loadedSince(await controllerStatus(s), window.fromMs, killedAt),
    { timeoutMs: RECOVERY_BOUND_MS },
  );
  const loadedAt = Date.parse(record.loadedAt!);
  run.figures.push(`window ${label(window)} loaded ${run.since(loadedAt)} after the kill (batch run ${record.workflowId}, attempt ${record.attempts})`);
  run.recoveryMs = loadedAt - killedAt;
}
