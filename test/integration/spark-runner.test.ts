// The Spark job runner against the real local Spark and the configured Kafka broker (the test stack's).
// One streaming job serves the running / progress / stop tests, because Spark takes 10–15 s to
// start; the curate run then reads the lake that job wrote. Topics, lake and job names are this
// run's own, so runs never see each other's data.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../config';
import { EventProducer } from '../../producers/event-producer';
import { fleetEvents } from '../../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../../schemas';
import {
  readProgress,
  runSparkJob,
  sparkJobLogTail,
  sparkJobStatus,
  startSparkJob,
  stopSparkJob,
  type IngestProgress,
  type SparkJobSpec,
} from '../../spark/runner';
import { deleteTopics } from '../helpers/kafka';

const config = loadConfig();
const run = randomUUID().slice(0, 8);
const topics = Object.fromEntries(SOURCES.map((s) => [s, `it_${run}_spark_${s}`])) as Record<Source, string>;
const lake = mkdtempSync(join(tmpdir(), 'smartcity-spark-runner-'));
const streamName = `it-${run}-stream`;
const curateName = `it-${run}-curate`;
const badName = `it-${run}-bad`;
// A hung job must fail its test, not the whole run; after() then stops it.
const SLOW = { timeout: 240_000 };
// No web UI (port 4040 may be taken, and it costs a core's time); few shuffle partitions on two cores.
const conf = { 'spark.ui.enabled': 'false', 'spark.sql.shuffle.partitions': '4' };

const START = new Date('2026-03-02T07:00:00Z');
const events: SmartCityEvent[] = [];
for (const e of fleetEvents({ vehicles: 3, seed: 11, start: START })) {
  if (events.length === 400) break;
  events.push(e);
}
const [firstWave, secondWave] = [events.slice(0, 300), events.slice(300)];

async function produce(batch: SmartCityEvent[]): Promise<number> {
  const producer = new EventProducer(config, { topics });
  await producer.connect();
  for (const e of batch) await producer.send(e);
  return (await producer.close()).acked;
}

