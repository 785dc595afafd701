// A worker dying in the middle of curate, with the real pieces: a `bin/smartcity worker` child
// process runs a batch run's curate (a real spark-submit) and is SIGKILLed; another worker takes
// the window over after the heartbeat timeout, attaches to the curate job that outlived its worker
// instead of starting a second one, and the warehouse ends with exactly the events the generator
// made for the window. And a worker shut down while Temporal is unreachable stops its curate job.
// Needs the test stack (Kafka and Temporal on the test ports).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Connection, Client } from '@temporalio/client';
import { curateJobName } from '../../activities/spark';
import { queryRows, withDatabase } from '../../activities/duckdb';
import { warehousePath } from '../../activities/warehouse';
import { ingestFleetHistory, type FleetHistory } from '../../bench/history';
import { PROJECT_ROOT, loadConfig, type Config } from '../../config';
import { createKafka } from '../../kafka/client';
import { SOURCES } from '../../schemas';
import { sparkJobStatus, stopSparkJob } from '../../spark/runner';
import { connectClient } from '../../temporal/connection';
import { workflowBundlePath } from '../../workers/bundle';
import { startWorker } from '../../workers/worker';
import { batchRun } from '../../workflows';
import { createDevServerEnv } from '../helpers/temporal';
import { until, within } from '../helpers/until';

const base = loadConfig();
const run = randomUUID().slice(0, 8);
const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-failover-'));
const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake'), temporal: { ...base.temporal, taskQueue: `failover-${run}` } };
const START = new Date('2026-03-04T06:00:00Z');
const window = { from: '2026-03-04T06:00:00.000Z', to: '2026-03-04T06:10:00.000Z' };
const SLOW = { timeout: 10 * 60_000 };
/**
 * The invariant of the issue: a window whose worker died mid-curate completes within this of the
 * kill — not counting the time the curate job itself still needed past it, which on a loaded
 * machine can be minutes of Spark and is no part of the takeover.
 */
const TAKEOVER_LIMIT_MS = 3 * 60_000;

/** When the job's wrapper recorded its exit code (spark/runner.ts keeps it in <dataDir>/run). */
const jobEndedAt = (name: string) => statSync(join(dataDir, 'run', `spark-${name}.exit`)).mtimeMs;
const jobRecord = (name: string) => JSON.parse(readFileSync(join(dataDir, 'run', `spark-${name}.job.json`), 'utf8')) as { pid: number; startedAt: string };

