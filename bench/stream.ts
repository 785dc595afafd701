// Streaming ingest: the Spark ingest job (spark/jobs/stream_ingest.py) against a bare Kafka →
// Parquet copy (spark/jobs/bare_copy.py), one after the other in the same run, on the same master,
// trigger, batch cap and events, each on topics of its own:
//  - throughput: a backlog is waiting in Kafka when the job starts; events/s is what the batches
//    that drain it consume per second of their own run time (time spent waiting for the trigger
//    does not count against a fast job). Left out: the first batch (start-up: cold JVM, Python
//    workers) and the last (the backlog's remainder, often a few records whose fixed cost per
//    batch would dominate);
//  - freshness: then a paced stream is produced for a while; for each of its records, the time
//    from its Kafka timestamp until the batch that read it was visible in the lake.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config, type SparkMaster } from '../config';
import { createKafka } from '../kafka/client';
import { EventProducer } from '../producers/event-producer';
import { fleetEvents } from '../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../schemas';
import { readProgress, sparkJobLogTail, sparkJobStatus, startSparkJob, stopSparkJob, type ProgressLine } from '../spark/runner';

export interface BenchStreamOptions {
  config?: Config;
  /** Events waiting in Kafka when a job starts (default 60 000). */
  events?: number;
  /** Simulated vehicles the events come from (default 40). */
  vehicles?: number;
  master?: SparkMaster;
  /** Micro-batch interval of both jobs (default 5). */
  triggerSeconds?: number;
  /** Cap on records per micro-batch, so the backlog drains in several batches (default 10 000). */
  maxOffsetsPerTrigger?: number;
  /** The paced stream for freshness: events per second (default 200)… */
  pacedEventsPerSec?: number;
  /** …for this long (default 30). */
  pacedSeconds?: number;
  /** Spark settings for both jobs; default: no web UI. */
  conf?: Record<string, string>;
  print?: (line: string) => void;
}

export interface StreamMeasure {
  job: 'stream_ingest' | 'bare_copy';
  /** From the start call until the first batch was visible. */
  startupSeconds: number;
  /** Backlog batches measured (all but the first and the last) and their rate. */
  batches: number;
  eventsPerSec: number;
  freshness: { records: number; p50Ms: number; p95Ms: number };
}

export interface BenchStreamResult {
  ingest: StreamMeasure;
  bare: StreamMeasure;
  /** ingest.eventsPerSec / bare.eventsPerSec */
  throughputRatio: number;
  /** ingest.freshness.p95Ms / bare.freshness.p95Ms */
  freshnessP95Ratio: number;
  twoTriggersMs: number;
}

/** topic/partition → offset */
type Offsets = Map<string, number>;

/** The fields both jobs write per batch, and when the batch was visible in the lake. */
interface Batch {
  consumed: number;
  durationMs: number;
  visibleMs: number;
  offsets: Record<string, Record<string, { start: number; end: number }>>;
}

function toBatch(line: ProgressLine): Batch {
  const p = line as { consumed: number; duration_ms: number; ingest_time: string; visible_time?: string; offsets: Batch['offsets'] };
  // stream_ingest's batch is visible when its foreachBatch returns; bare_copy says when its trigger ended.
  const visibleMs = p.visible_time ? Date.parse(p.visible_time) : Date.parse(p.ingest_time) + p.duration_ms;
  return { consumed: p.consumed, durationMs: p.duration_ms, visibleMs, offsets: p.offsets };
}

async function highWatermarks(config: Config, topics: string[]): Promise<Offsets> {
  const admin = createKafka(config).admin();
  await admin.connect();
  try {
    const out: Offsets = new Map();
    for (const topic of topics) for (const p of await admin.fetchTopicOffsets(topic)) out.set(`${topic}/${p.partition}`, Number(p.high));
    return out;
  } finally {
    await admin.disconnect();
  }
}

