// The local target's long-lived Spark session for batch jobs: a Spark Connect server (the one that
// ships with Spark 3.5, org.apache.spark.sql.connect.service.SparkConnectServer) started by
// `stack up`, whose clients are the curate runs. A client process starts in about a second and
// its work runs in a warm JVM, where a spark-submit pays 8 s or more for a JVM and a SparkContext
// before its first query (docs/benchmarks.md, "Backfill").
//
// A run's operations live in the server, not in the client: spark/smartcity_spark/connect.py says
// how a run takes over the session of a client that died, and why each job name has its own
// session id. The server itself is the stack's; a curate that finds it gone (killed, crashed)
// starts it again, as `stack up` would, before it runs.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../config';
import { runningProcess, startProcess, waitUntilReady } from '../stack/processes';
import { jarsIn, tools } from '../stack/tools';

export const CONNECT_SERVER = 'spark-connect';
const SERVER_CLASS = 'org.apache.spark.sql.connect.service.SparkConnectServer';
const SERVER_NAME = 'smartcity-connect';
const READY_TIMEOUT_MS = 120_000;
/** How long a take-over may wait for a dead client's operations to end (connect.py waits 120 s). */
const TAKE_OVER_TIMEOUT_MS = 150_000;

export const sparkConnectUrl = (config: Config) => `sc://127.0.0.1:${config.ports.sparkConnect}`;
export const sparkConnectUiUrl = (config: Config) => `http://127.0.0.1:${config.ports.sparkConnectUi}`;

/**
 * The session id of a job name's runs (a UUID made from the data dir and the name): the same for a
 * retry, so that it can take over what a dead client left running; different for the same window
 * curated in another data dir (another lake) on the same server.
 */
export function connectSessionId(config: Config, jobName: string): string {
  const hex = createHash('sha256').update(`${config.dataDir}\0${jobName}`).digest('hex');
  // RFC 4122 layout, version 8 (custom) and the variant bits, as the server parses session ids as UUIDs.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** What a client of the server needs in its environment: where the server is, under which session, and its UI. */
export function connectClientEnv(config: Config, jobName: string): Record<string, string> {
  return {
    SPARK_REMOTE: `${sparkConnectUrl(config)}/;session_id=${connectSessionId(config, jobName)}`,
    SMARTCITY_SPARK_CONNECT_UI: sparkConnectUiUrl(config),
  };
}

/**
 * How the server's JVM command line ends once spark-submit has exec'd into it (its launcher puts
 * the master and the settings first, in an order of its own, then these): how its pid record is
 * told from another process that got the pid.
 */
export const connectServerExecsInto = (config: Config) => ['--class', SERVER_CLASS, '--name', SERVER_NAME, '--jars', serverJars(config), 'spark-internal'];

/**
 * Iceberg's SQL extensions (MERGE INTO, the maintenance procedures): a static setting, so the
 * server's (and a spark-submit's). The catalog itself is set by each client session
 * (spark/smartcity_spark/lakehouse.py): sessions of several data dirs share the server.
 */
export const ICEBERG_EXTENSIONS = 'org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions';

/** The Connect jar, its guard, Iceberg's runtime and the SQLite driver of the local catalog. */
const serverJars = (config: Config) => [...jarsIn(tools.sparkConnectJarsDir(config)), ...jarsIn(tools.icebergJarsDir(config))].join(',');

/** The server's spark-submit: the Connect jar, loopback ports, the stack's Spark master. */
export function connectServerCommand(config: Config): string[] {
  return [
    tools.sparkSubmit(config),
    '--master',
    config.spark.master,
    '--name',
    SERVER_NAME,
    '--class',
    SERVER_CLASS,
    '--jars',
    serverJars(config),
    '--driver-java-options',
    `-Dlog4j2.configurationFile=file:${join(PROJECT_ROOT, 'spark', 'log4j2.properties')}`,
    '--conf',
    `spark.connect.grpc.binding.port=${config.ports.sparkConnect}`,
    '--conf',
    `spark.ui.port=${config.ports.sparkConnectUi}`,
    '--conf',
    'spark.ui.showConsoleProgress=false',
    // Spark 3.5 binds the port on every interface and has no authentication: refuse other machines.
    '--conf',
    'spark.connect.grpc.interceptor.classes=smartcity.connect.LoopbackOnly',
    // The UI's REST API is how a client sees its session's operations end: keep every execution.
    '--conf',
    'spark.sql.ui.retainedExecutions=100000',
    '--conf',
    `spark.sql.extensions=${ICEBERG_EXTENSIONS}`,
  ];
}

/** Listening on its gRPC port, and its driver's REST API lists the application. */
export async function connectServerReady(config: Config): Promise<boolean> {
  const listening = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: config.ports.sparkConnect });
    socket.setTimeout(2_000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
  if (!listening) return false;
  const response = await fetch(`${sparkConnectUiUrl(config)}/api/v1/applications`, { signal: AbortSignal.timeout(2_000) });
  return response.ok && ((await response.json()) as unknown[]).length > 0;
}

const starting = new Map<string, Promise<void>>();

/**
 * Makes sure a server answers on the configured port: the stack's, or another data dir's stack's on
 * this machine (a benchmark's worker beside `stack up`; sessions are per data dir, so they share it
 * safely). When none answers, the stack's is started again, as `stack up` starts it (it was killed
 * or crashed), and waited for. One start at a time per process.
 */
export async function ensureConnectServer(config: Config, serverEnv: NodeJS.ProcessEnv): Promise<void> {
  if (await connectServerReady(config).catch(() => false)) return;
  const key = config.dataDir;
  let start = starting.get(key);
  if (!start) {
    start = (async () => {
      const record = runningProcess(config.dataDir, CONNECT_SERVER) ?? startProcess(config.dataDir, CONNECT_SERVER, connectServerCommand(config), { env: serverEnv, execsInto: connectServerExecsInto(config) });
      await waitUntilReady(record, 'Spark Connect server', () => connectServerReady(config), READY_TIMEOUT_MS);
    })().finally(() => starting.delete(key));
    starting.set(key, start);
  }
  await start;
}

/**
 * After a client of `jobName` ended without finishing (stopped, killed): interrupts what its
 * session still runs in the server and waits until none of it does (connect.py's take-over, in a
 * client of its own). Nothing to do when the server is not running: its operations died with it.
 */
export async function releaseConnectSession(config: Config, jobName: string, env: NodeJS.ProcessEnv): Promise<void> {
  if (!(await connectServerReady(config).catch(() => false))) return;
  const child = spawn(tools.python(config), ['-m', 'smartcity_spark.connect'], {
    cwd: join(PROJECT_ROOT, 'spark'),
    env: { ...env, ...connectClientEnv(config, jobName) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), TAKE_OVER_TIMEOUT_MS);
    child.once('error', reject);
    child.once('exit', (exitCode) => (clearTimeout(timer), resolve(exitCode)));
  });
  if (code !== 0) throw new Error(`could not take over the Spark Connect session of ${jobName} (exit ${code}):\n${stderr.trim()}`);
}
