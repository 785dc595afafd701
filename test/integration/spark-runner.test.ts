// The Spark job runner against the real local Spark and the configured Kafka broker (the test stack's).
// One streaming job serves the running / progress / stop tests, because Spark takes 10–15 s to
// start; the curate run then reads the lake that job wrote. Topics, lake and job names are this
// run's own, so runs never see each other's data.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
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
import { lakeIds } from '../helpers/lake';
import { until, when } from '../helpers/until';
import { CONNECT_SERVER, connectSessionId, sparkConnectUiUrl, sparkConnectUrl } from '../../spark/connect';
import { runningProcess } from '../../stack/processes';

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

/** Fails a wait on the streaming job with the job's log tail (`.catch` it onto the `until`). */
async function withJobLog(err: unknown): Promise<never> {
  assert.fail(`${(err as Error).message}; log:\n${await sparkJobLogTail(config, streamName, 30)}`);
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

// The lake and topics serve both suites below (the Spark Connect one curates what the first wrote).
after(async () => {
  await deleteTopics(config, Object.values(topics));
  rmSync(lake, { recursive: true, force: true });
});

describe('Spark job runner against real Spark and Kafka', () => {
  after(async () => {
    for (const name of [streamName, curateName, badName]) await stopSparkJob(config, name, 5_000);
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
    const first = await until('the first batch', async () => (await sparkJobStatus(config, streamName)).lastProgress as IngestProgress | undefined).catch(withJobLog);
    assert.equal(first.consumed, firstWave.length);
    assert.equal(Object.values(first.valid).reduce((a, b) => a + b, 0), firstWave.length);

    assert.equal(await produce(secondWave), secondWave.length);
    const total = events.length;
    await until('the second wave', async () => {
      const consumed = readProgress(progressFile).reduce((sum, p) => sum + (p as IngestProgress).consumed, 0);
      return consumed >= total ? true : undefined;
    }).catch(withJobLog);
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
    await until(
      'the process group to be gone',
      async () => {
        try {
          process.kill(-pid, 0);
          return undefined;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code;
        }
      },
      { timeoutMs: 2_000 },
    )
      .catch(withJobLog)
      .then((code) => assert.equal(code, 'ESRCH'));
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

/**
 * The Spark Connect server's SQL executions of one session that are running, from its own REST
 * API: the test's view of "nothing of that job runs any more", read apart from the runner's code.
 */
async function serverRuns(session: string): Promise<number[]> {
  const ui = sparkConnectUiUrl(config);
  const [app] = (await (await fetch(`${ui}/api/v1/applications`)).json()) as { id: string }[];
  const executions = (await (await fetch(`${ui}/api/v1/applications/${app!.id}/sql?details=false&length=100000`)).json()) as { id: number; status: string; description: string }[];
  return executions.filter((e) => e.status === 'RUNNING' && e.description.includes(`session_id: "${session}"`)).map((e) => e.id);
}

/** Waits (polling every 25 ms: a curate's operations last a second or so) until the session runs something in the server. */
function untilServerRuns(session: string): Promise<number[]> {
  return until(`session ${session} to run something in the server`, async () => {
    const running = await serverRuns(session);
    return running.length > 0 ? running : undefined;
  }, { timeoutMs: 60_000, everyMs: 25 });
}

/** The generator's events of the window, each exactly once in the curated layer: the truth the runs are checked against. */
async function assertCuratedExactly(window: { from: string; to: string }): Promise<void> {
  const [from, to] = [Date.parse(window.from), Date.parse(window.to)];
  for (const source of SOURCES) {
    const expected = events.filter((e) => e.source === source && Date.parse(e.eventTime) >= from && Date.parse(e.eventTime) < to).map((e) => e.eventId);
    const curated = await lakeIds(lake, 'curated', source);
    assert.deepEqual([...curated.counts.keys()].sort(), [...new Set(expected)].sort(), `${source}: the generator's events of the window`);
    assert.ok([...curated.counts.values()].every((n) => n === 1), `${source}: each event once`);
  }
}

describe('curate as a client of the Spark Connect server', () => {
  const window = { from: START.toISOString(), to: new Date(START.getTime() + 3_600_000).toISOString() };
  const name = `it-${run}-connect`;
  const session = connectSessionId(config, name);
  const spec = { name, job: 'curate', connect: true, args: { lakeRoot: lake, ...window } } as const;
  after(async () => {
    await stopSparkJob(config, name, 5_000);
  });

  test('it curates what spark-submit curates: the generator\'s events of the window, each once', SLOW, async () => {
    const result = await runSparkJob(config, spec);
    assert.equal(result.state, 'succeeded', result.logTail);
    const sources = (result.summary?.sources ?? {}) as Record<string, { rows_written: number }>;
    assert.equal(Object.values(sources).reduce((sum, s) => sum + s.rows_written, 0), events.length);
    await assertCuratedExactly(window);
    // A plain Python process: no JVM of its own.
    const job = JSON.parse(readFileSync(join(config.dataDir, 'run', `spark-${name}.job.json`), 'utf8')) as { command: string[] };
    assert.ok(!job.command.some((arg) => arg.endsWith('spark-submit')), job.command.join(' '));
  });

  test('a client SIGKILLed while the server runs its operation: the next run takes the session over (interrupts, waits) before it curates', SLOW, async (t) => {
    const handle = await startSparkJob(config, spec);
    await untilServerRuns(session);
    process.kill(-handle.pid, 'SIGKILL');
    // Usually still running: the server does not notice a client's death (an operation may also just have ended).
    t.diagnostic(`left running in the server after the kill: ${JSON.stringify(await serverRuns(session))}`);
    const ended = await until(`job ${name} to end`, when(() => sparkJobStatus(config, name), (s) => s.state !== 'running'), { timeoutMs: 10_000, everyMs: 100 });
    assert.equal(ended.state, 'failed');
    // The retry (an activity's next attempt) runs under the same session and interrupts what is left first.
    const result = await runSparkJob(config, spec);
    assert.equal(result.state, 'succeeded', result.logTail);
    assert.deepEqual(await serverRuns(session), []);
    await assertCuratedExactly(window);
  });

  test('stopping a client ends its operations in the server before it returns', SLOW, async () => {
    await startSparkJob(config, spec);
    await untilServerRuns(session);
    const stopped = await stopSparkJob(config, name, 15_000);
    assert.equal(stopped.status.state, 'stopped');
    assert.deepEqual(await serverRuns(session), [], 'no operation of the stopped job runs in the server');
  });

  test('a curate that finds the server killed starts it again and runs', SLOW, async () => {
    const server = runningProcess(config.dataDir, CONNECT_SERVER);
    assert.ok(server, 'the test stack runs the Spark Connect server');
    process.kill(server.pid, 'SIGKILL');
    const result = await runSparkJob(config, spec);
    assert.equal(result.state, 'succeeded', result.logTail);
    const restarted = runningProcess(config.dataDir, CONNECT_SERVER);
    assert.ok(restarted && restarted.pid !== server.pid, 'a new server process, under the stack\'s record');
    await assertCuratedExactly(window);
  });

  test('the server refuses a client that is not on this machine', SLOW, async () => {
    const address = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!address) return assert.fail('this machine has no non-loopback IPv4 address to connect from');
    const python = join(config.toolsDir, 'venv', 'bin', 'python');
    const remote = sparkConnectUrl(config).replace('127.0.0.1', address);
    const probe = spawnSync(python, ['-c', `from pyspark.sql import SparkSession\nprint(SparkSession.builder.remote(${JSON.stringify(remote)}).getOrCreate().range(3).count())`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(probe.status, 0, probe.stdout);
    assert.match(probe.stderr, /PERMISSION_DENIED/);
  });
});
