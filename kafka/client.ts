// The one place kafkajs is configured. Everything that talks to Kafka (the event producer, the
// kafka activities, tests, the bench) builds its client here, so TLS/SASL, timeouts, retries and
// logging behave the same everywhere and an unreachable broker always fails the same clear way.
import { Kafka, Partitioners, logLevel, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config';

export interface KafkaClientOptions {
  /** Per attempt: TCP connect, TLS handshake and the first ApiVersions round trip. */
  connectionTimeoutMs?: number;
  /** How long any one request may wait for its response. */
  requestTimeoutMs?: number;
  /**
   * Attempts after the first, for connecting and for each admin request, with exponential
   * backoff. The defaults bound a dead broker to about 15 s: 4 × 3 s plus ~2 s of backoff.
   */
  retries?: number;
  initialRetryMs?: number;
  maxRetryMs?: number;
  /** Lowest kafkajs level that reaches `log`. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Receives one formatted line per kafkajs log entry; stderr by default. */
  log?: (line: string) => void;
}

const DEFAULTS = {
  connectionTimeoutMs: 3000,
  requestTimeoutMs: 10_000,
  retries: 3,
  initialRetryMs: 300,
  maxRetryMs: 3000,
  logLevel: 'warn',
} as const satisfies KafkaClientOptions;

const LEVELS = { error: logLevel.ERROR, warn: logLevel.WARN, info: logLevel.INFO, debug: logLevel.DEBUG };
const LEVEL_NAMES: Record<number, string> = { [logLevel.ERROR]: 'ERROR', [logLevel.WARN]: 'WARN', [logLevel.INFO]: 'INFO', [logLevel.DEBUG]: 'DEBUG' };

/**
 * key → partition must agree with the Java client (Spark's Kafka source, kafka-console tools):
 * DefaultPartitioner is murmur2 on the key bytes, positive, modulo the partition count, exactly
 * like Java's. Passing it explicitly also keeps kafkajs from warning about its v2 default change.
 */
export const KEY_PARTITIONER = Partitioners.DefaultPartitioner;

// We bound retries on purpose (a dead broker must fail, not hang); the event producer compensates
// by starting a fresh producer id after a failed batch, so this warning would only be noise.
const SUPPRESSED = ['Limiting retries for the idempotent producer may invalidate EoS guarantees'];

// kafkajs logs every error response at ERROR, even the ones it retries. These are what a broker
// answers while it is still starting (coordinators loading, metadata not yet propagated); the
// retry that follows is what matters, so they are dropped below DEBUG-level interest.
const TRANSIENT_RESPONSES = [
  'The coordinator is loading',
  'The group coordinator is not available',
  'This server does not host this topic-partition',
  'There is no leader for this partition',
  'The coordinator is not available',
];

// Only these fields of a kafkajs log entry are printed: none of them can carry credentials.
const LOGGED_FIELDS = ['broker', 'topic', 'groupId', 'error', 'retryCount', 'retryTime'];

// During an outage kafkajs logs the same failure on every retry of every request; a line that
// repeats one printed less than this long ago is counted instead, and the count is printed with
// the next one.
const REPEAT_WINDOW_MS = 30_000;

/** Where kafkajs's lines (and the event producer's own notes) go: `opts.log`, or stderr. */
export function kafkaLogSink(opts: KafkaClientOptions = {}): (line: string) => void {
  return opts.log ?? ((line) => process.stderr.write(`${line}\n`));
}

function createLogCreator(config: Config, sink: (line: string) => void) {
  const secret = config.kafka.sasl?.password;
  const scrub = (text: string) => (secret ? text.split(secret).join('***') : text);
  const recent = new Map<string, { at: number; repeats: number }>();
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      if (SUPPRESSED.includes(log.message)) return;
      if (namespace === 'Connection' && TRANSIENT_RESPONSES.some((t) => String(log.error ?? '').startsWith(t))) return;
      const now = Date.now();
      const key = `${namespace}|${log.message}|${String(log.broker ?? '')}|${String(log.error ?? '')}`;
      const seen = recent.get(key);
      if (seen && now - seen.at < REPEAT_WINDOW_MS) {
        seen.repeats++;
        return;
      }
      for (const [k, v] of recent) if (now - v.at >= REPEAT_WINDOW_MS && v.repeats === 0) recent.delete(k);
      recent.set(key, { at: now, repeats: 0 });
      const extra = LOGGED_FIELDS.filter((k) => log[k] !== undefined)
        .map((k) => `${k}=${String(log[k])}`)
        .join(' ');
      const repeated = seen?.repeats ? ` [${seen.repeats} more like it in the last ${Math.round((now - seen.at) / 1000)} s]` : '';
      sink(scrub(`kafka ${LEVEL_NAMES[level] ?? level} [${namespace}] ${log.message}${extra ? ` (${extra})` : ''}${repeated}`));
    };
}

function saslOptions(config: Config): SASLOptions | undefined {
  const sasl = config.kafka.sasl;
  if (!sasl) return undefined;
  const { username, password } = sasl;
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username, password };
  }
}

/** The kafkajs client settings for a configuration; exported so tests can check them. */
export function kafkaClientConfig(config: Config, opts: KafkaClientOptions = {}): KafkaConfig {
  const o = { ...DEFAULTS, ...opts };
  const sasl = saslOptions(config);
  return {
    clientId: config.kafka.clientId,
    brokers: config.kafka.brokers,
    // config.kafka.ssl already defaults to on whenever SASL is configured.
    ssl: config.kafka.ssl,
    ...(sasl ? { sasl } : {}),
    connectionTimeout: o.connectionTimeoutMs,
    authenticationTimeout: o.connectionTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    enforceRequestTimeout: true,
    retry: { retries: o.retries, initialRetryTime: o.initialRetryMs, maxRetryTime: o.maxRetryMs, multiplier: 2, factor: 0.2 },
    logLevel: LEVELS[o.logLevel],
    logCreator: createLogCreator(config, kafkaLogSink(opts)),
  };
}

