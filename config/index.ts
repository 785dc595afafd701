// The one typed configuration, read once at start-up from SMARTCITY_* environment variables and
// an optional JSON file (SMARTCITY_CONFIG). Every setting is parsed here; a bad one is a single
// error naming it. Secrets (Kafka SASL password) come from the environment only, never the file.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

export const PROJECT_ROOT = resolve(__dirname, '..');

/** `local[N]`, `local[*]` or a standalone cluster's `spark://host:7077`. */
export type SparkMaster = `local[${number}]` | 'local[*]' | `spark://${string}`;

const port = z.coerce.number().int().min(1).max(65535);
export const LOG_FORMATS = ['human', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);

const name = z.string().min(1);
const bucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens; no s3:// prefix)');
const arn = z.string().regex(/^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:.+$/, 'must be an ARN (arn:aws:…)');

/** The aws target's settings; all optional here, the required ones are checked in awsSettings(). */
const awsFileSchema = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-2'),
    /** Endpoint override for every AWS client (a moto or LocalStack server in tests); never set in production. */
    endpoint: z.url(),
    buckets: z
      .object({ raw: bucketName, curated: bucketName, quarantine: bucketName, checkpoints: bucketName, athenaResults: bucketName, artifacts: bucketName })
      .partial()
      .strict(),
    glue: z.object({ database: name, rawCrawler: name, curatedCrawler: name, curateJob: name }).partial().strict(),
    emr: z.object({ clusterId: z.string().regex(/^j-[A-Z0-9]+$/, 'must be an EMR cluster id such as j-2AXXXXXXGAPLF') }).partial().strict(),
    redshift: z
      .object({ workgroup: name, clusterId: name, database: name, secretArn: arn, dbUser: name, copyRoleArn: arn, schema: name })
      .partial()
      .strict(),
    athena: z.object({ workgroup: name, outputLocation: z.string().regex(/^s3:\/\/[^/]+(\/.*)?$/, 'must be an s3:// location') }).partial().strict(),
    /** Secrets Manager secret with the Kafka SASL username/password, read by the Spark job on EMR. */
    kafkaSecretArn: arn,
  })
  .partial()
  .strict();

/** The SMARTCITY_CONFIG file's shape (`smartcity aws config` checks what it writes against it). */
export const fileSchema = z
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
        /** Seconds a batch is retried for, from when its first event was accepted (Java's delivery.timeout.ms). */
        deliveryTimeoutSeconds: z.number().min(1, 'must be at least 1 (seconds)').max(86_400, 'must be at most 86400 (seconds, one day)'),
      })
      .partial()
      .strict()
      .optional(),
    ports: z
      .object({ temporal: port, temporalUi: port, kafka: port, kafkaController: port, sparkMaster: port, sparkMasterUi: port, sparkWorkerUi: port, sparkConnect: port, sparkConnectUi: port })
      .partial()
      .strict()
      .optional(),
    spark: z
      .object({
        master: z.string().regex(/^(local\[(\d+|\*)\]|spark:\/\/[^\s/]+:\d+)$/, 'must be local[N], local[*] or spark://host:port'),
        /** Batch jobs as clients of the stack's long-lived Spark Connect server (default) instead of a spark-submit each. */
        connect: bool,
      })
      .partial()
      .strict()
      .optional(),
    /** The worker's Prometheus endpoint (port 0: none) and the local Prometheus `stack up --metrics` starts. */
    metrics: z
      .object({ port: z.coerce.number().int().min(0).max(65535), host: z.string().min(1), prometheusPort: port })
      .partial()
      .strict()
      .optional(),
    log: z.object({ format: z.enum(LOG_FORMATS) }).partial().strict().optional(),
    temporalTls: z.object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1), serverName: z.string().min(1) }).partial().strict().optional(),
    aws: awsFileSchema.optional(),
  })
  .strict();

/**
 * The aws target's environment variables → file keys. The CDK stack (infra/) emits one output per
 * variable with the same name, so `smartcity aws config` can write this config from a deployment.
 */
