// Streaming ingest: the Spark ingest job (spark/jobs/stream_ingest.py) against a bare Kafka →
// Parquet copy with the same layout (spark/jobs/bare_copy.py --layout partitioned: source, date,
// hour and batch_id folders from each record's event time, a replayed batch replacing its own
// files, no validation), with the flat copy (Spark's file sink into one folder) as a floor.
//
// Each job runs alone, on topics of its own, in rounds that alternate the order (ingest, copy,
// flat; copy, ingest, flat; …), on the same master, trigger, batch cap and events, 1–2 % of them
// invalid on every side:
//  - throughput: a backlog waits in Kafka when the job starts. After the warm-up batches
//    (start-up: cold JVM, Python workers, first compilations), the next `measuredBatches` full
//    batches are measured: records consumed per second of the batches' own time, as each job's
//    progress line reports it (time inside foreachBatch for ingest and copy, measured by the same
//    code; the flat copy's is Spark's addBatch). Waiting for the trigger does not count.
//  - freshness (ingest and copy): then a paced stream is produced for a while; for each of its
//    records, the time from its Kafka timestamp until the batch that read it was in the lake.
// The ratio of a round is ingest / copy events per second; the result is the median over rounds.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, type Config, type SparkMaster } from '../config';
import { createKafka } from '../kafka/client';
import { EventProducer } from '../producers/event-producer';
import { fleetEvents } from '../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../schemas';
import { readProgress, sparkJobLogTail, sparkJobStatus, startSparkJob, stopSparkJob, type ProgressLine, type SparkJobSpec } from '../spark/runner';
import { until } from '../test/helpers/until';

export interface BenchStreamOptions {
  config?: Config;
  /** Rounds of one run per job, the order alternating (default 3). */
  rounds?: number;
  /** Batches left out at the start of each run (default 3). */
  warmupBatches?: number;
  /** Full batches measured after them (default 20). */
  measuredBatches?: number;
  /** Records per micro-batch (default 10 000); the backlog fills warm-up + measured + 1 batches. */
  maxOffsetsPerTrigger?: number;
  /** Micro-batch interval of every job (default 2). */
  triggerSeconds?: number;
  /** Share of the events made invalid, on every side (default 0.015). */
  invalidShare?: number;
  /** Simulated vehicles the events come from (default 40). */
  vehicles?: number;
  /** The paced stream for freshness: events per second (default 200)… */
  pacedEventsPerSec?: number;
  /** …for this long (default 20). */
  pacedSeconds?: number;
  master?: SparkMaster;
  /** Spark settings for every job; default: no web UI. */
  conf?: Record<string, string>;
  print?: (line: string) => void;
}

type JobKind = 'ingest' | 'copy' | 'flat';
const LABELS: Record<JobKind, string> = { ingest: 'stream_ingest', copy: 'bare copy', flat: 'flat copy' };

export interface RunMeasure {
  kind: JobKind;
  round: number;
  /** From the start call until the first batch was in the lake. */
  startupSeconds: number;
  eventsPerSec: number;
  /** Median milliseconds per phase over the measured batches, as the job's progress lines say. */
  phases: Record<string, number>;
  /** Per paced record, Kafka timestamp → its batch in the lake (ingest and copy only). */
  freshnessMs: number[];
}

