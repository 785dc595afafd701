// The one place Temporal connections are made, for clients (CLI, tests, benches) and workers.
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { NativeConnection } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import type { TLSConfig } from '@temporalio/client';
import type { Config } from '../config';

export class TemporalUnavailableError extends Error {
  override name = 'TemporalUnavailableError';
}

function unavailable(config: Config, err: unknown): TemporalUnavailableError {
  return new TemporalUnavailableError(
    `cannot reach Temporal at ${config.temporal.address} (${(err as Error).message}); is the stack up (\`smartcity stack up\`) or SMARTCITY_TEMPORAL_ADDRESS right?`,
    { cause: err },
  );
}

/**
 * TLS and API-key options for production clusters: mTLS from PEM files (SMARTCITY_TEMPORAL_TLS_*),
 * or an API key (Temporal Cloud), which implies TLS. The local dev server gets neither.
 */
export function connectionSecurity(config: Config): { tls?: TLSConfig | boolean; apiKey?: string } {
  const { tls, apiKey } = config.temporal;
  const out: { tls?: TLSConfig | boolean; apiKey?: string } = {};
  if (tls) {
    out.tls = {
      ...(tls.cert && tls.key && { clientCertPair: { crt: readFileSync(tls.cert), key: readFileSync(tls.key) } }),
      ...(tls.ca && { serverRootCACertificate: readFileSync(tls.ca) }),
      ...(tls.serverName && { serverNameOverride: tls.serverName }),
    };
  }
  if (apiKey !== undefined) {
    out.apiKey = apiKey;
    out.tls ??= true;
  }
  return out;
}

/** A client plus the connection to close when done. */
export async function connectClient(config: Config, connectTimeoutMs = 5_000): Promise<{ client: Client; close: () => Promise<void> }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: config.temporal.address, connectTimeout: connectTimeoutMs, ...connectionSecurity(config) });
  } catch (err) {
    throw unavailable(config, err);
  }
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({ address: config.temporal.address, ...connectionSecurity(config) });
  } catch (err) {
    throw unavailable(config, err);
  }
}

const LIVE_POLLER_MS = 90_000;

/** True when a worker polls the configured task queue for workflow tasks right now. */
export async function workerIsPolling(config: Config): Promise<boolean> {
  let connection;
  try {
    connection = await connectClient(config, 1_000);
  } catch {
    return false;
  }
  try {
    const { pollers } = await connection.client.workflowService.describeTaskQueue({
      namespace: config.temporal.namespace,
      taskQueue: { name: config.temporal.taskQueue },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    // The server lists pollers for minutes after a worker stopped; a live one polls again at least
    // every minute (long polls end after ~60 s), so only a recent poll means a worker is there.
    const now = Date.now();
    return (pollers ?? []).some((p) => {
      const seconds = p.lastAccessTime?.seconds;
      return seconds === undefined || seconds === null || now - Number(seconds) * 1000 < LIVE_POLLER_MS;
    });
  } catch {
    return false;
  } finally {
    await connection.close();
  }
}
