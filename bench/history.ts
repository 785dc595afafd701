// Past driving in the lake, made the way the pipeline makes it: the deterministic fleet generator
// produces into Kafka topics of the caller's own, and the real ingest job lands them in raw (one
// availableNow run). Used by the benches and the tests that need a lake of known events.
import { EventProducer } from '../producers/event-producer';
import { fleetEvents } from '../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../schemas';
import { runSparkJob } from '../spark/runner';
import type { Config } from '../config';

export interface FleetHistory {
  /** Every event the generator made in [start, until), as sent. */
  events: SmartCityEvent[];
  topics: Record<Source, string>;
}

/** Topics named after `run`, one per source. */
export function runTopics(run: string): Record<Source, string> {
  return Object.fromEntries(SOURCES.map((s) => [s, `bench_${run}_${s}`])) as Record<Source, string>;
}

/**
 * Produces the fleet's events with event time before `until` into the run's topics and ingests them
 * into `config.lakeRoot` (raw and quarantine). Throws with the job's log when ingest fails.
 */
export async function ingestFleetHistory(
  config: Config,
  opts: { run: string; vehicles: number; seed: number; start: Date; until: Date; conf?: Record<string, string> },
): Promise<FleetHistory> {
  const topics = runTopics(opts.run);
  const producer = new EventProducer(config, { topics, validate: false });
  await producer.connect();
  const events: SmartCityEvent[] = [];
  for (const event of fleetEvents({ vehicles: opts.vehicles, seed: opts.seed, start: opts.start })) {
    if (Date.parse(event.eventTime) >= opts.until.getTime()) continue;
    await producer.send(event);
    events.push(event);
  }
  await producer.close();
  const ingest = await runSparkJob(config, { name: `history-ingest-${opts.run}`, job: 'stream_ingest', conf: opts.conf, args: { availableNow: true, topics } });
  if (ingest.state !== 'succeeded') throw new Error(`ingest of the fleet history failed:\n${ingest.logTail}`);
  return { events, topics };
}
