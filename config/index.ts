// The one typed configuration, read once at start-up from SMARTCITY_* environment variables and
// an optional JSON file (SMARTCITY_CONFIG). Every setting is parsed here; a bad one is a single
// error naming it. Secrets (Kafka SASL password) come from the environment only, never the file.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

export const PROJECT_ROOT = resolve(__dirname, '..');

const port = z.coerce.number().int().min(1).max(65535);
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);

const fileSchema = z
  .object({
    target: z.enum(['local', 'aws']).optional(),
    dataDir: z.string().min(1).optional(),
    lakeRoot: z.string().min(1).optional(),
    toolsDir: z.string().min(1).optional(),
    temporal: z.object({ address: z.string().min(1), namespace: z.string().min(1), taskQueue: z.string().min(1) }).partial().strict().optional(),
    kafka: z
      .object({
        brokers: z.array(z.string().min(1)).min(1),
        clientId: z.string().min(1),
        ssl: z.boolean(),
        saslMechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
        partitions: z.number().int().min(1),
        replicationFactor: z.number().int().min(1),
        deadLetterTopic: z.string().min(1),
      })
      .partial()
      .strict()
      .optional(),
    ports: z
      .object({ temporal: port, temporalUi: port, kafka: port, kafkaController: port })
      .partial()
      .strict()
      .optional(),
  })
  .strict();

/** Environment variable → where it lands in the file shape. */
const ENV: Record<string, string[]> = {
  SMARTCITY_TARGET: ['target'],
  SMARTCITY_DATA_DIR: ['dataDir'],
  SMARTCITY_LAKE_ROOT: ['lakeRoot'],
  SMARTCITY_TOOLS_DIR: ['toolsDir'],
  SMARTCITY_TEMPORAL_ADDRESS: ['temporal', 'address'],
  SMARTCITY_TEMPORAL_NAMESPACE: ['temporal', 'namespace'],
  SMARTCITY_TASK_QUEUE: ['temporal', 'taskQueue'],
  SMARTCITY_KAFKA_BROKERS: ['kafka', 'brokers'],
  SMARTCITY_KAFKA_CLIENT_ID: ['kafka', 'clientId'],
  SMARTCITY_KAFKA_SSL: ['kafka', 'ssl'],
  SMARTCITY_KAFKA_SASL_MECHANISM: ['kafka', 'saslMechanism'],
  SMARTCITY_KAFKA_PARTITIONS: ['kafka', 'partitions'],
  SMARTCITY_KAFKA_REPLICATION_FACTOR: ['kafka', 'replicationFactor'],
  SMARTCITY_KAFKA_DEAD_LETTER_TOPIC: ['kafka', 'deadLetterTopic'],
  SMARTCITY_TEMPORAL_PORT: ['ports', 'temporal'],
  SMARTCITY_TEMPORAL_UI_PORT: ['ports', 'temporalUi'],
  SMARTCITY_KAFKA_PORT: ['ports', 'kafka'],
  SMARTCITY_KAFKA_CONTROLLER_PORT: ['ports', 'kafkaController'],
};