/** Polls `check` until it returns a value; on timeout fails with the job's log tail. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs / 1000} s; log:\n${await sparkJobLogTail(config, streamName, 30)}`);
    await sleep(500);
  }
}

/** The environment of every live process in a process group (the job's shell, spark-submit's JVM, the Python driver). */
function groupEnvironments(pgid: number): Map<number, Map<string, string>> {
  const found = new Map<number, Map<string, string>>();
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      const pairs = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').filter(Boolean);
      found.set(Number(entry), new Map(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

// Secret-looking variables of the starter's environment: none may reach the job.
const LEAKS = { SMARTCITY_TEMPORAL_API_KEY: `tmprl-${run}`, RUNNER_TEST_SECRET_TOKEN: `secret-${run}` };

const streamSpec: SparkJobSpec = { name: streamName, job: 'stream_ingest', conf, args: { lakeRoot: lake, topics, triggerSeconds: 2, stopTimeoutSeconds: 20 } };

describe('Spark job runner against real Spark and Kafka', () => {
  after(async () => {
    for (const name of [streamName, curateName, badName]) await stopSparkJob(config, name, 5_000);
    await deleteTopics(config, Object.values(topics));
    rmSync(lake, { recursive: true, force: true });
  });

  test('a started streaming job runs, and its progress counts every event produced', SLOW, async () => {
    assert.equal(await produce(firstWave), firstWave.length);
    Object.assign(process.env, LEAKS);
    let handle;
    try {
      handle = await startSparkJob(config, streamSpec);
    } finally {
      for (const name of Object.keys(LEAKS)) delete process.env[name];
    }
    const progressFile = join(lake, '_progress', 'ingest.jsonl');
    assert.equal(handle.progressFile, progressFile);
    const status = await sparkJobStatus(config, streamName);
    assert.equal(status.state, 'running');
    assert.equal(status.pid, handle.pid);
    // A retried start (an activity retry) finds the job it started, not a second one.
    assert.equal((await startSparkJob(config, streamSpec)).pid, handle.pid);

    // Produced before the start: the first batch takes all of it.
    const first = await waitFor('the first batch', async () => (await sparkJobStatus(config, streamName)).lastProgress as IngestProgress | undefined);
    assert.equal(first.consumed, firstWave.length);
    assert.equal(Object.values(first.valid).reduce((a, b) => a + b, 0), firstWave.length);

    assert.equal(await produce(secondWave), secondWave.length);
    const total = events.length;
    await waitFor('the second wave', async () => {
      const consumed = readProgress(progressFile).reduce((sum, p) => sum + (p as IngestProgress).consumed, 0);
      return consumed >= total ? true : undefined;
    });
    const lines = readProgress(progressFile).map((p) => p as IngestProgress);
    assert.equal(lines.reduce((sum, p) => sum + p.consumed, 0), total);
    const now = await sparkJobStatus(config, streamName);
    assert.equal(now.state, 'running');
    assert.deepEqual(now.lastProgress, lines[lines.length - 1]);

    // Started with the secrets in our environment; the JVM and the Python driver run by now.
    const environments = groupEnvironments(handle.pid);
    assert.ok(environments.size >= 3, `the shell, the JVM and the Python driver: found ${environments.size}`);
    for (const [pid, env] of environments) {
      for (const [name, value] of Object.entries(LEAKS)) {
        assert.ok(![...env.values()].some((v) => v.includes(value)), `${name}'s value reached pid ${pid}`);
      }
      assert.equal(env.get('SPARK_LOCAL_IP'), '127.0.0.1');
    }
  });

  test('stopping it ends its whole process group, and it reports stopped', SLOW, async () => {
    const { pid } = await sparkJobStatus(config, streamName);
    assert.ok(pid, 'the streaming job is running');
    const stopped = await stopSparkJob(config, streamName, 60_000);
    // Idle between batches, it ends on SIGTERM by itself, with its exit code recorded.
    assert.equal(stopped.outcome, 'exited');
    assert.equal(stopped.status.state, 'stopped');
    assert.equal(stopped.status.exitCode, 0);
    // The wrapper shell is this process's child: a zombie until our event loop reaps it.
    await waitFor('the process group to be gone', async () => {
      try {
        process.kill(-pid, 0);
        return undefined;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code;
      }
    }, 2_000).then((code) => assert.equal(code, 'ESRCH'));
    assert.equal((await sparkJobStatus(config, streamName)).state, 'stopped');
    assert.equal((await stopSparkJob(config, streamName)).outcome, 'not-running');
  });

  test('a batch job run to completion succeeds with exit code 0 and its summary; its owner takes the result again, others run it again', SLOW, async () => {
    const spec = {
      name: curateName,
      job: 'curate',
      conf,
      args: { lakeRoot: lake, from: START.toISOString(), to: new Date(START.getTime() + 3_600_000).toISOString() },
    } as const;
    const result = await runSparkJob(config, { ...spec, owner: 'run-1/activity-1' });
    assert.equal(result.state, 'succeeded', result.logTail);
    assert.equal(result.exitCode, 0);
    assert.equal(result.logTail, undefined);
    const sources = (result.summary?.sources ?? {}) as Record<string, { rows_written: number }>;
    assert.equal(Object.values(sources).reduce((sum, s) => sum + s.rows_written, 0), events.length);

    // A retry of the same activity (its worker died while the job ran on) is not curated again.
    const retried = await runSparkJob(config, { ...spec, owner: 'run-1/activity-1' });
    assert.equal(retried.startedAt, result.startedAt, 'the same owner took the finished run');
    assert.deepEqual(retried.summary, result.summary);
    // Another owner (a forced or late-data re-run of the window) curates afresh.
    const rerun = await runSparkJob(config, { ...spec, owner: 'run-2/activity-1' });
    assert.equal(rerun.state, 'succeeded', rerun.logTail);
    assert.notEqual(rerun.startedAt, result.startedAt, 'another owner started the job again');
  });

  test('a job given a bad argument fails, and its log tail names the problem', SLOW, async () => {
    const result = await runSparkJob(config, { ...streamSpec, name: badName, extraArgs: ['--starting-offsets', 'yesterday'] });
    assert.equal(result.state, 'failed');
    assert.equal(result.exitCode, 2);
    assert.match(result.logTail ?? '', /--starting-offsets: invalid choice: 'yesterday'/);
    assert.match(await sparkJobLogTail(config, badName, 5), /invalid choice: 'yesterday'/);
  });

  test('a job that was never started is unknown', async () => {
    assert.equal((await sparkJobStatus(config, `it-${run}-never`)).state, 'unknown');
    assert.equal((await stopSparkJob(config, `it-${run}-never`)).outcome, 'not-running');
  });
});
