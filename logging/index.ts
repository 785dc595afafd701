// The one logger of the worker and the CLI. `human` (the default) writes a line a person reads in
// a terminal; `json` writes one JSON object per line for a log shipper: time, level, message, the
// Temporal context of the line (workflowId, runId, activityType… — the SDK hands workflow and
// activity log calls to the Runtime logger with these attributes) and the call's own attributes.
// Whatever the format, values of secret-named attributes and the configured secrets themselves
// (Kafka SASL password, Temporal API key) are replaced before anything is written.
import { formatWithOptions } from 'node:util';
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import type { Config, LogFormat } from '../config';

const SEVERITY: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

/** Where the SDK puts the time of a line forwarded from its native core, in ns since the epoch. */
const LOG_TIMESTAMP = Symbol.for('log_timestamp');

/**
 * Attributes the SDK attaches to workflow and activity lines, written at the top level of a JSON
 * line so a log store can index them. An activity's run id comes as workflowRunId.
 */
const CONTEXT_KEYS = ['workflowId', 'runId', 'workflowType', 'activityType', 'activityId', 'attempt', 'namespace', 'taskQueue', 'sdkComponent'] as const;

/** Attribute names whose values are never written (the SDK's activity taskToken is a capability). */
const SECRET_NAME = /passw|secret|token|api_?key|authori[sz]ation|credential|private_?key/i;
const REDACTED = '[redacted]';

/** Temporal's Logger, whose methods are typed to return anything, with the void they return here. */
export interface Log extends Logger {
  log(level: LogLevel, message: string, meta?: LogMetadata): void;
  trace(message: string, meta?: LogMetadata): void;
  debug(message: string, meta?: LogMetadata): void;
  info(message: string, meta?: LogMetadata): void;
  warn(message: string, meta?: LogMetadata): void;
  error(message: string, meta?: LogMetadata): void;
}

export interface LoggerOptions {
  format: LogFormat;
  /** Lowest level written; INFO by default. */
  level?: LogLevel;
  /** Values that must never appear in a line, wherever they occur. */
  secrets?: string[];
  /** Receives each finished line (without its newline); stderr by default. */
  write?: (line: string) => void;
}

function scrubText(text: string, secrets: string[]): string {
  return secrets.reduce((t, secret) => t.split(secret).join(REDACTED), text);
}

/** A JSON-safe copy of an attribute value with secrets replaced; errors keep name, message and stack. */
function clean(value: unknown, secrets: string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value, secrets);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? String(value) : value;
  if (depth > 6) return '[nested too deep]';
  if (value instanceof Error) {
    const cause = value.cause === undefined ? {} : { cause: clean(value.cause, secrets, depth + 1) };
    return { name: value.name, message: scrubText(value.message, secrets), ...(value.stack && { stack: scrubText(value.stack, secrets) }), ...cause };
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => clean(v, secrets, depth + 1));
  if (value instanceof Uint8Array) return `[${value.length} bytes]`;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_NAME.test(k) ? REDACTED : clean(v, secrets, depth + 1)]));
}

/** The line's time: the SDK's own timestamp when it forwarded the line, else now. */
function timeOf(meta: LogMetadata | undefined): string {
  const nanos: unknown = meta?.[LOG_TIMESTAMP];
  return new Date(typeof nanos === 'bigint' ? Number(nanos / 1_000_000n) : Date.now()).toISOString();
}

/** Splits a line's attributes into the Temporal context and the rest. */
function split(meta: LogMetadata | undefined, secrets: string[]): { context: Record<string, unknown>; attributes: Record<string, unknown> } {
  const { workflowRunId, ...rest } = (clean(meta ?? {}, secrets) as Record<string, unknown>);
  if (workflowRunId !== undefined && rest.runId === undefined) rest.runId = workflowRunId;
  const context: Record<string, unknown> = {};
  for (const key of CONTEXT_KEYS) {
    if (rest[key] !== undefined) context[key] = rest[key];
    delete rest[key];
  }
  return { context, attributes: rest };
}

const inspect = formatWithOptions.bind(undefined, { colors: false, breakLength: Infinity, depth: 4 });

export function formatLine(format: LogFormat, level: LogLevel, message: string, meta: LogMetadata | undefined, secrets: string[] = []): string {
  const time = timeOf(meta);
  const text = scrubText(message, secrets);
  const { context, attributes } = split(meta, secrets);
  if (format === 'json') {
    return JSON.stringify({ time, level: level.toLowerCase(), message: text, ...context, ...(Object.keys(attributes).length > 0 && { attributes }) });
  }
  const all = { ...context, ...attributes };
  return Object.keys(all).length === 0 ? `${time} [${level}] ${text}` : `${time} [${level}] ${text} ${inspect(all)}`;
}

export function createLogger(options: LoggerOptions): Log {
  const threshold = SEVERITY[options.level ?? 'INFO'];
  const secrets = (options.secrets ?? []).filter((s) => s.length > 0);
  const write = options.write ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const log = (level: LogLevel, message: string, meta?: LogMetadata) => {
    if (SEVERITY[level] >= threshold) write(formatLine(options.format, level, message, meta, secrets));
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}

/** The secrets a configuration holds: never to be written, whatever carries them into a line. */
export function configuredSecrets(config: Pick<Config, 'kafka' | 'temporal'>): string[] {
  return [config.kafka.sasl?.password, config.temporal.apiKey].filter((s): s is string => s !== undefined);
}

let current: Log = createLogger({ format: 'human' });

/** Makes the process's logger the configured one; call once at start-up, before anything logs. */
export function configureLogging(config: Pick<Config, 'log' | 'kafka' | 'temporal'>): Log {
  current = createLogger({ format: config.log.format, secrets: configuredSecrets(config) });
  return current;
}


/** The process's logger without the lines below `level`. */
export function logAtLeast(level: LogLevel): Log {
  const at = (l: LogLevel) => (message: string, meta?: LogMetadata) => {
    if (SEVERITY[l] >= SEVERITY[level]) current.log(l, message, meta);
  };
  return {
    log: (l, message, meta) => at(l)(message, meta),
    trace: at('TRACE'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  };
}

/** The process's logger (human until configureLogging). */
export const log: Log = logAtLeast('TRACE');
