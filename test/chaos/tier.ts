// The chaos tier's harness: its own data folder and ports, the log of what happened when, the
// `smartcity` CLI and worker processes it starts (a worker that exits without being killed by the
// tier is an incident, and is replaced so the scenario goes on), bounded waits that say what did
// not happen, the checks, and the clean-up that leaves no process of the data folder behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { loadConfig, PROJECT_ROOT, type Config } from '../../config';
import { createKafka } from '../../kafka/client';
import { SOURCES, TOPICS } from '../../schemas';
import { connectClient } from '../../temporal/connection';
import { isAlive, kill, killAll, waitGone } from '../helpers/processes';
import { NotYet, until, within } from '../helpers/until';

/** The tier's ports before SMARTCITY_TEST_PORT_OFFSET: clear of the suite's (27233, 29092, …). */
const BASE_PORTS = { temporal: 25233, temporalUi: 26233, kafka: 31092, kafkaController: 31093, sparkConnect: 31002, sparkConnectUi: 31050 };
/** What cli/worker.ts prints once it polls. */
const WORKER_READY_LINE = 'worker polling task queue';
const WORKER_START_TIMEOUT_MS = 240_000;
const WORKER_STOP_GRACE_MS = 60_000;

export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

export class TierAborted extends Error {
  override name = 'TierAborted';
}

export interface Check {
  name: string;
  passed: boolean;
  detail: string;
}

export interface Incident {
  at: number;
  phase: string;
  what: string;
  evidence: string;
}

interface WorkerProcess {
  n: number;
  pid: number;
  child: ChildProcess;
  log: string;
  /** Killed or stopped by the tier: its exit is no incident. */
  expected: boolean;
  exited: boolean;
}