export const AWS_ENV: Record<string, string[]> = {
  SMARTCITY_AWS_REGION: ['aws', 'region'],
  SMARTCITY_AWS_ENDPOINT: ['aws', 'endpoint'],
  SMARTCITY_S3_RAW_BUCKET: ['aws', 'buckets', 'raw'],
  SMARTCITY_S3_CURATED_BUCKET: ['aws', 'buckets', 'curated'],
  SMARTCITY_S3_QUARANTINE_BUCKET: ['aws', 'buckets', 'quarantine'],
  SMARTCITY_S3_CHECKPOINTS_BUCKET: ['aws', 'buckets', 'checkpoints'],
  SMARTCITY_S3_ATHENA_RESULTS_BUCKET: ['aws', 'buckets', 'athenaResults'],
  SMARTCITY_S3_ARTIFACTS_BUCKET: ['aws', 'buckets', 'artifacts'],
  SMARTCITY_GLUE_DATABASE: ['aws', 'glue', 'database'],
  SMARTCITY_GLUE_RAW_CRAWLER: ['aws', 'glue', 'rawCrawler'],
  SMARTCITY_GLUE_CURATED_CRAWLER: ['aws', 'glue', 'curatedCrawler'],
  SMARTCITY_GLUE_CURATE_JOB: ['aws', 'glue', 'curateJob'],
  SMARTCITY_EMR_CLUSTER_ID: ['aws', 'emr', 'clusterId'],
  SMARTCITY_REDSHIFT_WORKGROUP: ['aws', 'redshift', 'workgroup'],
  SMARTCITY_REDSHIFT_CLUSTER_ID: ['aws', 'redshift', 'clusterId'],
  SMARTCITY_REDSHIFT_DATABASE: ['aws', 'redshift', 'database'],
  SMARTCITY_REDSHIFT_SECRET_ARN: ['aws', 'redshift', 'secretArn'],
  SMARTCITY_REDSHIFT_DB_USER: ['aws', 'redshift', 'dbUser'],
  SMARTCITY_REDSHIFT_COPY_ROLE_ARN: ['aws', 'redshift', 'copyRoleArn'],
  SMARTCITY_REDSHIFT_SCHEMA: ['aws', 'redshift', 'schema'],
  SMARTCITY_ATHENA_WORKGROUP: ['aws', 'athena', 'workgroup'],
  SMARTCITY_ATHENA_OUTPUT_LOCATION: ['aws', 'athena', 'outputLocation'],
  SMARTCITY_KAFKA_SECRET_ARN: ['aws', 'kafkaSecretArn'],
};

/** Settings read from the environment only (secrets), never from the config file. */
const ENV_ONLY = ['SMARTCITY_CONFIG', 'SMARTCITY_KAFKA_SASL_USERNAME', 'SMARTCITY_KAFKA_SASL_PASSWORD', 'SMARTCITY_TEMPORAL_API_KEY'];

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
  SMARTCITY_KAFKA_DELIVERY_TIMEOUT: ['kafka', 'deliveryTimeoutSeconds'],
  SMARTCITY_TEMPORAL_PORT: ['ports', 'temporal'],
  SMARTCITY_TEMPORAL_UI_PORT: ['ports', 'temporalUi'],
  SMARTCITY_KAFKA_PORT: ['ports', 'kafka'],
  SMARTCITY_KAFKA_CONTROLLER_PORT: ['ports', 'kafkaController'],
  SMARTCITY_SPARK_MASTER_PORT: ['ports', 'sparkMaster'],
  SMARTCITY_SPARK_MASTER_UI_PORT: ['ports', 'sparkMasterUi'],
  SMARTCITY_SPARK_WORKER_UI_PORT: ['ports', 'sparkWorkerUi'],
  SMARTCITY_SPARK_MASTER: ['spark', 'master'],
  SMARTCITY_SPARK_CONNECT: ['spark', 'connect'],
  SMARTCITY_SPARK_CONNECT_PORT: ['ports', 'sparkConnect'],
  SMARTCITY_SPARK_CONNECT_UI_PORT: ['ports', 'sparkConnectUi'],
  SMARTCITY_METRICS_PORT: ['metrics', 'port'],
  SMARTCITY_METRICS_HOST: ['metrics', 'host'],
  SMARTCITY_PROMETHEUS_PORT: ['metrics', 'prometheusPort'],
  SMARTCITY_LOG_FORMAT: ['log', 'format'],
  SMARTCITY_TEMPORAL_TLS_CERT: ['temporalTls', 'cert'],
  SMARTCITY_TEMPORAL_TLS_KEY: ['temporalTls', 'key'],
  SMARTCITY_TEMPORAL_TLS_CA: ['temporalTls', 'ca'],
  SMARTCITY_TEMPORAL_TLS_SERVER_NAME: ['temporalTls', 'serverName'],
  ...AWS_ENV,
};