export interface Percentiles {
  records: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

export interface BenchStreamResult {
  runs: RunMeasure[];
  /** ingest / copy events per second, per round. */
  ratios: number[];
  /** Median of `ratios`. */
  ratio: number;
  /** ingest / flat copy, per round. */
  floorRatios: number[];
  freshness: { ingest: Percentiles; copy: Percentiles };
  twoTriggersMs: number;
}

/** topic/partition → offset */
type Offsets = Map<string, number>;

interface Batch {
  batchId: number;
  consumed: number;
  durationMs: number;
  visibleMs: number;
  phases: Record<string, number>;
  offsets: Record<string, Record<string, { start: number; end: number }>>;
}

function toBatch(line: ProgressLine): Batch {
  const p = line as {
    batch_id: number;
    consumed: number;
    duration_ms: number;
    ingest_time: string;
    visible_time?: string;
    phases?: Record<string, number>;
    offsets: Batch['offsets'];
  };
  // A foreachBatch job's batch is in the lake when foreachBatch returns; the flat copy says when its trigger ended.
  const visibleMs = p.visible_time ? Date.parse(p.visible_time) : Date.parse(p.ingest_time) + p.duration_ms;
  return { batchId: p.batch_id, consumed: p.consumed, durationMs: p.duration_ms, visibleMs, phases: p.phases ?? {}, offsets: p.offsets };
}

/** The last line per batch id (a replayed batch writes its line again), in batch order. */
function batchesOf(progressFile: string): Batch[] {
  const byId = new Map<number, Batch>();
  for (const line of readProgress(progressFile)) {
    const batch = toBatch(line);
    byId.set(batch.batchId, batch);
  }
  return [...byId.values()].sort((a, b) => a.batchId - b.batchId);
}

/**
 * Every `1 / share`-th event made invalid, each in one of four ways the ingest job rejects (value
 * out of range, wrong type, required field missing, event time not UTC ISO-8601); the bare copies
 * land them like any other record.
 */
export function withInvalid(events: SmartCityEvent[], share: number): { events: SmartCityEvent[]; invalid: number } {
  const every = Math.max(1, Math.round(1 / share));
  let invalid = 0;
  const out = events.map((e, i) => {
    if (i % every !== every - 1) return e;
    const broken: Record<string, unknown> = { ...e };
    switch (invalid++ % 4) {
      case 0:
        broken.seq = -1;
        break;
      case 1:
        broken.deviceId = 42;
        break;
      case 2:
        delete broken.schemaVersion;
        break;
      default:
        broken.eventTime = String(e.eventTime).replace('T', ' ');
    }
    return broken as unknown as SmartCityEvent;
  });
  return { events: out, invalid };
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  return { records: sorted.length, p50Ms: percentile(sorted, 50), p95Ms: percentile(sorted, 95), p99Ms: percentile(sorted, 99) };
}

interface Plan {
  config: Config;
  o: Required<Omit<BenchStreamOptions, 'config' | 'print' | 'vehicles' | 'invalidShare'>>;
  backlog: SmartCityEvent[];
  paced: SmartCityEvent[];
  invalid: { backlog: number; paced: number };
  run: string;
  lake: string;
}

function jobSpec(plan: Plan, kind: JobKind, name: string, lakeRoot: string, topics: Record<Source, string>): SparkJobSpec {
  const { o } = plan;
  const common = { name, master: o.master, conf: o.conf };
  const args = { lakeRoot, topics, triggerSeconds: o.triggerSeconds, maxOffsetsPerTrigger: o.maxOffsetsPerTrigger };
  return kind === 'ingest' ? { ...common, job: 'stream_ingest', args } : { ...common, job: 'bare_copy', args: { ...args, layout: kind === 'copy' ? 'partitioned' : 'flat' } };
}

async function measure(plan: Plan, kind: JobKind, round: number): Promise<RunMeasure> {
  const { config, o } = plan;
  const topics = Object.fromEntries(SOURCES.map((s) => [s, `smartcity_bench_${plan.run}_${kind}_${round}_${s}`])) as Record<Source, string>;
  const name = `bench-${plan.run}-${kind}-${round}`;
  const paced = kind === 'flat' ? [] : plan.paced;
  // The invalid events must reach Kafka as they are: the producer's own check would refuse them.
  const producer = new EventProducer(config, { topics, validate: false });
  try {
    await producer.connect();
    for (const e of plan.backlog) await producer.send(e);
    await producer.flush();

    const started = Date.now();
    const handle = await startSparkJob(config, jobSpec(plan, kind, name, join(plan.lake, `${kind}-${round}`), topics));
    // No time limit: the job ending is what fails it.
    const consumedAtLeast = (count: number) =>
      until(
        `${LABELS[kind]} to consume ${count} records`,
        async () => {
          const status = await sparkJobStatus(config, name);
          if (status.state !== 'running') throw new Error(`${LABELS[kind]} ended (${status.state}, exit code ${status.exitCode}):\n${await sparkJobLogTail(config, name)}`);
          return batchesOf(handle.progressFile!).reduce((sum, b) => sum + b.consumed, 0) >= count ? true : undefined;
        },
        { timeoutMs: Infinity, everyMs: 250 },
      );
    await consumedAtLeast(plan.backlog.length);

    const topicNames = Object.values(topics);
    const pacedFrom = await highWatermarks(config, topicNames);
    const pacingStart = Date.now();
    for (let sent = 0; sent < paced.length; ) {
      const due = Math.min(paced.length, Math.floor(((Date.now() - pacingStart) / 1000) * o.pacedEventsPerSec));
      while (sent < due) await producer.send(paced[sent++]!);
      await sleep(10);
    }
    await producer.flush();
    const pacedTo = await highWatermarks(config, topicNames);
    await consumedAtLeast(plan.backlog.length + paced.length);
    await stopSparkJob(config, name, 30_000);

    const all = batchesOf(handle.progressFile!);
    if (kind === 'ingest') checkAccounting(plan, readProgress(handle.progressFile!), paced.length > 0);
    const measured = all.slice(o.warmupBatches, o.warmupBatches + o.measuredBatches);
    const short = measured.filter((b) => b.consumed < 0.9 * o.maxOffsetsPerTrigger);
    if (measured.length < o.measuredBatches || short.length > 0) {
      throw new Error(`${LABELS[kind]}: the backlog did not fill ${o.measuredBatches} batches after the warm-up (batches of ${all.map((b) => b.consumed).join(', ')})`);
    }
    const eventsPerSec = measured.reduce((sum, b) => sum + b.consumed, 0) / (measured.reduce((sum, b) => sum + b.durationMs, 0) / 1000);
    const phaseNames = [...new Set(measured.flatMap((b) => Object.keys(b.phases)))];
    const phases = Object.fromEntries(phaseNames.map((p) => [p, median(measured.map((b) => b.phases[p] ?? 0))]));

    const times = await recordTimes(config, pacedFrom, pacedTo);
    const freshnessMs: number[] = [];
    for (const b of all) {
      for (const [topic, partitions] of Object.entries(b.offsets)) {
        for (const [partition, { start, end }] of Object.entries(partitions)) {
          for (let offset = start; offset < end; offset++) {
            const at = times.get(`${topic}/${partition}/${offset}`);
            if (at !== undefined) freshnessMs.push(b.visibleMs - at);
          }
        }
      }
    }
    return { kind, round, startupSeconds: ((all[0]?.visibleMs ?? NaN) - started) / 1000, eventsPerSec, phases, freshnessMs };
  } finally {
    await stopSparkJob(config, name, 5_000);
    await producer.close();
    const admin = createKafka(config).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: Object.values(topics) }).finally(() => admin.disconnect());
  }
}