export function tierEnvironment(dataDir: string, offset: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['SMARTCITY_CONFIG', 'SMARTCITY_KAFKA_BROKERS', 'SMARTCITY_TEMPORAL_ADDRESS', 'SMARTCITY_TARGET', 'SMARTCITY_LAKE_ROOT', 'SMARTCITY_TASK_QUEUE']) {
    delete env[name];
  }
  return {
    ...env,
    SMARTCITY_DATA_DIR: dataDir,
    SMARTCITY_TEMPORAL_PORT: String(BASE_PORTS.temporal + offset),
    SMARTCITY_TEMPORAL_UI_PORT: String(BASE_PORTS.temporalUi + offset),
    SMARTCITY_KAFKA_PORT: String(BASE_PORTS.kafka + offset),
    SMARTCITY_KAFKA_CONTROLLER_PORT: String(BASE_PORTS.kafkaController + offset),
    SMARTCITY_SPARK_CONNECT_PORT: String(BASE_PORTS.sparkConnect + offset),
    SMARTCITY_SPARK_CONNECT_UI_PORT: String(BASE_PORTS.sparkConnectUi + offset),
  };
}

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function tail(path: string, lines: number): string {
  if (!existsSync(path)) return '(no log)';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** What a crashed process's log says killed it: the first error line of its tail and where it was thrown. */
function crashEvidence(path: string): string {
  const lines = tail(path, 100).split('\n');
  const at = lines.findIndex((line) => /^\w*(Error|Exception)\b.*:|unhandled|Unhandled/.test(line));
  if (at < 0) return lines.slice(-6).join('\n');
  const frame = lines.slice(at + 1).find((line) => /^\s+at /.test(line));
  return [lines[at]!, ...(frame ? [frame.trim()] : [])].join('\n');
}

export class Tier {
  readonly t0 = Date.now();
  readonly env: NodeJS.ProcessEnv;
  readonly config: Config;
  readonly checks: Check[] = [];
  readonly incidents: Incident[] = [];
  /** Attributed to incidents: the fault under way, or the stage of the scenario. */
  phase = 'setup';
  aborted = false;
  private workers: WorkerProcess[] = [];
  private stopping = false;
  private temporal: { client: Client; close: () => Promise<void> } | undefined;

  constructor(
    readonly dataDir: string,
    offset: number,
    private readonly deadline: number,
  ) {
    this.env = tierEnvironment(dataDir, offset);
    this.config = loadConfig(this.env);
  }

  get lakeRoot(): string {
    return this.config.lakeRoot;
  }

  log(line: string): void {
    const elapsed = Math.round((Date.now() - this.t0) / 1000);
    console.log(`[+${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')} ${clock(Date.now())}] ${line}`);
  }

  /** `+mm:ss (hh:mm:ss)` of an instant, for the summary. */
  when(ms: number): string {
    const elapsed = Math.round((ms - this.t0) / 1000);
    return `+${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')} (${clock(ms)})`;
  }

  check(name: string, passed: boolean, detail: string): void {
    this.checks.push({ name, passed, detail });
    this.log(`${passed ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  }

  /**
   * `until` (every 2 s by default) on the tier's terms: an error of `probe` is retried (the last one
   * ends the timeout's message), the tier's interruption ends the wait (TierAborted) and so does the
   * end of its total time; a timeout is a WaitTimeout.
   */
  async until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, options: { timeoutMs: number; everyMs?: number }): Promise<T> {
    const { timeoutMs, everyMs = 2_000 } = options;
    const left = this.deadline - Date.now();
    try {
      return await until(
        what,
        async () => {
          if (this.aborted) throw new TierAborted(`interrupted while waiting for ${what}`);
          try {
            return await probe();
          } catch (err) {
            throw new NotYet(err instanceof Error ? `last error: ${err.message.split('\n')[0]}` : '');
          }
        },
        { timeoutMs: Math.max(0, Math.min(timeoutMs, left)), everyMs },
      );
    } catch (err) {
      if (err instanceof TierAborted) throw err;
      throw new WaitTimeout(`${(err as Error).message}${left < timeoutMs ? ' (the tier ran out of its total time)' : ''}`);
    }
  }

  async pause(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!this.aborted && Date.now() < end) await sleep(Math.min(500, end - Date.now()));
  }

  /** Runs `bin/smartcity …` with the tier's environment; resolves with its exit code and output. */
  cli(args: string[], timeoutMs = 240_000): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve) => {
      const child = spawn(join(PROJECT_ROOT, 'bin', 'smartcity'), args, { env: this.env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const timer = setTimeout(() => {
        output += `\n(killed after ${seconds(timeoutMs)})`;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, output: output.trim() });
      });
    });
  }

  /** `smartcity stack up`, retried once (a port a killed process held may take a moment to free). */
  async stackUp(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { code, output } = await this.cli(['stack', 'up']);
      if (code === 0) return;
      if (attempt === 2) throw new Error(`smartcity stack up failed (exit ${code}):\n${output}`);
      this.log(`stack up failed (exit ${code}), trying once more: ${output.split('\n').slice(-3).join(' | ')}`);
      await sleep(5_000);
    }
  }

  // ---- Temporal ----

  async client(): Promise<Client> {
    this.temporal ??= await connectClient(this.config, 10_000);
    return this.temporal.client;
  }

  /** A call to Temporal that gives up after `timeoutMs` (the server may be down, a query may find no worker). */
  async ask<T>(call: (client: Client) => Promise<T>, timeoutMs = 10_000): Promise<T> {
    const client = await this.client();
    const attempt = call(client);
    attempt.catch(() => undefined);
    return within(attempt, timeoutMs, () => Promise.reject(new Error(`Temporal did not answer within ${seconds(timeoutMs)}`)));
  }

  // ---- Kafka ----

  /** High watermark of every partition of the five topics, `topic/partition` → offset. */
  async watermarks(): Promise<Map<string, number>> {
    const admin = createKafka(this.config, { log: () => undefined, retries: 0, connectionTimeoutMs: 2_000, requestTimeoutMs: 5_000 }).admin();
    await admin.connect();
    try {
      const out = new Map<string, number>();
      for (const source of SOURCES) {
        for (const p of await admin.fetchTopicOffsets(TOPICS[source])) out.set(`${TOPICS[source]}/${p.partition}`, Number(p.high));
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }

  // ---- workers ----

  get worker(): WorkerProcess | undefined {
    return this.workers.filter((w) => !w.exited && !w.expected).at(-1);
  }

  /** Starts `bin/smartcity worker` as its own process and waits until it polls. */
  async startWorker(): Promise<WorkerProcess> {
    const n = this.workers.length + 1;
    const log = join(this.dataDir, 'logs', `worker-${n}.log`);
    mkdirSync(join(this.dataDir, 'logs'), { recursive: true });
    const fd = openSync(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, ['--import', join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs'), join(PROJECT_ROOT, 'cli', 'main.ts'), 'worker'], {
        cwd: PROJECT_ROOT,
        env: this.env,
        detached: true,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) throw new Error('could not start a worker process');
    child.unref();
    const worker: WorkerProcess = { n, pid: child.pid, child, log, expected: false, exited: false };
    this.workers.push(worker);
    child.on('exit', (code, signal) => {
      worker.exited = true;
      if (worker.expected || this.stopping) return;
      const evidence = crashEvidence(log);
      this.incidents.push({ at: Date.now(), phase: this.phase, what: `worker ${n} (pid ${worker.pid}) exited by itself (${signal ?? `exit code ${code}`})`, evidence });
      this.log(`INCIDENT: worker ${n} (pid ${worker.pid}) exited by itself (${signal ?? `exit code ${code}`}); last lines of ${log}:\n${evidence}`);
      this.log('starting a replacement worker so the scenario goes on');
      this.startWorker().catch((err: unknown) => this.log(`the replacement worker did not start: ${(err as Error).message}`));
    });
    await this.until(`worker ${n} (pid ${child.pid}) to poll its task queue`, () => {
      if (worker.exited) throw new Error(`worker ${n} exited during start-up:\n${tail(log, 12)}`);
      return readFileSync(log, 'utf8').includes(WORKER_READY_LINE) ? true : undefined;
    }, { timeoutMs: WORKER_START_TIMEOUT_MS, everyMs: 500 });
    this.log(`worker ${n} (pid ${child.pid}) polls`);
    return worker;
  }

  /** SIGKILL to the worker's node process only (its Spark jobs run in their own process groups). */
  killWorker(worker: WorkerProcess): void {
    worker.expected = true;
    kill(worker.pid, 'SIGKILL');
  }

  incidentsSince(ms: number): Incident[] {
    return this.incidents.filter((i) => i.at >= ms);
  }

  /** SIGTERM to every worker still running (their documented stop), SIGKILL after the grace time. */
  async stopWorkers(): Promise<string[]> {
    this.stopping = true;
    const running = this.workers.filter((w) => !w.exited && isAlive(w.pid));
    for (const w of running) {
      w.expected = true;
      kill(w.pid, 'SIGTERM');
    }
    const survivors = await waitGone(
      running.map((w) => w.pid),
      WORKER_STOP_GRACE_MS,
    );
    for (const pid of survivors) kill(pid, 'SIGKILL');
    return survivors.map((pid) => `worker pid ${pid} ignored SIGTERM for ${seconds(WORKER_STOP_GRACE_MS)}`);
  }

  /**
   * Leaves nothing of the data folder running, whatever state the run ended in: workers, the
   * stack (`stack down`, its documented stop), then SIGTERM and SIGKILL to anything left.
   * Returns what had to be killed.
   */
  async cleanUp(): Promise<string[]> {
    this.stopping = true;
    await this.temporal?.close().catch(() => undefined);
    this.temporal = undefined;
    await this.stopWorkers();
    await this.cli(['stack', 'down'], 120_000);
    return killAll(this.dataDir);
  }

}