/** `bin/smartcity worker` as a child process on this test's data dir and task queue. */
function workerProcess(env: Record<string, string> = {}): ChildProcess {
  return spawn(join(PROJECT_ROOT, 'bin', 'smartcity'), ['worker'], {
    env: { ...process.env, SMARTCITY_DATA_DIR: dataDir, SMARTCITY_LAKE_ROOT: config.lakeRoot, SMARTCITY_TASK_QUEUE: config.temporal.taskQueue, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

describe('a worker dying mid-curate, with real workers, Spark and Temporal', () => {
  let history: FleetHistory;
  const children: ChildProcess[] = [];

  before(async () => {
    history = await ingestFleetHistory(config, { run, vehicles: 2, seed: 404, start: START, until: new Date(window.to), conf: { 'spark.ui.enabled': 'false' } });
  }, SLOW);

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stopSparkJob(config, curateJobName(window), 5_000);
    const admin = createKafka(config).admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      await admin.deleteTopics({ topics: Object.values(history?.topics ?? {}).filter((t) => existing.has(t)) });
    } finally {
      await admin.disconnect();
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('SIGKILLed mid-curate: another worker attaches to the running job and the window completes within 3 minutes', SLOW, async () => {
    const { client, close } = await connectClient(config);
    // The workflow bundle is built before the kill, so the survivor starts polling at once
    // (bundling takes CPU seconds on a busy machine; that is not what the invariant is about).
    await workflowBundlePath();
    const dying = workerProcess();
    children.push(dying);
    const exited = new Promise((resolve) => dying.once('exit', resolve));
    try {
      const handle = await client.workflow.start(batchRun, { taskQueue: config.temporal.taskQueue, workflowId: `failover-${run}`, args: [{ window }] });
      const name = curateJobName(window);
      await until('the curate job to run', async () => ((await sparkJobStatus(config, name)).state === 'running' ? true : undefined), { timeoutMs: 4 * 60_000, everyMs: 250 });
      const started = jobRecord(name);

      dying.kill('SIGKILL');
      await exited;
      const killedAt = Date.now();
      assert.equal((await sparkJobStatus(config, name)).state, 'running', 'the curate job outlives its worker (own process group)');

      const survivor = await startWorker(config);
      try {
        const result = await handle.result();
        const completedAt = Date.now();
        const jobRanOnMs = Math.max(0, jobEndedAt(name) - killedAt);
        const tookMs = completedAt - killedAt - jobRanOnMs;
        assert.ok(
          tookMs < TAKEOVER_LIMIT_MS,
          `the window completed ${Math.round((completedAt - killedAt) / 1000)} s after the worker died, of which the curate job ran on ${Math.round(jobRanOnMs / 1000)} s`,
        );
        assert.deepEqual(jobRecord(name), started, 'the retried curate attached to the job; it did not start another');
        assert.equal((await sparkJobStatus(config, name)).state, 'succeeded');

        // The generator is the source of truth: every event of the window, each once, in the warehouse.
        const inWindow = (t: string) => Date.parse(t) >= Date.parse(window.from) && Date.parse(t) < Date.parse(window.to);
        const expected = new Map(SOURCES.map((s) => [s, history.events.filter((e) => e.source === s && inWindow(e.eventTime)).map((e) => e.eventId).sort()]));
        await withDatabase(warehousePath(config), async (conn) => {
          for (const source of SOURCES) {
            const rows = await queryRows(conn, `SELECT event_id FROM ${source} WHERE event_time >= $from::TIMESTAMPTZ AND event_time < $to::TIMESTAMPTZ ORDER BY event_id`, window);
            assert.deepEqual(rows.map((r) => r.event_id), expected.get(source), `warehouse ${source} holds the window's events exactly once`);
          }
        }, { readOnly: true });
        assert.ok(result.checks.every((c) => c.passed));
        assert.ok(expected.get('vehicle')!.length > 100, 'the window has data');
      } finally {
        survivor.worker.shutdown();
        await survivor.done;
      }
    } finally {
      await close();
    }
  });

  test('shut down while Temporal is unreachable, a worker stops its curate job', SLOW, async () => {
    // A Temporal server of this test's own, which it then kills: the suite's stack stays up.
    const temporal = await createDevServerEnv(config);
    let stopped = false;
    const own: Config = { ...config, temporal: { ...config.temporal, address: temporal.address, taskQueue: `failover-down-${run}` } };
    const other = { from: '2026-03-04T07:00:00.000Z', to: '2026-03-04T07:05:00.000Z' };
    const name = curateJobName(other);
    try {
      const worker = await startWorker(own, { shutdownGraceTime: '1s' });
      const client = new Client({ connection: await Connection.connect({ address: temporal.address }) });
      await client.workflow.start(batchRun, { taskQueue: own.temporal.taskQueue, workflowId: `failover-down-${run}`, args: [{ window: other }] });
      await until('the curate job to run', async () => ((await sparkJobStatus(own, name)).state === 'running' ? true : undefined), { timeoutMs: 4 * 60_000, everyMs: 250 });
      await client.connection.close();

      await temporal.teardown();
      stopped = true;
      worker.worker.shutdown();
      await within(worker.done.catch(() => undefined), 90_000, () => assert.fail('the worker did not shut down within 90 s'));
      const status = await sparkJobStatus(own, name);
      assert.notEqual(status.state, 'running', 'no curate job is left running without its worker');
    } finally {
      if (!stopped) await temporal.teardown();
      await stopSparkJob(own, name, 5_000);
    }
  });
});
