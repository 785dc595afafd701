// Every documented way of stopping the local pipeline, run as a user runs it, on a stack of its own
// (own ports, own data folder): after each, /proc is searched for the Spark processes (the job's
// shell, spark-submit's JVM, the Python driver) of this data folder. Ctrl-C of `smartcity start`,
// `smartcity pipeline stop` and `smartcity demo --stop` leave none; SIGTERM to the worker leaves
// exactly the streaming job, by design (the pipeline still runs: the next worker watches it again),
// and `stack down` then refuses to stop the stack under it, naming how to stop the pipeline.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { PROJECT_ROOT, loadConfig } from '../../config';
import { LocalPipeline, WORKER_PROCESS } from '../../cli/local-run';
import { sparkJobStatus } from '../../spark/runner';
import { stackDown, stackStatus } from '../../stack';
import { isAlive, runningProcess } from '../../stack/processes';
import { connectClient } from '../../temporal/connection';
import { DEFAULT_STREAMING_JOB, PIPELINE_WORKFLOW_ID } from '../../workflows';
import { runCli } from '../helpers/cli';
import { until, within } from '../helpers/until';

const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-stop-paths-'));
const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
// This file runs in a process of its own: the CLI and the worker processes inherit these.
Object.assign(process.env, {
  SMARTCITY_DATA_DIR: dataDir,
  SMARTCITY_TEMPORAL_PORT: String(37234 + offset),
  SMARTCITY_TEMPORAL_UI_PORT: String(38234 + offset),
  SMARTCITY_KAFKA_PORT: String(39094 + offset),
  SMARTCITY_KAFKA_CONTROLLER_PORT: String(39095 + offset),
  SMARTCITY_SPARK_CONNECT_PORT: String(35003 + offset),
  SMARTCITY_SPARK_CONNECT_UI_PORT: String(34051 + offset),
  SMARTCITY_TASK_QUEUE: `stop-paths-${randomUUID()}`,
});
for (const name of ['SMARTCITY_CONFIG', 'SMARTCITY_KAFKA_BROKERS', 'SMARTCITY_TEMPORAL_ADDRESS', 'SMARTCITY_TARGET', 'SMARTCITY_LAKE_ROOT']) delete process.env[name];
const config = loadConfig();
const STEP = { timeout: 12 * 60_000 };

/** Live processes whose command line or environment names this data folder, with their command lines. */
function processesOfDataDir(): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      const ofDataDir = cmdline.includes(dataDir) || readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`SMARTCITY_DATA_DIR=${dataDir}`);
      if (ofDataDir && isAlive(Number(entry))) found.push({ pid: Number(entry), cmdline });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** The Spark jobs' processes of this data folder: a job's shell, spark-submit's JVM, the Python driver (not the stack's Spark Connect server). */
const sparkProcesses = () => processesOfDataDir().filter((p) => /spark/i.test(p.cmdline) && !p.cmdline.includes('SparkConnectServer'));
const describeProcesses = (list: { pid: number; cmdline: string }[]) => list.map((p) => `${p.pid}: ${p.cmdline.slice(0, 200)}`).join('\n');

/** Waits until the streaming job's JVM runs: then stopping has something to leave behind. */
const streamingJvm = () =>
  until(
    'the streaming job\'s JVM',
    async () =>
      (await sparkJobStatus(config, DEFAULT_STREAMING_JOB)).state === 'running' ? sparkProcesses().find((p) => p.cmdline.includes('org.apache.spark.deploy.SparkSubmit')) : undefined,
    { timeoutMs: 6 * 60_000, everyMs: 1_000 },
  );

async function controllerRunning(): Promise<boolean> {
  const { client, close } = await connectClient(config);
  try {
    return await client.workflow
      .getHandle(PIPELINE_WORKFLOW_ID)
      .describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);
  } finally {
    await close();
  }
}

const startWorker = () => new LocalPipeline(config, () => {}).workerUp();

