// Runs the PySpark jobs of spark/jobs as detached spark-submit processes that outlive whoever
// started them, so a Temporal activity can start a job, return, and a later activity (on another
// worker process, after a restart) can still ask how it is doing, stop it, or read its log.
// Everything a later call needs lives in files under <dataDir>/run: the pid record of
// stack/processes.ts, plus, next to it, the job's description, its exit code and a stop marker.
// Inputs and outputs are plain JSON.
//
// Exit codes: a detached process's exit status goes to its parent only, and the starter may be
// long gone. So spark-submit runs under a small `sh` that waits for it and writes its status to a
// file (`.exit`, written to a temporary name and renamed, so a reader never sees half of it). The
// shell traps TERM/INT/HUP with a no-op: a signal sent to the process group reaches spark-submit,
// while the shell lives on to record how it ended (a trapped signal, unlike an ignored one, is
// reset to its default in spark-submit). Only SIGKILL takes the shell down with the job; then no
// exit code is written, and the stop marker tells a stop we asked for from a crash.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT, type Config, type SparkMaster } from '../config';
import type { Source } from '../schemas';
import { isAlive, logPath, runDir, runningProcess, startProcess, tailLog } from '../stack/processes';
import { jarsIn, tools } from '../stack/tools';
import { ICEBERG_EXTENSIONS } from './connect';
import { connectClientEnv, ensureConnectServer, releaseConnectSession } from './connect';

export type SparkJobKind = 'stream_ingest' | 'curate' | 'bare_copy' | 'maintain';

/** Flags of spark/jobs/stream_ingest.py; every path may be local or s3://. */
export interface IngestArgs {
  /** Default: config.lakeRoot. */
  lakeRoot?: string;
  /** Default (the job's): <lakeRoot>/checkpoints/ingest. */
  checkpoint?: string;
  /** Default (the job's): <lakeRoot>/_progress/ingest.jsonl. */
  progressFile?: string;
  schemasDir?: string;
  /** Default: the configured brokers. */
  brokers?: string[];
  /** Source → topic, for the sources that do not read their usual topic. */
  topics?: Partial<Record<Source, string>>;
  /** Kafka consumer settings; visible in the process list, so never a secret (those go by env). */
  kafkaOptions?: Record<string, string>;
  startingOffsets?: 'earliest' | 'latest';
  maxOffsetsPerTrigger?: number;
  triggerSeconds?: number;
  /** Process what Kafka holds now, then exit (the job as a batch run). */
  availableNow?: boolean;
  maxRecordBytes?: number;
  stopTimeoutSeconds?: number;
}

/** Flags of spark/jobs/bare_copy.py, the benchmark's Kafka → Parquet reference job. */
export type BareCopyArgs = Pick<IngestArgs, 'lakeRoot' | 'checkpoint' | 'progressFile' | 'brokers' | 'topics' | 'startingOffsets' | 'maxOffsetsPerTrigger' | 'triggerSeconds'> & {
  /** partitioned (default): ingest's layout and idempotency, no validation; flat: one folder through Spark's file sink. */
  layout?: 'partitioned' | 'flat';
};

/** Flags of spark/jobs/curate.py: one window [from, to) of event time, ISO-8601 UTC. */
export interface CurateArgs {
  from: string;
  to: string;
  /** Default: config.lakeRoot. */
  lakeRoot?: string;
  radiusKm?: number;
  emergencyMinutes?: number;
  weatherMaxGapMinutes?: number;
  schemasDir?: string;
  /** Spark's shuffle partitions for the run (default: the session's, 200): see curate.py. */
  shufflePartitions?: number;
  /** Where the job writes its JSON summary; default <lakeRoot>/_runs/curate/<job name>.json. */
  summaryPath?: string;
}

/** spark/jobs/maintain.py: compaction, snapshot expiry and orphan-file removal of the curated tables. */
export interface MaintainArgs {
  /** Default: config.lakeRoot. */
  lakeRoot?: string;
  /** Only these tables (default: every curated table). */
  tables?: string[];
  minInputFiles?: number;
  expireAfterMinutes?: number;
  retainLast?: number;
  orphanAfterMinutes?: number;
  shufflePartitions?: number;
  /** Default <lakeRoot>/_runs/maintain/<job name>.json. */
  summaryPath?: string;
}

