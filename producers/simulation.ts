// Runs a fleet simulation into Kafka: paced in real time (optionally sped up) or as fast as
// possible, until every vehicle has arrived, a simulated duration has passed, or it is stopped.
// Whatever happens, the producer is closed, which flushes: every event handed to Kafka is either
// acknowledged (and counted) or reported as failed. The producer rides out a broker outage up to
// its delivery timeout; past it the run stops at the first failed event instead of sending on
// with a gap.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config';
import { SOURCES, TOPICS, type Source } from '../schemas';
import { DeliveryError, EventProducer, type EventProducerOptions, type ProducerStats } from './event-producer';
import { fleetEvents, type FleetOptions } from './fleet';

export interface SimulationOptions extends FleetOptions {
  /** Simulated seconds per wall-clock second; ignored when asFastAsPossible. */
  speedup: number;
  asFastAsPossible: boolean;
  /** Stop after this much simulated time (ms) from `start`; undefined = until every vehicle arrived. */
  durationMs?: number;
}

export interface SimulationProgress {
  /** Simulated time of the last event sent. */
  simTime: Date | undefined;
  sent: Record<Source, number>;
  stats: ProducerStats;
  elapsedMs: number;
}

export interface SimulationResult extends SimulationProgress {
  /** Why it ended: every vehicle arrived, the duration passed, or it was stopped. */
  reason: 'arrived' | 'duration' | 'stopped';
}

export async function runSimulation(
  config: Config,
  options: SimulationOptions,
  hooks: { signal?: AbortSignal; onProgress?: (p: SimulationProgress) => void; progressEveryMs?: number; producer?: EventProducerOptions } = {},
): Promise<SimulationResult> {
  const events = fleetEvents(options); // validates the options before anything connects
  const producer = new EventProducer(config, hooks.producer);
  await producer.connect();
  const wallStart = Date.now();
  const simStart = options.start.getTime();
  const endMs = options.durationMs === undefined ? Infinity : simStart + options.durationMs;
  const sent = Object.fromEntries(SOURCES.map((s) => [s, 0])) as Record<Source, number>;
  let simTime: Date | undefined;
  let reason: SimulationResult['reason'] = 'arrived';
  let lastProgress = 0;
  const progress = (): SimulationProgress => ({ simTime, sent: { ...sent }, stats: producer.stats(), elapsedMs: Date.now() - wallStart });

  let deliveryError: unknown;
  try {
    for (const event of events) {
      if (deliveryError !== undefined) break;
      if (hooks.signal?.aborted) {
        reason = 'stopped';
        break;
      }
      const at = Date.parse(event.eventTime);
      if (at >= endMs) {
        reason = 'duration';
        break;
      }
      if (!options.asFastAsPossible) {
        const dueInMs = wallStart + (at - simStart) / options.speedup - Date.now();
        if (dueInMs > 2) {
          await sleep(dueInMs, undefined, { signal: hooks.signal }).catch(() => undefined);
          if (hooks.signal?.aborted) {
            reason = 'stopped';
            break;
          }
        }
      }
      let receipt;
      try {
        receipt = await producer.send(event);
      } catch (err) {
        // send() refuses events that were waiting for room when the delivery timeout passed.
        if (!(err instanceof DeliveryError)) throw err;
        deliveryError ??= err;
        break;
      }
      // A failed batch is counted in stats and reported by close(); one rejection is kept for the error.
      receipt.acked.catch((err: unknown) => (deliveryError ??= err));
      sent[event.source]++;
      simTime = new Date(at);
      if (hooks.onProgress && Date.now() - lastProgress >= (hooks.progressEveryMs ?? 250)) {
        lastProgress = Date.now();
        hooks.onProgress(progress());
      }
    }
  } finally {
    await producer.close().catch((err: unknown) => (deliveryError ??= err));
  }
  const result: SimulationResult = { ...progress(), reason };
  if (deliveryError !== undefined) {
    throw Object.assign(new Error(`the run stopped at the first event Kafka did not acknowledge: ${(deliveryError as Error).message}`), {
      result,
      cause: deliveryError,
    });
  }
  return result;
}

/** Per-topic totals as printable lines. */
export function totalsTable(result: SimulationProgress): string[] {
  const rows = SOURCES.map((source) => {
    const topic = TOPICS[source];
    const t = result.stats.topics[topic] ?? { acked: 0, ackedBytes: 0, failed: 0 };
    return [topic, String(result.sent[source]), String(t.acked), String(t.failed), (t.ackedBytes / 1e6).toFixed(2)];
  });
  const sum = (i: number) => rows.reduce((n, r) => n + Number(r[i]), 0);
  rows.push(['total', String(sum(1)), String(sum(2)), String(sum(3)), sum(4).toFixed(2)]);
  const head = ['topic', 'sent', 'acknowledged', 'failed', 'MB'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)];
}