describe('stopping the local pipeline leaves no Spark JVM behind', { timeout: 50 * 60_000 }, () => {
  after(async () => {
    await stackDown(config).catch(() => undefined);
    const left = processesOfDataDir();
    for (const p of left) process.kill(p.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing of this data folder may outlive the test');
  });

  test('Ctrl-C of `smartcity start` stops the fleet, the controller, the streaming job, the worker and the stack it started', STEP, async () => {
    // As a terminal does: the command in a process group of its own, SIGINT to the whole group.
    const child = spawn(join(PROJECT_ROOT, 'bin', 'smartcity'), ['start'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await streamingJvm();
    } catch (err) {
      process.kill(-child.pid!, 'SIGINT');
      throw new Error(`${(err as Error).message}\n${output.slice(-3000)}`);
    }
    process.kill(-child.pid!, 'SIGINT');
    const code = await within(exited, 5 * 60_000, () => 'timeout' as const);
    assert.equal(code, 0, output.slice(-3000));
    assert.match(output, /stopped in .*controller and streaming job/);
    assert.deepEqual(processesOfDataDir(), [], describeProcesses(processesOfDataDir()));
  });

  test('SIGTERM to the worker leaves the streaming job running (the pipeline still runs), and `stack down` refuses to stop the stack under it', STEP, async () => {
    assert.equal(runCli(['stack', 'up']).status, 0);
    const worker = await startWorker();
    const start = runCli(['pipeline', 'start', '--window-minutes', '60']);
    assert.equal(start.status, 0, start.stderr);
    const jvm = await streamingJvm();

    process.kill(worker.pid, 'SIGTERM');
    await until('the worker to exit', () => (isAlive(worker.pid) ? undefined : true), { timeoutMs: 90_000, everyMs: 1_000 });
    assert.equal(runningProcess(config.dataDir, WORKER_PROCESS), undefined);
    assert.ok(isAlive(jvm.pid), 'the streaming job lives on: a worker restart is not a cancellation');
    assert.equal((await sparkJobStatus(config, DEFAULT_STREAMING_JOB)).state, 'running');
    assert.ok(await controllerRunning());

    const down = runCli(['stack', 'down']);
    assert.equal(down.status, 1, down.stdout);
    assert.match(down.stderr, /a pipeline still runs here/);
    assert.match(down.stderr, /the controller smartcity-pipeline is open in Temporal/);
    assert.match(down.stderr, new RegExp(`Spark job ${DEFAULT_STREAMING_JOB} runs`));
    assert.match(down.stderr, /smartcity pipeline stop/);
    assert.ok((await stackStatus(config)).components.every((c) => c.state === 'running'), 'nothing was stopped');
    assert.ok(isAlive(jvm.pid));
  });

  test('`smartcity pipeline stop` returns once the streaming job has stopped', STEP, async () => {
    // The next worker picks the supervisor up where the old one left it; the stop goes through it.
    await startWorker();
    const stop = runCli(['pipeline', 'stop'], {}, 5 * 60_000);
    assert.equal(stop.status, 0, `${stop.stdout}\n${stop.stderr}`);
    assert.match(stop.stdout, /stopped smartcity-pipeline, its batch runs and the streaming job/);
    assert.deepEqual(sparkProcesses(), [], describeProcesses(sparkProcesses()));
    assert.equal(await controllerRunning(), false);
  });

  test('`smartcity demo --stop` stops the controller, the streaming job, the worker and the stack', STEP, async () => {
    const start = runCli(['pipeline', 'start', '--window-minutes', '60']);
    assert.equal(start.status, 0, start.stderr);
    await streamingJvm();
    const stop = runCli(['demo', '--stop'], {}, 6 * 60_000);
    assert.equal(stop.status, 0, `${stop.stdout}\n${stop.stderr}`);
    assert.match(stop.stdout, /stopped: controller and streaming job, worker, Spark Connect server, Kafka broker, Temporal dev server/);
    assert.deepEqual(processesOfDataDir(), [], describeProcesses(processesOfDataDir()));
  });
});