export function createKafka(config: Config, opts: KafkaClientOptions = {}): Kafka {
  return new Kafka(kafkaClientConfig(config, opts));
}

/** An error from talking to Kafka, with a message that says which brokers were tried. */
export class KafkaClientError extends Error {
  override name = 'KafkaClientError';
  constructor(
    message: string,
    readonly brokers: string[],
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

interface ErrorLike {
  name?: string;
  message?: string;
  broker?: string;
  retryCount?: number;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
}

const CONNECTION_ERRORS = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError', 'KafkaJSBrokerNotFound']);

function chain(err: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let current: unknown = err;
  while (typeof current === 'object' && current !== null && !out.includes(current) && out.length < 10) {
    const e = current as ErrorLike;
    out.push(e);
    current = e.cause ?? e.originalError;
  }
  return out;
}

function isConnectionError(errors: ErrorLike[]): boolean {
  // kafkajs reports a broker that accepted the connection but never answered its handshake as a
  // plain Error with this message.
  return errors.some((e) => (e.name !== undefined && CONNECTION_ERRORS.has(e.name)) || e.message === 'Broker not connected');
}

/**
 * Whether trying again later can succeed: the broker is unreachable, restarting, electing a
 * leader, or the topic is not there yet. Refusals that retrying cannot change (a message too
 * large, an ACL, a failed SASL login) are not. kafkajs wraps the last error of its own retries in
 * a non-retriable "retries exceeded" error, so the innermost cause decides.
 */
export function isRetriable(err: unknown): boolean {
  const errors = chain(err);
  if (isConnectionError(errors)) return true;
  const root = errors[errors.length - 1];
  return root?.retriable !== false && !errors.some((e) => e.name === 'KafkaJSSASLAuthenticationError');
}

/**
 * Turns a kafkajs error into one sentence a user can act on. Connection failures name the
 * brokers tried (all of `brokers` when given, else the one the error names); `failingForMs` says
 * for how long the brokers had been failing, when the caller kept retrying.
 */
export function describeBrokerError(err: unknown, brokers: string[] = [], failingForMs?: number): string {
  const errors = chain(err);
  const root = errors[errors.length - 1];
  const attempts = errors.find((e) => e.name === 'KafkaJSNumberOfRetriesExceeded')?.retryCount;
  const after = failingForMs !== undefined ? ` for ${Math.round(failingForMs / 1000)} s` : attempts === undefined ? '' : ` after ${attempts + 1} attempts`;
  const at = errors.find((e) => e.broker)?.broker;
  const tried = brokers.length ? brokers.join(', ') : (at ?? 'the configured brokers');
  const detail = root?.message ?? String(err);
  if (errors.some((e) => e.name === 'KafkaJSSASLAuthenticationError')) {
    return `Kafka rejected the SASL login at ${at ?? tried}: ${detail}. Check SMARTCITY_KAFKA_SASL_MECHANISM, SMARTCITY_KAFKA_SASL_USERNAME and SMARTCITY_KAFKA_SASL_PASSWORD`;
  }
  if (isConnectionError(errors)) {
    return `cannot reach Kafka at ${tried}${after}: ${detail}${at && brokers.length > 1 && !detail.includes(at) ? ` (last tried ${at})` : ''}. Is the broker running, and is SMARTCITY_KAFKA_BROKERS right?`;
  }
  return `Kafka request failed (brokers ${tried})${after}: ${detail}`;
}

async function withAdmin<T>(config: Config, opts: KafkaClientOptions, fn: (admin: ReturnType<Kafka['admin']>) => Promise<T>): Promise<T> {
  const admin = createKafka(config, opts).admin();
  try {
    await admin.connect();
    return await fn(admin);
  } catch (err) {
    throw new KafkaClientError(describeBrokerError(err, config.kafka.brokers), config.kafka.brokers, { cause: err });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates whichever of `topics` do not exist yet, with the configured partitions and replication
 * factor, and waits for their leaders. Safe to call concurrently and repeatedly. Returns the names
 * this call created.
 */
export async function ensureTopics(config: Config, topics: string[], opts: KafkaClientOptions = {}): Promise<string[]> {
  return withAdmin(config, opts, async (admin) => {
    const created: string[] = [];
    // A broker that has just started may answer a topic's metadata before it has propagated
    // ("does not host this topic-partition"); such errors are retriable, so look again.
    for (let attempt = 0; ; attempt++) {
      try {
        const existing = new Set(await admin.listTopics());
        // One request per topic: kafkajs reports a partially-existing batch as "nothing created".
        for (const topic of new Set(topics)) {
          if (existing.has(topic)) continue;
          const fresh = await admin.createTopics({
            topics: [{ topic, numPartitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor }],
            waitForLeaders: true,
          });
          if (fresh) created.push(topic);
        }
        return created;
      } catch (err) {
        // kafkajs wraps the last retriable error in a non-retriable "retries exceeded" one.
        const retriable = chain(err).some((e) => (e as { retriable?: boolean }).retriable === true);
        if (attempt >= 5 || !retriable) throw err;
        await sleep(200 * 2 ** attempt);
      }
    }
  });
}

/** Sum of the high watermarks of `topic`'s partitions: how many records it has ever received. */
export async function topicOffsets(config: Config, topic: string, opts: KafkaClientOptions = {}): Promise<number> {
  return withAdmin(config, opts, async (admin) => {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  });
}