/** Kafka timestamps of the records between two snapshots, keyed topic/partition/offset. */
async function recordTimes(config: Config, from: Offsets, to: Offsets): Promise<Map<string, number>> {
  const remaining = new Map([...to].filter(([tp, end]) => end > (from.get(tp) ?? 0)));
  const times = new Map<string, number>();
  if (remaining.size === 0) return times;
  const consumer = createKafka(config).consumer({ groupId: `smartcity-bench-${randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...new Set([...remaining.keys()].map((tp) => tp.slice(0, tp.lastIndexOf('/'))))], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading back the paced records: partitions ${[...remaining.keys()].join(', ')} not finished`)), 120_000);
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            const tp = `${batch.topic}/${batch.partition}`;
            const start = from.get(tp) ?? 0;
            const end = to.get(tp) ?? 0;
            for (const m of batch.messages) {
              const offset = Number(m.offset);
              if (offset >= start && offset < end) times.set(`${tp}/${offset}`, Number(m.timestamp));
            }
            if (remaining.has(tp) && Number(batch.lastOffset()) + 1 >= end) remaining.delete(tp);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return times;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function measure(
  config: Config,
  job: StreamMeasure['job'],
  o: Required<Omit<BenchStreamOptions, 'config' | 'print' | 'vehicles'>> & { backlog: SmartCityEvent[]; paced: SmartCityEvent[]; run: string; lake: string },
): Promise<StreamMeasure> {
  const topics = Object.fromEntries(SOURCES.map((s) => [s, `smartcity_bench_${o.run}_${job}_${s}`])) as Record<Source, string>;
  const name = `bench-${o.run}-${job}`;
  const producer = new EventProducer(config, { topics });
  try {
    await producer.connect();
    for (const e of o.backlog) await producer.send(e);
    await producer.flush();

    const started = Date.now();
    const handle = await startSparkJob(config, {
      name,
      job,
      master: o.master,
      conf: o.conf,
      args: { lakeRoot: join(o.lake, job), topics, triggerSeconds: o.triggerSeconds, maxOffsetsPerTrigger: o.maxOffsetsPerTrigger },
    });
    const batches = () => readProgress(handle.progressFile!).map(toBatch);
    const consumedAtLeast = async (count: number) => {
      for (;;) {
        const status = await sparkJobStatus(config, name);
        if (status.state !== 'running') throw new Error(`${job} ended (${status.state}, exit code ${status.exitCode}):\n${await sparkJobLogTail(config, name)}`);
        if (batches().reduce((sum, b) => sum + b.consumed, 0) >= count) return;
        await sleep(250);
      }
    };
    await consumedAtLeast(o.backlog.length);

    const topicNames = Object.values(topics);
    const pacedFrom = await highWatermarks(config, topicNames);
    const pacingStart = Date.now();
    for (let sent = 0; sent < o.paced.length; ) {
      const due = Math.min(o.paced.length, Math.floor(((Date.now() - pacingStart) / 1000) * o.pacedEventsPerSec));
      while (sent < due) await producer.send(o.paced[sent++]!);
      await sleep(10);
    }
    await producer.flush();
    const pacedTo = await highWatermarks(config, topicNames);
    await consumedAtLeast(o.backlog.length + o.paced.length);
    await stopSparkJob(config, name, 30_000);

    const all = batches();
    const startupSeconds = ((all[0]?.visibleMs ?? NaN) - started) / 1000;
    let drained = 0;
    const backlogBatches = all.filter((b) => {
      const inBacklog = drained < o.backlog.length;
      drained += b.consumed;
      return inBacklog;
    });
    const measured = backlogBatches.slice(1, -1);
    if (measured.length === 0) throw new Error(`${job} drained the backlog in ${backlogBatches.length} batches: raise events or lower maxOffsetsPerTrigger`);
    const eventsPerSec = measured.reduce((sum, b) => sum + b.consumed, 0) / (measured.reduce((sum, b) => sum + b.durationMs, 0) / 1000);

    const times = await recordTimes(config, pacedFrom, pacedTo);
    const freshness: number[] = [];
    for (const b of all) {
      for (const [topic, partitions] of Object.entries(b.offsets)) {
        for (const [partition, { start, end }] of Object.entries(partitions)) {
          for (let offset = start; offset < end; offset++) {
            const at = times.get(`${topic}/${partition}/${offset}`);
            if (at !== undefined) freshness.push(b.visibleMs - at);
          }
        }
      }
    }
    freshness.sort((a, b) => a - b);
    return { job, startupSeconds, batches: measured.length, eventsPerSec, freshness: { records: freshness.length, p50Ms: percentile(freshness, 50), p95Ms: percentile(freshness, 95) } };
  } finally {
    await stopSparkJob(config, name, 5_000);
    await producer.close();
    const admin = createKafka(config).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: Object.values(topics) }).finally(() => admin.disconnect());
  }
}