/** Read by docker-compose.yml only (where published ports bind), never by the CLI or the worker. */
const COMPOSE_ONLY = new Set(['SMARTCITY_BIND_ADDRESS']);

const LIST_SETTINGS = new Set(['SMARTCITY_KAFKA_BROKERS']);
const NUMBER_SETTINGS = new Set([
  'SMARTCITY_KAFKA_PARTITIONS',
  'SMARTCITY_KAFKA_REPLICATION_FACTOR',
  'SMARTCITY_KAFKA_DELIVERY_TIMEOUT',
  'SMARTCITY_TEMPORAL_PORT',
  'SMARTCITY_TEMPORAL_UI_PORT',
  'SMARTCITY_KAFKA_PORT',
  'SMARTCITY_KAFKA_CONTROLLER_PORT',
  'SMARTCITY_SPARK_MASTER_PORT',
  'SMARTCITY_SPARK_MASTER_UI_PORT',
  'SMARTCITY_SPARK_WORKER_UI_PORT',
  'SMARTCITY_METRICS_PORT',
  'SMARTCITY_PROMETHEUS_PORT',
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
  /** The Spark ports are those of `stack up --spark-cluster`; the second worker's UI is sparkWorkerUi + 1. */
  ports: {
    temporal: number;
    temporalUi: number;
    kafka: number;
    kafkaController: number;
    sparkMaster: number;
    sparkMasterUi: number;
    sparkWorkerUi: number;
    /** The Spark Connect server's gRPC port and its driver's UI (whose REST API shows each session's operations). */
    sparkConnect: number;
    sparkConnectUi: number;
  };
  temporal: {
    address: string;
    namespace: string;
    taskQueue: string;
    uiUrl: string;
    /** mTLS client certificate and key (PEM file paths), e.g. for Temporal Cloud or a TLS cluster. */
    tls?: { cert?: string; key?: string; ca?: string; serverName?: string };
    /** Temporal Cloud API key, from SMARTCITY_TEMPORAL_API_KEY only (never the config file). */
    apiKey?: string;
  };
  /**
   * Where the local target's Spark runs jobs: local[N] (default local[2]) or a standalone master
   * spark://host:port; connect (default true): the curate job runs as a client of the stack's Spark
   * Connect server (spark/connect.ts), false: as a spark-submit of its own.
   */
  spark: { master: SparkMaster; connect: boolean };
  /** Present exactly when target is "aws"; every required setting checked. */
  aws: AwsSettings | undefined;
  /**
   * The worker serves Prometheus metrics on host:port (port 0: not at all); `stack up --metrics`
   * starts a local Prometheus on prometheusPort that scrapes it.
   */
  metrics: { port: number; host: string; prometheusPort: number };
  /** How the worker and the CLI write log lines: for people, or one JSON object per line. */
  log: { format: LogFormat };
  kafka: {
    brokers: string[];
    clientId: string;
    ssl: boolean;
    sasl: KafkaSasl | undefined;
    partitions: number;
    replicationFactor: number;
    deadLetterTopic: string;
    /** How long the producer retries a batch, from when its first event was accepted, before failing it. */
    deliveryTimeoutMs: number;
  };
}

export interface AwsSettings {
  region: string;
  /** Endpoint override for all AWS clients (tests against moto); undefined in production. */
  endpoint?: string;
  buckets: { raw: string; curated: string; quarantine: string; checkpoints: string; athenaResults: string; artifacts: string };
  glue: { database: string; rawCrawler: string; curatedCrawler: string; curateJob: string };
  emr: { clusterId: string };
  /** Exactly one of workgroup (Serverless) and clusterId (provisioned) is set. */
  redshift: { workgroup?: string; clusterId?: string; database: string; secretArn?: string; dbUser?: string; copyRoleArn: string; schema: string };
  athena: { workgroup: string; outputLocation: string };
  kafkaSecretArn?: string;
}

type AwsFile = z.infer<typeof awsFileSchema>;

/** Checks the aws target's required settings; one error lists every missing one by env name. */
function awsSettings(a: AwsFile | undefined, kafkaBrokersSet: boolean): AwsSettings {
  const aws = a ?? {};
  const missing: string[] = [];
  const need = <T>(value: T | undefined, envName: string): T => {
    if (value === undefined) missing.push(envName);
    return value as T;
  };
  const b = aws.buckets ?? {};
  const g = aws.glue ?? {};
  const r = aws.redshift ?? {};
  const settings: AwsSettings = {
    region: need(aws.region, 'SMARTCITY_AWS_REGION'),
    ...(aws.endpoint !== undefined && { endpoint: aws.endpoint }),
    buckets: {
      raw: need(b.raw, 'SMARTCITY_S3_RAW_BUCKET'),
      curated: need(b.curated, 'SMARTCITY_S3_CURATED_BUCKET'),
      quarantine: need(b.quarantine, 'SMARTCITY_S3_QUARANTINE_BUCKET'),
      checkpoints: need(b.checkpoints, 'SMARTCITY_S3_CHECKPOINTS_BUCKET'),
      athenaResults: need(b.athenaResults, 'SMARTCITY_S3_ATHENA_RESULTS_BUCKET'),
      artifacts: need(b.artifacts, 'SMARTCITY_S3_ARTIFACTS_BUCKET'),
    },
    glue: {
      database: need(g.database, 'SMARTCITY_GLUE_DATABASE'),
      rawCrawler: need(g.rawCrawler, 'SMARTCITY_GLUE_RAW_CRAWLER'),
      curatedCrawler: need(g.curatedCrawler, 'SMARTCITY_GLUE_CURATED_CRAWLER'),
      curateJob: need(g.curateJob, 'SMARTCITY_GLUE_CURATE_JOB'),
    },
    emr: { clusterId: need(aws.emr?.clusterId, 'SMARTCITY_EMR_CLUSTER_ID') },
    redshift: {
      ...(r.workgroup !== undefined && { workgroup: r.workgroup }),
      ...(r.clusterId !== undefined && { clusterId: r.clusterId }),
      database: need(r.database, 'SMARTCITY_REDSHIFT_DATABASE'),
      ...(r.secretArn !== undefined && { secretArn: r.secretArn }),
      ...(r.dbUser !== undefined && { dbUser: r.dbUser }),
      copyRoleArn: need(r.copyRoleArn, 'SMARTCITY_REDSHIFT_COPY_ROLE_ARN'),
      schema: r.schema ?? 'public',
    },
    athena: {
      workgroup: aws.athena?.workgroup ?? 'primary',
      outputLocation: aws.athena?.outputLocation ?? (b.athenaResults ? `s3://${b.athenaResults}/results/` : ''),
    },
    ...(aws.kafkaSecretArn !== undefined && { kafkaSecretArn: aws.kafkaSecretArn }),
  };
  if (!kafkaBrokersSet) missing.push('SMARTCITY_KAFKA_BROKERS');
  if (missing.length) {
    throw new ConfigError(`target "aws" needs these settings (environment variables, or the same keys under "aws" in SMARTCITY_CONFIG): ${missing.join(', ')}`);
  }
  if ((r.workgroup === undefined) === (r.clusterId === undefined)) {
    throw new ConfigError('target "aws" needs exactly one of SMARTCITY_REDSHIFT_WORKGROUP (Redshift Serverless) and SMARTCITY_REDSHIFT_CLUSTER_ID (provisioned cluster)');
  }
  if (r.clusterId !== undefined && r.secretArn === undefined && r.dbUser === undefined) {
    throw new ConfigError('SMARTCITY_REDSHIFT_CLUSTER_ID is set: set SMARTCITY_REDSHIFT_SECRET_ARN (Secrets Manager) or SMARTCITY_REDSHIFT_DB_USER (temporary IAM credentials) too');
  }
  return settings;
}

/** Sets value at path (e.g. ["aws", "buckets", "raw"]) in the file-shaped object, creating the levels. */
export function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
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
    // SMARTCITY_TEST_* belong to the test harness (e.g. the moto endpoint scripts/test.sh exports),
    // COMPOSE_ONLY to docker-compose.yml.
    if (!name.startsWith('SMARTCITY_') || name.startsWith('SMARTCITY_TEST_') || COMPOSE_ONLY.has(name) || value === undefined) continue;
    const path = ENV[name];
    if (!path) {
      if (ENV_ONLY.includes(name)) continue;
      throw new ConfigError(`unknown setting ${name}; known: ${[...Object.keys(ENV), ...ENV_ONLY].sort().join(', ')}`);
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
  const ports = {
    temporal: 7233,
    temporalUi: 8233,
    kafka: 9092,
    kafkaController: 9093,
    sparkMaster: 7077,
    sparkMasterUi: 8080,
    sparkWorkerUi: 8081,
    sparkConnect: 15002,
    sparkConnectUi: 4050,
    ...c.ports,
  };
  const used = [...Object.values(ports), ports.sparkWorkerUi + 1];
  if (new Set(used).size !== used.length) throw new ConfigError(`ports must differ (the second Spark worker's UI is SMARTCITY_SPARK_WORKER_UI_PORT + 1): ${JSON.stringify(ports)}`);
  const metrics = { port: 9464, host: '127.0.0.1', prometheusPort: 9090, ...c.metrics };
  for (const [name, value] of [['SMARTCITY_METRICS_PORT', metrics.port], ['SMARTCITY_PROMETHEUS_PORT', metrics.prometheusPort]] as const) {
    if (used.includes(value)) throw new ConfigError(`${name}=${value} is one of the stack's ports: ${JSON.stringify(ports)}`);
  }
  if (metrics.port === metrics.prometheusPort) throw new ConfigError(`SMARTCITY_METRICS_PORT and SMARTCITY_PROMETHEUS_PORT must differ (both ${metrics.port})`);

  let sasl: KafkaSasl | undefined;
  if (c.kafka?.saslMechanism) {
    const username = env.SMARTCITY_KAFKA_SASL_USERNAME;
    const password = env.SMARTCITY_KAFKA_SASL_PASSWORD;
    if (!username || !password) {
      throw new ConfigError('SMARTCITY_KAFKA_SASL_MECHANISM is set: SMARTCITY_KAFKA_SASL_USERNAME and SMARTCITY_KAFKA_SASL_PASSWORD must be set too');
    }
    sasl = { mechanism: c.kafka.saslMechanism, username, password };
  }

  const target = c.target ?? 'local';
  const tls = c.temporalTls;
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new ConfigError('SMARTCITY_TEMPORAL_TLS_CERT and SMARTCITY_TEMPORAL_TLS_KEY go together: set both (mTLS) or neither');
  }
  for (const [key, path] of Object.entries(tls ?? {})) {
    if (key !== 'serverName' && !existsSync(abs(path))) throw new ConfigError(`SMARTCITY_TEMPORAL_TLS_${key.toUpperCase()} points at ${abs(path)}, which does not exist`);
  }
  const apiKey = env.SMARTCITY_TEMPORAL_API_KEY || undefined;

  return {
    target,
    aws: target === 'aws' ? awsSettings(c.aws, c.kafka?.brokers !== undefined) : undefined,
    dataDir: abs(c.dataDir ?? '.data'),
    lakeRoot: c.lakeRoot === undefined ? join(abs(c.dataDir ?? '.data'), 'lake') : /^[a-z][a-z0-9+.-]*:\/\//.test(c.lakeRoot) ? c.lakeRoot : abs(c.lakeRoot),
    toolsDir: abs(c.toolsDir ?? '.tools'),
    // The regex above admits exactly the SparkMaster shapes.
    spark: { master: (c.spark?.master ?? 'local[2]') as SparkMaster, connect: c.spark?.connect ?? true },
    ports,
    metrics,
    log: { format: c.log?.format ?? 'human' },
    temporal: {
      address: c.temporal?.address ?? `127.0.0.1:${ports.temporal}`,
      namespace: c.temporal?.namespace ?? 'default',
      taskQueue: c.temporal?.taskQueue ?? 'smartcity',
      uiUrl: `http://localhost:${ports.temporalUi}`,
      ...(tls && {
        tls: Object.fromEntries(Object.entries(tls).map(([k, v]) => [k, k === 'serverName' ? v : abs(v)])),
      }),
      ...(apiKey !== undefined && { apiKey }),
    },
    kafka: {
      brokers: c.kafka?.brokers ?? [`127.0.0.1:${ports.kafka}`],
      clientId: c.kafka?.clientId ?? 'smartcity',
      ssl: c.kafka?.ssl ?? sasl !== undefined,
      sasl,
      partitions: c.kafka?.partitions ?? 3,
      replicationFactor: c.kafka?.replicationFactor ?? 1,
      deadLetterTopic: c.kafka?.deadLetterTopic ?? 'smartcity_dead_letter',
      deliveryTimeoutMs: (c.kafka?.deliveryTimeoutSeconds ?? 120) * 1000,
    },
  };
}

/** The configuration with secrets masked, for logs and `status` output. */
export function redactConfig(config: Config): unknown {
  return {
    ...config,
    temporal: { ...config.temporal, ...(config.temporal.apiKey !== undefined && { apiKey: '***' }) },
    kafka: { ...config.kafka, sasl: config.kafka.sasl && { ...config.kafka.sasl, password: '***' } },
  };
}
