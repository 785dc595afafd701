// `smartcity stack up | down | status`: the local target's long-running services.
import type { Config } from '../config';
import { TOPICS } from '../schemas';
import { ensureTopics } from '../kafka/client';
import { CONNECT_SERVER, connectServerCommand, connectServerExecsInto, connectServerReady } from '../spark/connect';
import { runningSparkJobs, sparkConnectServerEnv, stopSparkJob } from '../spark/runner';
import { kafkaCommand, kafkaReady } from './kafka';
import { portIsFree, runningProcess, startProcess, stopProcess, waitUntilReady, type ProcessRecord } from './processes';
import {
  SPARK_WORKERS,
  sparkClassCommand,
  sparkDaemonEnv,
  sparkMasterArgs,
  sparkMasterReady,
  sparkMasterUiUrl,
  sparkMasterUrl,
  sparkWorkerArgs,
  sparkWorkerReady,
  sparkWorkerUiPort,
} from './spark';
import { prometheusCommand, prometheusReady, prometheusUrl } from './prometheus';
import { temporalCommand, temporalReady } from './temporal';

export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

interface Component {
  name: string;
  label: string;
  ports: { port: number; what: string; setting: string }[];
  command: (config: Config) => string[];
  /** The arguments its command line ends with once the command has exec'd (see ProcessRecord). */
  execsInto?: (config: Config) => string[];
  env?: (config: Config) => NodeJS.ProcessEnv;
  ready: (config: Config) => Promise<boolean>;
  readyTimeoutMs: number;
}

/** Master first, workers after it: `up` starts in this order, `down` stops in the reverse. */
function sparkCluster(config: Config): Component[] {
  const daemon = (args: (c: Config) => string[]) => ({
    command: (c: Config) => sparkClassCommand(c, args(c)),
    execsInto: args,
    env: sparkDaemonEnv,
    readyTimeoutMs: 120_000,
  });
  const workers = Array.from({ length: SPARK_WORKERS }, (_, i): Component => {
    const n = i + 1;
    return {
      name: `spark-worker-${n}`,
      label: `Spark worker ${n}`,
      ports: [{ port: sparkWorkerUiPort(config, n), what: `Spark worker ${n} UI`, setting: 'SMARTCITY_SPARK_WORKER_UI_PORT' }],
      ...daemon((c) => sparkWorkerArgs(c, n)),
      ready: (c) => sparkWorkerReady(c, n),
    };
  });
  return [
    {
      name: 'spark-master',
      label: 'Spark master',
      ports: [
        { port: config.ports.sparkMaster, what: 'Spark master', setting: 'SMARTCITY_SPARK_MASTER_PORT' },
        { port: config.ports.sparkMasterUi, what: 'Spark master UI', setting: 'SMARTCITY_SPARK_MASTER_UI_PORT' },
      ],
      ...daemon(sparkMasterArgs),
      ready: sparkMasterReady,
    },
    ...workers,
  ];
}

function prometheus(config: Config): Component {
  return {
    name: 'prometheus',
    label: 'Prometheus',
    ports: [{ port: config.metrics.prometheusPort, what: 'Prometheus', setting: 'SMARTCITY_PROMETHEUS_PORT' }],
    command: prometheusCommand,
    ready: prometheusReady,
    readyTimeoutMs: 60_000,
  };
}

/** What `up` may start beyond the core: each part when it is asked for, or when any of it runs. */
export interface StackParts {
  /** Debian's Prometheus scraping the worker (`stack up --metrics`). */
  metrics?: boolean;
  /** A Spark standalone master and workers (`stack up --spark-cluster`). */
  sparkCluster?: boolean;
}

function components(config: Config, options: StackParts = {}): Component[] {
  const runs = (parts: Component[]) => parts.some((c) => runningProcess(config.dataDir, c.name) !== undefined);
  const metrics = [prometheus(config)];
  const cluster = sparkCluster(config);
  return [...coreComponents(config), ...(options.metrics === true || runs(metrics) ? metrics : []), ...(options.sparkCluster === true || runs(cluster) ? cluster : [])];
}

/** The long-lived Spark session the curate runs are clients of (spark/connect.ts); not there with SMARTCITY_SPARK_CONNECT=false. */
function sparkConnect(config: Config): Component[] {
  if (!config.spark.connect) return [];
  return [
    {
      name: CONNECT_SERVER,
      label: 'Spark Connect server',
      ports: [
        { port: config.ports.sparkConnect, what: 'Spark Connect', setting: 'SMARTCITY_SPARK_CONNECT_PORT' },
        { port: config.ports.sparkConnectUi, what: 'Spark Connect UI', setting: 'SMARTCITY_SPARK_CONNECT_UI_PORT' },
      ],
      command: connectServerCommand,
      execsInto: connectServerExecsInto,
      env: sparkConnectServerEnv,
      ready: connectServerReady,
      readyTimeoutMs: 120_000,
    },
  ];
}