interface CommonSpec {
  /** Unique per job: names its pid record, log and state files. Letters, digits, `.`, `_`, `-`. */
  name: string;
  /** Default local[2]. */
  master?: SparkMaster;
  /** Added to the job's environment (secrets belong here, never in arguments). */
  env?: Record<string, string>;
  /** Spark settings, passed as --conf key=value. */
  conf?: Record<string, string>;
  driverMemory?: string;
  /** Appended verbatim after the flags made from `args`. */
  extraArgs?: string[];
  /**
   * Who the run is for (e.g. one activity, whatever its attempt). runSparkJob does not start a job
   * again when the last run of this name, with the same owner and command, succeeded: a retry
   * whose earlier attempt died while its job ran on takes that job's result instead of redoing it.
   */
  owner?: string;
}

export type SparkJobSpec = CommonSpec &
  (
    | { job: 'stream_ingest'; args?: IngestArgs }
    | { job: 'bare_copy'; args?: BareCopyArgs }
    | {
        job: 'curate' | 'maintain';
        args: CurateArgs | MaintainArgs;
        /**
         * Run as a client of the stack's Spark Connect server (spark/connect.ts), started again
         * first if it is down, instead of as a spark-submit of its own; master, conf and
         * driverMemory are then the server's. Default false.
         */
        connect?: boolean;
      }
  );

export interface SparkJobHandle {
  name: string;
  /** The wrapper shell, leader of the job's process group. */
  pid: number;
  logPath: string;
  /** Where the job appends its progress lines, as it was told (local path or URL). */
  progressFile?: string;
  /** Where a batch job writes its summary when it is done. */
  summaryPath?: string;
  startedAt: string;
}

export type SparkJobState = 'running' | 'succeeded' | 'failed' | 'stopped' | 'unknown';

/** One line of a progress file, as the job wrote it. */
export type ProgressLine = Record<string, unknown>;

/**
 * A progress line of stream_ingest; bare_copy's lines share batch_id, ingest_time, duration_ms,
 * consumed and offsets. A type, not an interface, so that a ProgressLine converts to it directly.
 */
export type IngestProgress = {
  batch_id: number;
  /** When the batch started writing, ISO UTC; it is visible in the lake duration_ms later. */
  ingest_time: string;
  duration_ms: number;
  consumed: number;
  valid: Record<Source, number>;
  quarantined: Record<Source, number>;
  /** topic → partition → offsets [start, end) of the batch. */
  offsets: Record<string, Record<string, { start: number; end: number }>>;
  freshness_ms: number | null;
  /** Per source with valid events in the batch: the newest event time, ISO UTC. */
  newest_event_time: Partial<Record<Source, string>>;
  /** Per source with rejected records in the batch: their count per error kind. */
  quarantined_kinds: Partial<Record<Source, Record<string, number>>>;
  /** Milliseconds per phase: plan, job, read, classify, write, report (spark/README.md says what each covers). */
  phases: Record<string, number>;
};

export interface SparkJobStatus {
  name: string;
  state: SparkJobState;
  pid?: number;
  exitCode?: number;
  /** The last complete line of the progress file, when that file is on this machine. */
  lastProgress?: ProgressLine;
  /** Why the state is what it is when the exit code does not say it. */
  detail?: string;
}

export interface StopResult {
  name: string;
  /** exited: it ended within the grace period; killed: it needed SIGKILL; not-running: nothing to stop. */
  outcome: 'exited' | 'killed' | 'not-running';
  status: SparkJobStatus;
}

export interface RunResult {
  name: string;
  state: SparkJobState;
  /** When the job that gave this result started (an earlier one, when a finished run was taken over). */
  startedAt: string;
  exitCode?: number;
  durationMs: number;
  lastProgress?: ProgressLine;
  /** The job's summary file, when it wrote one on this machine. */
  summary?: Record<string, unknown>;
  /** The last lines of the log, when the job did not succeed. */
  logTail?: string;
}