const LIST_SETTINGS = new Set(['SMARTCITY_KAFKA_BROKERS']);
const NUMBER_SETTINGS = new Set([
  'SMARTCITY_KAFKA_PARTITIONS',
  'SMARTCITY_KAFKA_REPLICATION_FACTOR',
  'SMARTCITY_TEMPORAL_PORT',
  'SMARTCITY_TEMPORAL_UI_PORT',
  'SMARTCITY_KAFKA_PORT',
  'SMARTCITY_KAFKA_CONTROLLER_PORT',
]);
const BOOL_SETTINGS = new Set(['SMARTCITY_KAFKA_SSL']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface KafkaSasl {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export interface Config {
  target: 'local' | 'aws';
  dataDir: string;
  /** Root of the lake (raw, quarantine, curated, checkpoints): a local folder or s3://bucket/prefix. */
  lakeRoot: string;
  toolsDir: string;
  ports: { temporal: number; temporalUi: number; kafka: number; kafkaController: number };
  temporal: { address: string; namespace: string; taskQueue: string; uiUrl: string };
  kafka: {
    brokers: string[];
    clientId: string;
    ssl: boolean;
    sasl: KafkaSasl | undefined;
    partitions: number;
    replicationFactor: number;
    deadLetterTopic: string;
  };
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

function envValue(name: string, raw: string): unknown {
  if (LIST_SETTINGS.has(name)) return raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (NUMBER_SETTINGS.has(name)) {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a number`);
    return n;
  }
  if (BOOL_SETTINGS.has(name)) return bool.parse(raw.toLowerCase());
  return raw;
}

function describeIssues(error: z.ZodError, origin: (path: PropertyKey[]) => string): string {
  return error.issues.map((issue) => `${origin(issue.path)}: ${issue.message}`).join('; ');
}

/**
 * Builds the configuration from an environment (process.env by default). Throws ConfigError
 * naming the offending setting (environment variable or file key).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  const fromEnv = new Map<string, string>();
  const configFile = env.SMARTCITY_CONFIG;
  if (configFile) {
    const path = isAbsolute(configFile) ? configFile : join(process.cwd(), configFile);
    if (!existsSync(path)) throw new ConfigError(`SMARTCITY_CONFIG points at ${path}, which does not exist`);
    try {
      Object.assign(raw, JSON.parse(readFileSync(path, 'utf8')));
    } catch (err) {
      throw new ConfigError(`SMARTCITY_CONFIG file ${path} is not valid JSON: ${(err as Error).message}`);
    }
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SMARTCITY_') || value === undefined) continue;
    const path = ENV[name];
    if (!path) {
      if (['SMARTCITY_CONFIG', 'SMARTCITY_KAFKA_SASL_USERNAME', 'SMARTCITY_KAFKA_SASL_PASSWORD'].includes(name)) continue;
      throw new ConfigError(`unknown setting ${name}; known: ${[...Object.keys(ENV), 'SMARTCITY_CONFIG', 'SMARTCITY_KAFKA_SASL_USERNAME', 'SMARTCITY_KAFKA_SASL_PASSWORD'].sort().join(', ')}`);
    }
    try {
      setPath(raw, path, envValue(name, value));
    } catch (err) {
      throw err instanceof ConfigError ? err : new ConfigError(`${name}=${JSON.stringify(value)}: expected true or false`);
    }
    fromEnv.set(path.join('.'), name);
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      `invalid configuration: ${describeIssues(parsed.error, (p) => fromEnv.get(p.join('.')) ?? (p.length ? `config key ${p.join('.')}` : 'config file'))}`,
    );
  }
  const c = parsed.data;
  const abs = (p: string) => (isAbsolute(p) ? p : join(PROJECT_ROOT, p));
  const ports = { temporal: 7233, temporalUi: 8233, kafka: 9092, kafkaController: 9093, ...c.ports };
  const distinct = new Set(Object.values(ports));
  if (distinct.size !== 4) throw new ConfigError(`ports must differ: ${JSON.stringify(ports)}`);

  let sasl: KafkaSasl | undefined;
  if (c.kafka?.saslMechanism) {
    const username = env.SMARTCITY_KAFKA_SASL_USERNAME;
    const password = env.SMARTCITY_KAFKA_SASL_PASSWORD;
    if (!username || !password) {
      throw new ConfigError('SMARTCITY_KAFKA_SASL_MECHANISM is set: SMARTCITY_KAFKA_SASL_USERNAME and SMARTCITY_KAFKA_SASL_PASSWORD must be set too');
    }
    sasl = { mechanism: c.kafka.saslMechanism, username, password };
  }

  return {
    target: c.target ?? 'local',
    dataDir: abs(c.dataDir ?? '.data'),
    lakeRoot: c.lakeRoot === undefined ? join(abs(c.dataDir ?? '.data'), 'lake') : /^[a-z][a-z0-9+.-]*:\/\//.test(c.lakeRoot) ? c.lakeRoot : abs(c.lakeRoot),
    toolsDir: abs(c.toolsDir ?? '.tools'),
    ports,
    temporal: {
      address: c.temporal?.address ?? `127.0.0.1:${ports.temporal}`,
      namespace: c.temporal?.namespace ?? 'default',
      taskQueue: c.temporal?.taskQueue ?? 'smartcity',
      uiUrl: `http://localhost:${ports.temporalUi}`,
    },
    kafka: {
      brokers: c.kafka?.brokers ?? [`127.0.0.1:${ports.kafka}`],
      clientId: c.kafka?.clientId ?? 'smartcity',
      ssl: c.kafka?.ssl ?? sasl !== undefined,
      sasl,
      partitions: c.kafka?.partitions ?? 3,
      replicationFactor: c.kafka?.replicationFactor ?? 1,
      deadLetterTopic: c.kafka?.deadLetterTopic ?? 'smartcity_dead_letter',
    },
  };
}

/** The configuration with secrets masked, for logs and `status` output. */
export function redactConfig(config: Config): unknown {
  return { ...config, kafka: { ...config.kafka, sasl: config.kafka.sasl && { ...config.kafka.sasl, password: '***' } } };
}