function coreComponents(config: Config): Component[] {
  return [
    {
      name: 'temporal',
      label: 'Temporal dev server',
      ports: [
        { port: config.ports.temporal, what: 'Temporal gRPC', setting: 'SMARTCITY_TEMPORAL_PORT' },
        { port: config.ports.temporalUi, what: 'Temporal Web UI', setting: 'SMARTCITY_TEMPORAL_UI_PORT' },
      ],
      command: temporalCommand,
      ready: temporalReady,
      readyTimeoutMs: 60_000,
    },
    {
      name: 'kafka',
      label: 'Kafka broker',
      ports: [
        { port: config.ports.kafka, what: 'Kafka', setting: 'SMARTCITY_KAFKA_PORT' },
        { port: config.ports.kafkaController, what: 'Kafka controller', setting: 'SMARTCITY_KAFKA_CONTROLLER_PORT' },
      ],
      command: kafkaCommand,
      ready: kafkaReady,
      readyTimeoutMs: 90_000,
    },
    ...sparkConnect(config),
  ];
}

export interface ComponentStatus {
  name: string;
  label: string;
  state: 'running' | 'stopped';
  answering: boolean;
  pid?: number;
  ports: number[];
  log?: string;
}

export interface StackInfo {
  components: ComponentStatus[];
  /** sparkMaster and sparkMasterUi while the Spark cluster is part of the stack, prometheus while Prometheus is. */
  urls: { temporal: string; temporalUi: string; kafka: string; sparkMaster?: string; sparkMasterUi?: string; prometheus?: string };
  topics: string[];
}

export function stackTopics(config: Config): string[] {
  return [...Object.values(TOPICS), config.kafka.deadLetterTopic];
}

function urls(config: Config, withCluster: boolean, withPrometheus: boolean): StackInfo['urls'] {
  return {
    temporal: config.temporal.address,
    temporalUi: config.temporal.uiUrl,
    kafka: config.kafka.brokers.join(','),
    ...(withCluster && { sparkMaster: sparkMasterUrl(config), sparkMasterUi: sparkMasterUiUrl(config) }),
    ...(withPrometheus && { prometheus: prometheusUrl(config) }),
  };
}

function assertLocal(config: Config): void {
  if (config.target !== 'local') throw new Error(`the stack commands manage the local target; SMARTCITY_TARGET is "${config.target}"`);
}

/**
 * Starts whatever is not running yet, waits until every component answers, creates the topics.
 * On failure, stops what this call started and rethrows.
 */
export async function stackUp(config: Config, log: (line: string) => void = () => {}, options: StackParts = {}): Promise<StackInfo> {
  assertLocal(config);
  const started: Component[] = [];
  const waits: Promise<void>[] = [];
  try {
    const toStart = components(config, options).filter((component) => {
      const running = runningProcess(config.dataDir, component.name) !== undefined;
      if (running) log(`${component.label} already running`);
      return !running;
    });
    for (const { port, what, setting } of toStart.flatMap((component) => component.ports)) {
      if (!(await portIsFree(port))) {
        throw new PortInUseError(
          `port ${port} (${what}) is already in use by another process; stop that process or choose another port with ${setting}`,
        );
      }
    }
    for (const component of toStart) {
      log(`starting ${component.label}…`);
      const record: ProcessRecord = startProcess(config.dataDir, component.name, component.command(config), {
        ...(component.env && { env: component.env(config) }),
        ...(component.execsInto && { execsInto: component.execsInto(config) }),
      });
      started.push(component);
      const ready = waitUntilReady(record, component.label, () => component.ready(config), component.readyTimeoutMs);
      waits.push(ready);
      // A worker registers with a master that answers; the others start side by side.
      if (component.name === 'spark-master') await ready;
    }
    await Promise.all(waits);
    const created = await ensureTopics(config, stackTopics(config));
    if (created.length > 0) log(`created topics: ${created.join(', ')}`);
  } catch (err) {
    await Promise.allSettled(waits);
    for (const component of started.reverse()) await stopProcess(config.dataDir, component.name);
    throw err;
  }
  return stackStatus(config);
}

/**
 * Stops exactly what `up` started (recorded under <dataDir>/run), and first the Spark jobs of this
 * data dir: without the broker and Temporal they cannot work, and nothing else would stop their
 * JVMs. Returns what it stopped. (`smartcity stack down` asks before it stops a running pipeline.)
 */
export async function stackDown(config: Config): Promise<string[]> {
  assertLocal(config);
  const stopped: string[] = [];
  for (const job of await runningSparkJobs(config)) {
    await stopSparkJob(config, job.name);
    stopped.push(`Spark job ${job.name}`);
  }
  for (const component of components(config, { sparkCluster: true, metrics: true }).reverse()) {
    if (await stopProcess(config.dataDir, component.name)) stopped.push(component.label);
  }
  return stopped;
}

export async function stackStatus(config: Config): Promise<StackInfo> {
  const shown = components(config);
  const statuses = await Promise.all(
    shown.map(async (component): Promise<ComponentStatus> => {
      const record = runningProcess(config.dataDir, component.name);
      const answering = await component.ready(config).catch(() => false);
      return {
        name: component.name,
        label: component.label,
        state: record ? 'running' : 'stopped',
        answering,
        ...(record && { pid: record.pid, log: record.log }),
        ports: component.ports.map((p) => p.port),
      };
    }),
  );
  const has = (name: string) => shown.some((c) => c.name === name);
  return { components: statuses, urls: urls(config, has('spark-master'), has('prometheus')), topics: stackTopics(config) };
}