interface JobRecord extends SparkJobHandle {
  job: SparkJobKind;
  command: string[];
  owner?: string;
  /** A Spark Connect client: its operations run in the server, under the job name's session. */
  connect?: true;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const MASTER = /^(local\[(\d+|\*)\]|spark:\/\/[^\s/]+)$/;
const LOG_TAIL_LINES = 40;

// $1 is the exit file; the rest is the command. Comments at the top of this file say why.
const WRAPPER = [
  'exit_file=$1; shift',
  'trap : TERM INT HUP',
  '"$@"',
  'code=$?',
  'echo "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"',
].join('\n');

/** The pid record's name: a job called `kafka` must not overwrite the broker's record. */
const processName = (name: string) => `spark-${name}`;

function files(config: Config, name: string) {
  const base = join(runDir(config.dataDir), processName(name));
  return { job: `${base}.job.json`, exit: `${base}.exit`, stop: `${base}.stop`, log: logPath(config.dataDir, processName(name)) };
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw new Error(`spark job name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 100)`);
}

const isLocalPath = (path: string) => isAbsolute(path) || path.startsWith('file:') || !/^[a-z][a-z0-9+.-]*:/i.test(path);
const localPath = (path: string) => (path.startsWith('file:') ? fileURLToPath(path) : path);

function flag(out: string[], name: string, value: string | number | undefined): void {
  if (value !== undefined) out.push(`--${name}`, String(value));
}

/** Flags the ingest and bare-copy jobs share, and the progress file the job will write. */
function streamFlags(config: Config, args: IngestArgs, defaultProgress: string): { flags: string[]; progressFile: string } {
  const lakeRoot = args.lakeRoot ?? config.lakeRoot;
  const progressFile = args.progressFile ?? `${lakeRoot.replace(/\/+$/, '')}/_progress/${defaultProgress}`;
  const flags: string[] = [];
  flag(flags, 'lake-root', lakeRoot);
  flag(flags, 'checkpoint', args.checkpoint);
  flag(flags, 'progress-file', progressFile);
  flag(flags, 'brokers', (args.brokers ?? config.kafka.brokers).join(','));
  for (const [source, topic] of Object.entries(args.topics ?? {})) flags.push('--topic', `${source}=${topic}`);
  flag(flags, 'starting-offsets', args.startingOffsets);
  flag(flags, 'max-offsets-per-trigger', args.maxOffsetsPerTrigger);
  flag(flags, 'trigger-seconds', args.triggerSeconds);
  return { flags, progressFile };
}

/** A batch job's summary: <lake>/_runs/<job>/<job name>.json, named after the job so the runner and its caller know where it is. */
const runSummaryPath = (lakeRoot: string, spec: SparkJobSpec) => `${lakeRoot.replace(/\/+$/, '')}/_runs/${spec.job}/${spec.name}.json`;

function jobArgs(config: Config, spec: SparkJobSpec): { flags: string[]; progressFile?: string; summaryPath?: string } {
  switch (spec.job) {
    case 'stream_ingest': {
      const args = spec.args ?? {};
      const { flags, progressFile } = streamFlags(config, args, 'ingest.jsonl');
      flag(flags, 'schemas-dir', args.schemasDir);
      for (const [key, value] of Object.entries(args.kafkaOptions ?? {})) flags.push('--kafka-option', `${key}=${value}`);
      if (args.availableNow) flags.push('--available-now');
      flag(flags, 'max-record-bytes', args.maxRecordBytes);
      flag(flags, 'stop-timeout-seconds', args.stopTimeoutSeconds);
      return { flags, progressFile };
    }
    case 'bare_copy': {
      const args = spec.args ?? {};
      const { flags, progressFile } = streamFlags(config, args, 'bare_copy.jsonl');
      flag(flags, 'layout', args.layout);
      return { flags, progressFile };
    }
    case 'maintain': {
      const args = spec.args as MaintainArgs;
      const lakeRoot = args.lakeRoot ?? config.lakeRoot;
      const summaryPath = args.summaryPath ?? runSummaryPath(lakeRoot, spec);
      const flags: string[] = [];
      flag(flags, 'lake-root', lakeRoot);
      for (const table of args.tables ?? []) flag(flags, 'table', table);
      flag(flags, 'min-input-files', args.minInputFiles);
      flag(flags, 'expire-after-minutes', args.expireAfterMinutes);
      flag(flags, 'retain-last', args.retainLast);
      flag(flags, 'orphan-after-minutes', args.orphanAfterMinutes);
      flag(flags, 'shuffle-partitions', args.shufflePartitions);
      flag(flags, 'summary-path', summaryPath);
      return { flags, summaryPath };
    }
    case 'curate': {
      const args = spec.args as CurateArgs;
      const lakeRoot = args.lakeRoot ?? config.lakeRoot;
      const summaryPath = args.summaryPath ?? runSummaryPath(lakeRoot, spec);
      const flags: string[] = [];
      flag(flags, 'lake-root', lakeRoot);
      flag(flags, 'from', args.from);
      flag(flags, 'to', args.to);
      flag(flags, 'radius-km', args.radiusKm);
      flag(flags, 'emergency-minutes', args.emergencyMinutes);
      flag(flags, 'shuffle-partitions', args.shufflePartitions);
      flag(flags, 'weather-max-gap-minutes', args.weatherMaxGapMinutes);
      flag(flags, 'schemas-dir', args.schemasDir);
      flag(flags, 'summary-path', summaryPath);
      return { flags, summaryPath };
    }
  }
}

/**
 * What a job inherits from the environment of whoever starts it: the system's basics and the
 * Java / Spark / Hadoop / PySpark settings. Nothing else, so that a worker's own secrets (the
 * Temporal API key, a producer's SASL password for a job that reads no Kafka) stay in the worker.
 */
const INHERITED = /^(PATH|HOME|USER|LANG|LANGUAGE|TZ|TMPDIR|JAVA_HOME|LC_[A-Z]+|(SPARK|PYSPARK|HADOOP)_[A-Z0-9_]+)$/;
/** The AWS SDK's default credential chain (profile, region, web identity, container role…). */
const AWS_CHAIN = /^AWS_[A-Z0-9_]+$/;
/** A driver on this host serves its executors on loopback; a remote cluster's must reach it on a real address. */
const LOOPBACK_MASTER = /^(local\[|spark:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):)/;

/**
 * The allow-listed part of `parent`, plus the venv's Python for PySpark: spark-submit and
 * spark-class would otherwise look for SPARK_HOME, and run drivers and the executors' Python
 * workers, with the python on PATH. Also the environment of the stack's Spark daemons, whose
 * executors inherit it.
 */
export function sparkBaseEnv(config: Config, parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const python = tools.python(config);
  return { ...Object.fromEntries(Object.entries(parent).filter(([name]) => INHERITED.test(name))), PYSPARK_PYTHON: python, PYSPARK_DRIVER_PYTHON: python };
}

/** The job's paths that may be remote (s3://…): a job touching one needs the AWS credential chain. */
function jobPaths(config: Config, spec: SparkJobSpec): string[] {
  const args: Partial<IngestArgs & CurateArgs> = spec.args ?? {};
  return [args.lakeRoot ?? config.lakeRoot, args.checkpoint, args.progressFile, args.schemasDir, args.summaryPath].filter((p): p is string => p !== undefined);
}

/**
 * The job's whole environment, built from an allow-list of `parent` plus what the job reads:
 * the data dir (its default lake root) and, for the jobs that read Kafka, its security settings,
 * which travel by environment, never as arguments.
 */
export function sparkJobEnv(config: Config, spec: SparkJobSpec, master: string, parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (viaConnect(spec)) return { ...sparkBaseEnv(config, parent), SMARTCITY_DATA_DIR: config.dataDir, ...connectClientEnv(config, spec.name), ...spec.env };
  const remote = jobPaths(config, spec).some((path) => !isLocalPath(path));
  const env = { ...sparkBaseEnv(config, parent), ...(remote && Object.fromEntries(Object.entries(parent).filter(([name]) => AWS_CHAIN.test(name)))) };
  env.SMARTCITY_DATA_DIR = config.dataDir;
  if (spec.job !== 'curate') {
    env.SMARTCITY_KAFKA_SSL = String(config.kafka.ssl);
    const sasl = config.kafka.sasl;
    if (sasl) {
      Object.assign(env, {
        SMARTCITY_KAFKA_SASL_MECHANISM: sasl.mechanism,
        SMARTCITY_KAFKA_SASL_USERNAME: sasl.username,
        SMARTCITY_KAFKA_SASL_PASSWORD: sasl.password,
      });
    }
  }
  if (LOOPBACK_MASTER.test(master) && !env.SPARK_LOCAL_IP) env.SPARK_LOCAL_IP = '127.0.0.1';
  return { ...env, ...spec.env };
}

const viaConnect = (spec: SparkJobSpec) => (spec.job === 'curate' || spec.job === 'maintain') && spec.connect === true;

/**
 * The environment of the stack's Spark Connect server: the jobs' allow-listed one (its driver runs
 * their queries) and the data dir, on loopback when its master is local.
 */
export function sparkConnectServerEnv(config: Config): NodeJS.ProcessEnv {
  // The data dir, as a job's: the server is told from another stack's by it (and found by the tests).
  const env: NodeJS.ProcessEnv = { ...sparkBaseEnv(config), SMARTCITY_DATA_DIR: config.dataDir };
  if (LOOPBACK_MASTER.test(config.spark.master) && !env.SPARK_LOCAL_IP) env.SPARK_LOCAL_IP = '127.0.0.1';
  return env;
}

function sparkCommand(config: Config, spec: SparkJobSpec, master: string, flags: string[]): string[] {
  const sparkDir = join(PROJECT_ROOT, 'spark');
  const script = join(sparkDir, 'jobs', `${spec.job}.py`);
  if (!existsSync(script)) throw new Error(`Spark job ${spec.job} not found at ${script}`);
  // A Spark Connect client is a plain Python process: SPARK_REMOTE (its env) says where its session is.
  if (viaConnect(spec)) return [tools.python(config), script, ...flags, ...(spec.extraArgs ?? [])];
  // Every job gets Iceberg (curate writes the curated tables; the jars cost the ingest job nothing).
  const jars = [...jarsIn(tools.sparkJarsDir(config)), ...jarsIn(tools.icebergJarsDir(config))];
  const command = [tools.sparkSubmit(config), '--master', master, '--jars', jars.join(','), '--conf', `spark.sql.extensions=${ICEBERG_EXTENSIONS}`];
  command.push('--driver-java-options', `-Dlog4j2.configurationFile=file:${join(sparkDir, 'log4j2.properties')}`);
  if (spec.driverMemory) command.push('--driver-memory', spec.driverMemory);
  for (const [key, value] of Object.entries(spec.conf ?? {})) command.push('--conf', `${key}=${value}`);
  return [...command, script, ...flags, ...(spec.extraArgs ?? [])];
}

function readJob(config: Config, name: string): JobRecord | undefined {
  const path = files(config, name).job;
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as JobRecord) : undefined;
}