export async function benchStream(opts: BenchStreamOptions = {}): Promise<BenchStreamResult> {
  const config = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const o = {
    events: opts.events ?? 60_000,
    master: opts.master ?? 'local[2]',
    triggerSeconds: opts.triggerSeconds ?? 5,
    maxOffsetsPerTrigger: opts.maxOffsetsPerTrigger ?? 10_000,
    pacedEventsPerSec: opts.pacedEventsPerSec ?? 200,
    pacedSeconds: opts.pacedSeconds ?? 30,
    conf: opts.conf ?? { 'spark.ui.enabled': 'false' },
  };
  if (o.events < 3 * o.maxOffsetsPerTrigger) throw new RangeError('benchStream: events must fill at least three batches (3 × maxOffsetsPerTrigger)');
  const vehicles = opts.vehicles ?? 40;
  const pacedCount = Math.round(o.pacedEventsPerSec * o.pacedSeconds);
  const events: SmartCityEvent[] = [];
  for (const e of fleetEvents({ vehicles, seed: 7, start: new Date('2026-03-02T07:00:00Z') })) {
    if (events.length >= o.events + pacedCount) break;
    events.push(e);
  }
  const backlog = events.slice(0, o.events);
  const paced = events.slice(o.events);
  const run = randomUUID().slice(0, 8);
  const lake = mkdtempSync(join(tmpdir(), 'smartcity-bench-stream-'));
  const twoTriggersMs = 2 * o.triggerSeconds * 1000;
  print(
    `stream bench: ${o.master}, trigger ${o.triggerSeconds} s, at most ${o.maxOffsetsPerTrigger} records per batch; ` +
      `backlog of ${backlog.length} events from ${vehicles} simulated vehicles, then ${o.pacedEventsPerSec} events/s for ${o.pacedSeconds} s`,
  );
  try {
    const ingest = await measure(config, 'stream_ingest', { ...o, backlog, paced, run, lake });
    print(line(ingest, 'stream_ingest'));
    const bare = await measure(config, 'bare_copy', { ...o, backlog, paced, run, lake });
    print(line(bare, 'bare_copy'));
    const throughputRatio = ingest.eventsPerSec / bare.eventsPerSec;
    const freshnessP95Ratio = ingest.freshness.p95Ms / bare.freshness.p95Ms;
    print(`  ratio ingest / bare   : throughput ${throughputRatio.toFixed(2)}, freshness p95 ${freshnessP95Ratio.toFixed(2)}`);
    const verdict = (m: StreamMeasure) => `${seconds(m.freshness.p95Ms)} (${m.freshness.p95Ms <= twoTriggersMs ? 'within' : 'over'})`;
    print(`  freshness p95 vs two trigger intervals (${seconds(twoTriggersMs)}): ingest ${verdict(ingest)}, bare ${verdict(bare)}`);
    return { ingest, bare, throughputRatio, freshnessP95Ratio, twoTriggersMs };
  } finally {
    rmSync(lake, { recursive: true, force: true });
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function line(m: StreamMeasure, label: string): string {
  return (
    `  ${label.padEnd(14)}: ${Math.round(m.eventsPerSec).toLocaleString('en-US')} events/s over ${m.batches} batches; ` +
    `freshness p50 ${seconds(m.freshness.p50Ms)}, p95 ${seconds(m.freshness.p95Ms)} (${m.freshness.records} records); first batch visible ${m.startupSeconds.toFixed(1)} s after start`
  );
}
