// `stack up --spark-cluster`: a Spark standalone master and two workers from PySpark's own
// distribution in the venv, on loopback, so that SMARTCITY_SPARK_MASTER=spark://127.0.0.1:<port>
// runs the jobs on a cluster as a production deployment would (executors in other JVMs, jobs
// sharing the cluster's cores) instead of inside the driver as local[N] does.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config';
import { sparkBaseEnv } from '../spark/runner';
import { tools } from './tools';

export const SPARK_WORKERS = 2;
/** Each worker offers one core and the 1 GiB an executor asks for by default. */
const WORKER_CORES = 1;
const WORKER_MEMORY = '1g';
const MASTER = 'org.apache.spark.deploy.master.Master';
const WORKER = 'org.apache.spark.deploy.worker.Worker';

export const sparkMasterUrl = (config: Config) => `spark://127.0.0.1:${config.ports.sparkMaster}`;
export const sparkMasterUiUrl = (config: Config) => `http://127.0.0.1:${config.ports.sparkMasterUi}`;
/** Worker n (1-based) shows its UI on sparkWorkerUi + n - 1. */
export const sparkWorkerUiPort = (config: Config, n: number) => config.ports.sparkWorkerUi + n - 1;

/**
 * The daemons' environment: the allow-listed one Spark jobs get (executors inherit it), every
 * listener on loopback (UIs included), small daemon heaps, and two cluster policies: an
 * application gets one core unless it asks for more, so the streaming job, which never ends,
 * holds one worker and leaves the other to a second application; a finished application's files
 * go after an hour. By default that is not a curate job: curate runs are clients of the stack's
 * Spark Connect server (spark/connect.ts), whose queries run on the master `stack up` gave it
 * (local[2], beside this cluster, unless SMARTCITY_SPARK_MASTER named the cluster then). A curate
 * gets the other worker as a spark-submit of its own (SMARTCITY_SPARK_CONNECT=false), or through a
 * Connect server started with this cluster as its master.
 */
export function sparkDaemonEnv(config: Config): NodeJS.ProcessEnv {
  return {
    ...sparkBaseEnv(config),
    SPARK_LOCAL_IP: '127.0.0.1',
    SPARK_DAEMON_MEMORY: '256m',
    SPARK_MASTER_OPTS: '-Dspark.deploy.defaultCores=1',
    SPARK_WORKER_OPTS: '-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=3600',
  };
}

/** spark-class execs java with these arguments at the end of its command line. */
export function sparkMasterArgs(config: Config): string[] {
  return [MASTER, '--host', '127.0.0.1', '--port', String(config.ports.sparkMaster), '--webui-port', String(config.ports.sparkMasterUi)];
}

export function sparkWorkerArgs(config: Config, n: number): string[] {
  const workDir = join(config.dataDir, 'spark', `worker-${n}`);
  mkdirSync(workDir, { recursive: true });
  return [
    WORKER,
    '--host',
    '127.0.0.1',
    '--webui-port',
    String(sparkWorkerUiPort(config, n)),
    '--cores',
    String(WORKER_CORES),
    '--memory',
    WORKER_MEMORY,
    '--work-dir',
    workDir,
    sparkMasterUrl(config),
  ];
}

export const sparkClassCommand = (config: Config, args: string[]) => [tools.sparkClass(config), ...args];

const masterState = z.looseObject({
  status: z.string(),
  workers: z.array(z.looseObject({ state: z.string(), webuiaddress: z.string() })),
});

/** The master's own account of itself (its UI's JSON): ALIVE, and which workers it counts as alive. */
async function masterJson(config: Config): Promise<z.infer<typeof masterState>> {
  const response = await fetch(`${sparkMasterUiUrl(config)}/json/`, { signal: AbortSignal.timeout(2_000) });
  return masterState.parse(await response.json());
}

export async function sparkMasterReady(config: Config): Promise<boolean> {
  return (await masterJson(config)).status === 'ALIVE';
}

/** True once the master counts worker n as alive (registered, heartbeating). */
export async function sparkWorkerReady(config: Config, n: number): Promise<boolean> {
  const port = sparkWorkerUiPort(config, n);
  return (await masterJson(config)).workers.some((w) => w.state === 'ALIVE' && w.webuiaddress.endsWith(`:${port}`));
}
