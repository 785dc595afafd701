// `smartcity stack up | down | status`: the local target's long-running services.
import type { Config } from '../config';
import { TOPICS } from '../schemas';
import { ensureTopics } from '../kafka/client';
import { kafkaCommand, kafkaReady } from './kafka';
import { portIsFree, runningProcess, startProcess, stopProcess, waitUntilReady, type ProcessRecord } from './processes';
import { prometheusCommand, prometheusReady, prometheusUrl } from './prometheus';
import { temporalCommand, temporalReady } from './temporal';

export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

interface Component {
  name: 'temporal' | 'kafka' | 'prometheus';
  label: string;
  ports: { port: number; what: string; setting: string }[];
  command: (config: Config) => string[];
  ready: (config: Config) => Promise<boolean>;
  readyTimeoutMs: number;
}

/** `metrics`: Prometheus too (`stack up --metrics`); down and status always include it. */
function components(config: Config, options: { metrics?: boolean } = { metrics: true }): Component[] {
  const prometheus: Component = {
    name: 'prometheus',
    label: 'Prometheus',
    ports: [{ port: config.metrics.prometheusPort, what: 'Prometheus', setting: 'SMARTCITY_PROMETHEUS_PORT' }],
    command: prometheusCommand,
    ready: prometheusReady,
    readyTimeoutMs: 60_000,
  };
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
    ...(options.metrics ? [prometheus] : []),
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
  urls: { temporal: string; temporalUi: string; kafka: string; prometheus?: string };
  topics: string[];
}

export function stackTopics(config: Config): string[] {
  return [...Object.values(TOPICS), config.kafka.deadLetterTopic];
}

function urls(config: Config): StackInfo['urls'] {
  return { temporal: config.temporal.address, temporalUi: config.temporal.uiUrl, kafka: config.kafka.brokers.join(',') };
}

function assertLocal(config: Config): void {
  if (config.target !== 'local') throw new Error(`the stack commands manage the local target; SMARTCITY_TARGET is "${config.target}"`);
}

/**
 * Starts whatever is not running yet, waits until every component answers, creates the topics.
 * On failure, stops what this call started and rethrows.
 */
export async function stackUp(config: Config, log: (line: string) => void = () => {}, options: { metrics?: boolean } = {}): Promise<StackInfo> {
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
      const record: ProcessRecord = startProcess(config.dataDir, component.name, component.command(config));
      started.push(component);
      waits.push(waitUntilReady(record, component.label, () => component.ready(config), component.readyTimeoutMs));
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

/** Stops exactly what `up` started (recorded under <dataDir>/run); returns the names stopped. */
export async function stackDown(config: Config): Promise<string[]> {
  assertLocal(config);
  const stopped: string[] = [];
  for (const component of components(config).reverse()) {
    if (await stopProcess(config.dataDir, component.name)) stopped.push(component.label);
  }
  return stopped;
}

export async function stackStatus(config: Config): Promise<StackInfo> {
  // Prometheus is part of the stack only when `up --metrics` started it.
  const metrics = runningProcess(config.dataDir, 'prometheus') !== undefined;
  const statuses = await Promise.all(
    components(config, { metrics }).map(async (component): Promise<ComponentStatus> => {
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
  return { components: statuses, urls: { ...urls(config), ...(metrics && { prometheus: prometheusUrl(config) }) }, topics: stackTopics(config) };
}