/** The ingest job must have rejected exactly the injected events and accounted for every record. */
function checkAccounting(plan: Plan, lines: ProgressLine[], withPaced: boolean): void {
  const last = new Map(lines.map((l) => [l.batch_id as number, l as { consumed: number; valid: Record<string, number>; quarantined: Record<string, number> }]));
  let quarantined = 0;
  for (const [id, l] of last) {
    const valid = Object.values(l.valid).reduce((a, b) => a + b, 0);
    const rejected = Object.values(l.quarantined).reduce((a, b) => a + b, 0);
    if (valid + rejected !== l.consumed) throw new Error(`stream_ingest batch ${id}: valid ${valid} + quarantined ${rejected} ≠ consumed ${l.consumed}`);
    quarantined += rejected;
  }
  const injected = plan.invalid.backlog + (withPaced ? plan.invalid.paced : 0);
  if (quarantined !== injected) throw new Error(`stream_ingest quarantined ${quarantined} records; the bench made ${injected} invalid`);
}

export async function benchStream(opts: BenchStreamOptions = {}): Promise<BenchStreamResult> {
  const config = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const o = {
    rounds: opts.rounds ?? 3,
    warmupBatches: opts.warmupBatches ?? 3,
    measuredBatches: opts.measuredBatches ?? 20,
    maxOffsetsPerTrigger: opts.maxOffsetsPerTrigger ?? 10_000,
    triggerSeconds: opts.triggerSeconds ?? 2,
    pacedEventsPerSec: opts.pacedEventsPerSec ?? 200,
    pacedSeconds: opts.pacedSeconds ?? 20,
    master: opts.master ?? 'local[2]',
    conf: opts.conf ?? { 'spark.ui.enabled': 'false' },
  };
  const invalidShare = opts.invalidShare ?? 0.015;
  // A vehicle's journey ends (about 3,800 events): enough vehicles for the backlog and the paced part.
  const vehicles = opts.vehicles ?? 100;
  const backlogCount = (o.warmupBatches + o.measuredBatches + 1) * o.maxOffsetsPerTrigger;
  const pacedCount = Math.round(o.pacedEventsPerSec * o.pacedSeconds);
  const generated: SmartCityEvent[] = [];
  for (const e of fleetEvents({ vehicles, seed: 7, start: new Date('2026-03-02T07:00:00Z') })) {
    if (generated.length >= backlogCount + pacedCount) break;
    generated.push(e);
  }
  if (generated.length < backlogCount + pacedCount) {
    throw new Error(`${vehicles} vehicles make ${generated.length} events, fewer than the ${backlogCount + pacedCount} the bench needs: use more vehicles`);
  }
  const backlog = withInvalid(generated.slice(0, backlogCount), invalidShare);
  const paced = withInvalid(generated.slice(backlogCount), invalidShare);
  const lake = mkdtempSync(join(tmpdir(), 'smartcity-bench-stream-'));
  const plan: Plan = { config, o, backlog: backlog.events, paced: paced.events, invalid: { backlog: backlog.invalid, paced: paced.invalid }, run: randomUUID().slice(0, 8), lake };
  const twoTriggersMs = 2 * o.triggerSeconds * 1000;
  const load = () => loadavg()[0]!.toFixed(1);
  const loadAtStart = load();
  print(
    `stream bench: ${o.master}, trigger ${o.triggerSeconds} s, ${o.maxOffsetsPerTrigger} records per batch; per run ${o.warmupBatches} warm-up + ${o.measuredBatches} measured batches ` +
      `from a backlog of ${backlogCount} events (${vehicles} simulated vehicles, ${((100 * backlog.invalid) / backlogCount).toFixed(1)} % invalid), ` +
      `then ${o.pacedEventsPerSec} events/s for ${o.pacedSeconds} s; ${o.rounds} rounds; load average ${loadAtStart}`,
  );
  const runs: RunMeasure[] = [];
  try {
    for (let round = 1; round <= o.rounds; round++) {
      const order: JobKind[] = round % 2 === 1 ? ['ingest', 'copy', 'flat'] : ['copy', 'ingest', 'flat'];
      for (const kind of order) {
        const m = await measure(plan, kind, round);
        runs.push(m);
        print(runLine(m));
      }
    }
  } finally {
    rmSync(lake, { recursive: true, force: true });
  }
  const rate = (kind: JobKind, round: number) => runs.find((r) => r.kind === kind && r.round === round)!.eventsPerSec;
  const rounds = Array.from({ length: o.rounds }, (_, i) => i + 1);
  const ratios = rounds.map((r) => rate('ingest', r) / rate('copy', r));
  const floorRatios = rounds.map((r) => rate('ingest', r) / rate('flat', r));
  const ratio = median(ratios);
  const of = (kind: JobKind) => runs.filter((r) => r.kind === kind);
  const freshness = { ingest: percentiles(of('ingest').flatMap((r) => r.freshnessMs)), copy: percentiles(of('copy').flatMap((r) => r.freshnessMs)) };
  const medianRate = (kind: JobKind) => Math.round(median(of(kind).map((r) => r.eventsPerSec))).toLocaleString('en-US');
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
  print(`  ratio ingest / bare copy per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}; ingest / flat copy: ${floorRatios.map((r) => r.toFixed(2)).join(', ')}`);
  for (const kind of ['ingest', 'copy'] as const) {
    const f = freshness[kind];
    print(
      `  freshness ${LABELS[kind].padEnd(13)}: p50 ${seconds(f.p50Ms)}, p95 ${seconds(f.p95Ms)}, p99 ${seconds(f.p99Ms)} (${f.records} records at ${o.pacedEventsPerSec} events/s); ` +
        `two triggers ${seconds(twoTriggersMs)}: ${f.p95Ms <= twoTriggersMs ? 'within' : 'over'}`,
    );
  }
  print(
    `stream: ratio ${ratio.toFixed(2)} (range ${range(ratios)} over ${o.rounds} alternated rounds; stream_ingest ${medianRate('ingest')} vs bare copy ${medianRate('copy')} events/s, ` +
      `flat copy ${medianRate('flat')} (ingest / flat ${median(floorRatios).toFixed(2)}); freshness p95 ${seconds(freshness.ingest.p95Ms)} vs two triggers ${seconds(twoTriggersMs)}; ` +
      `load average ${loadAtStart} → ${load()})`,
  );
  return { runs, ratios, ratio, floorRatios, freshness, twoTriggersMs };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function runLine(m: RunMeasure): string {
  const phases = Object.entries(m.phases)
    .map(([p, ms]) => `${p} ${Math.round(ms)}`)
    .join(' · ');
  const fresh = m.freshnessMs.length ? `; freshness p95 ${seconds(percentiles(m.freshnessMs).p95Ms)}` : '';
  return (
    `  round ${m.round} ${LABELS[m.kind].padEnd(13)}: ${Math.round(m.eventsPerSec).toLocaleString('en-US')} events/s; ` +
    `median ms per batch: ${phases}${fresh}; first batch ${m.startupSeconds.toFixed(1)} s after start (load ${loadavg()[0]!.toFixed(1)})`
  );
}