function readExitCode(config: Config, name: string): number | undefined {
  const path = files(config, name).exit;
  if (!existsSync(path)) return undefined;
  const code = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(code) ? code : undefined;
}

/** Live (non-zombie) processes of a process group, from /proc. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') members.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/**
 * The job's process group is running when its wrapper shell is (same pid and command line, so a
 * reused pid does not count), or when the shell is gone but processes of its group live on (the
 * shell was killed alone: the job must still be stopped before it is started again).
 */
function isRunning(config: Config, job: JobRecord): boolean {
  if (runningProcess(config.dataDir, processName(job.name))) return true;
  return !isAlive(job.pid) && groupMembers(job.pid).length > 0;
}

/** The last complete line of a file, read from its end (a long-running job's file keeps growing). */
function lastLine(path: string): string | undefined {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    for (let window = 64 * 1024; ; window *= 4) {
      const start = Math.max(0, size - window);
      const buffer = Buffer.alloc(size - start);
      readSync(fd, buffer, 0, buffer.length, start);
      const text = buffer.toString('utf8');
      // A line still being appended has no newline yet: it is not complete.
      const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
      if (lines.length > (start > 0 ? 1 : 0)) return lines[lines.length - 1];
      if (start === 0) return undefined;
    }
  } finally {
    closeSync(fd);
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON object in a local file; undefined for a remote path, a missing file or other JSON. */
function readJsonObject(path: string): Record<string, unknown> | undefined {
  if (!isLocalPath(path) || !existsSync(localPath(path))) return undefined;
  return parseObject(readFileSync(localPath(path), 'utf8'));
}

/** Every complete progress line of a local progress file (none when the file does not exist yet). */
export function readProgress(progressFile: string): ProgressLine[] {
  const path = localPath(progressFile);
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .flatMap((line): ProgressLine[] => {
      const progress = parseObject(line);
      return progress ? [progress] : [];
    });
}

function lastProgress(job: JobRecord): ProgressLine | undefined {
  if (!job.progressFile || !isLocalPath(job.progressFile)) return undefined;
  const path = localPath(job.progressFile);
  if (!existsSync(path)) return undefined;
  const line = lastLine(path);
  return line === undefined ? undefined : parseObject(line);
}

/** The wrapper shell's command line for a job, and what the job is told to write. */
function jobCommand(config: Config, spec: SparkJobSpec): { command: string[]; progressFile?: string; summaryPath?: string } {
  checkName(spec.name);
  const master = spec.master ?? 'local[2]';
  if (!MASTER.test(master)) throw new Error(`spark master ${JSON.stringify(master)}: expected local[N], local[*] or spark://host:port`);
  const { flags, progressFile, summaryPath } = jobArgs(config, spec);
  const command = ['/bin/sh', '-c', WRAPPER, `spark-job:${spec.name}`, files(config, spec.name).exit, ...sparkCommand(config, spec, master, flags)];
  return { command, ...(progressFile ? { progressFile } : {}), ...(summaryPath ? { summaryPath } : {}) };
}

/**
 * Starts a job detached in its own process group and returns at once. Idempotent for a retried
 * start: when a job of that name runs already with the same command, its handle is returned; with
 * a different command it is an error (stop it first). A curate through Spark Connect first makes
 * sure a Spark Connect server answers on its port (the stack's is started again if none does).
 */
export async function startSparkJob(config: Config, spec: SparkJobSpec): Promise<SparkJobHandle> {
  const { command, progressFile, summaryPath } = jobCommand(config, spec);
  const paths = files(config, spec.name);

  const previous = readJob(config, spec.name);
  if (previous && isRunning(config, previous)) {
    if (previous.command.join('\0') === command.join('\0')) return handleOf(previous);
    throw new Error(`spark job ${spec.name} is already running (pid ${previous.pid}) with other arguments; stop it first`);
  }
  if (viaConnect(spec)) await ensureConnectServer(config, sparkConnectServerEnv(config));
  rmSync(paths.exit, { force: true });
  rmSync(paths.stop, { force: true });
  const record = startProcess(config.dataDir, processName(spec.name), command, { cwd: PROJECT_ROOT, env: sparkJobEnv(config, spec, spec.master ?? 'local[2]') });
  const job: JobRecord = {
    name: spec.name,
    job: spec.job,
    pid: record.pid,
    logPath: record.log,
    startedAt: record.startedAt,
    command,
    ...(progressFile ? { progressFile } : {}),
    ...(summaryPath ? { summaryPath } : {}),
    ...(spec.owner !== undefined ? { owner: spec.owner } : {}),
    ...(viaConnect(spec) && { connect: true as const }),
  };
  const tmp = `${paths.job}.tmp`;
  writeFileSync(tmp, JSON.stringify(job, null, 2));
  renameSync(tmp, paths.job);
  return handleOf(job);
}

function handleOf(job: JobRecord): SparkJobHandle {
  const { name, pid, logPath, startedAt, progressFile, summaryPath } = job;
  return { name, pid, logPath, startedAt, ...(progressFile ? { progressFile } : {}), ...(summaryPath ? { summaryPath } : {}) };
}

export async function sparkJobStatus(config: Config, name: string): Promise<SparkJobStatus> {
  checkName(name);
  const job = readJob(config, name);
  if (!job) return { name, state: 'unknown', detail: 'no such job has been started here' };
  const progress = lastProgress(job);
  const withProgress = <T extends SparkJobStatus>(status: T): T => (progress ? { ...status, lastProgress: progress } : status);
  if (isRunning(config, job)) return withProgress({ name, state: 'running', pid: job.pid });
  // Read only once the shell is gone: it writes the exit code just before it exits.
  const exitCode = readExitCode(config, name);
  const code = exitCode === undefined ? {} : { exitCode };
  if (existsSync(files(config, name).stop)) return withProgress({ name, state: 'stopped', ...code });
  if (exitCode === undefined) {
    return withProgress({ name, state: 'failed', detail: 'the job ended without recording an exit code: it was killed, or the machine restarted' });
  }
  return withProgress({ name, state: exitCode === 0 ? 'succeeded' : 'failed', exitCode });
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

async function waitForGroupExit(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (groupMembers(pgid).length > 0) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * SIGTERM to the job's process group, SIGKILL to it after `graceMs`; resolves once no process of
 * the group is left alive. The streaming job finishes its running batch on SIGTERM, so give it at
 * least its --stop-timeout-seconds (60 by default) plus a few seconds.
 */
export async function stopSparkJob(config: Config, name: string, graceMs = 75_000): Promise<StopResult> {
  checkName(name);
  const job = readJob(config, name);
  if (!job || !isRunning(config, job)) {
    const status = await sparkJobStatus(config, name);
    if (job?.connect && status.state !== 'succeeded') await releaseConnectSession(config, name, sparkBaseEnv(config));
    return { name, outcome: 'not-running', status };
  }
  writeFileSync(files(config, name).stop, new Date().toISOString());
  signalGroup(job.pid, 'SIGTERM');
  let outcome: StopResult['outcome'] = 'exited';
  if (!(await waitForGroupExit(job.pid, graceMs))) {
    outcome = 'killed';
    signalGroup(job.pid, 'SIGKILL');
    if (!(await waitForGroupExit(job.pid, 5_000))) throw new Error(`spark job ${name}: processes ${groupMembers(job.pid).join(', ')} survived SIGKILL`);
  }
  // The client is gone; what it asked the server to do is not, until it is interrupted and over.
  if (job.connect) await releaseConnectSession(config, name, sparkBaseEnv(config));
  return { name, outcome, status: await sparkJobStatus(config, name) };
}

export async function sparkJobLogTail(config: Config, name: string, lines = LOG_TAIL_LINES): Promise<string> {
  checkName(name);
  return tailLog(files(config, name).log, lines);
}

/** Polls until the job is no longer running, or `timeoutMs` passed; returns its status then. */
export async function waitForSparkJob(config: Config, name: string, opts: { timeoutMs?: number; pollMs?: number } = {}): Promise<SparkJobStatus> {
  const deadline = Date.now() + (opts.timeoutMs ?? Infinity);
  for (;;) {
    const status = await sparkJobStatus(config, name);
    if (status.state !== 'running' || Date.now() >= deadline) return status;
    await sleep(opts.pollMs ?? 500);
  }
}

/** Starts a job and waits for it to end: for batch jobs (curate, ingest with availableNow). */
export async function runSparkJob(config: Config, spec: SparkJobSpec): Promise<RunResult> {
  const started = Date.now();
  const handle = (await succeededFor(config, spec)) ?? (await startSparkJob(config, spec));
  const status = await waitForSparkJob(config, spec.name);
  // A client that did not finish may have left operations running in the server: they end before this returns.
  if (viaConnect(spec) && status.state !== 'succeeded') await releaseConnectSession(config, spec.name, sparkBaseEnv(config));
  const result: RunResult = { name: spec.name, state: status.state, startedAt: handle.startedAt, durationMs: Date.now() - started };
  if (status.exitCode !== undefined) result.exitCode = status.exitCode;
  if (status.lastProgress) result.lastProgress = status.lastProgress;
  const summary = handle.summaryPath && status.state === 'succeeded' ? readJsonObject(handle.summaryPath) : undefined;
  if (summary) result.summary = summary;
  if (status.state !== 'succeeded') result.logTail = await sparkJobLogTail(config, spec.name);
  return result;
}

/** The last run of spec's name, when it was for spec.owner, with the same command, and succeeded. */
async function succeededFor(config: Config, spec: SparkJobSpec): Promise<SparkJobHandle | undefined> {
  if (spec.owner === undefined) return undefined;
  const previous = readJob(config, spec.name);
  if (!previous || previous.owner !== spec.owner) return undefined;
  if (previous.command.join('\0') !== jobCommand(config, spec).command.join('\0')) return undefined;
  return (await sparkJobStatus(config, spec.name)).state === 'succeeded' ? handleOf(previous) : undefined;
}

/** The Spark jobs of this data dir that are running now (whoever started them). */
export async function runningSparkJobs(config: Config): Promise<SparkJobStatus[]> {
  const dir = runDir(config.dataDir);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).flatMap((file) => /^spark-(.+)\.job\.json$/.exec(file)?.slice(1) ?? []);
  const statuses = await Promise.all(names.map((name) => sparkJobStatus(config, name)));
  return statuses.filter((status) => status.state === 'running');
}
