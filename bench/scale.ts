// How large a fleet the local target sustains at real time. The pipeline runs as `npm start` runs
// it, in the same data folder: the stack, a worker process, the controller on 1-minute windows
// (10 s of allowed lateness) with its Spark ingest job and a batch run per window, and a paced
// fleetSimulation at speedup 1, grown step by step (1,000 → 2,000 → 5,000 → 10,000 vehicles by
// default). Each step's fleet joins its run ten minutes in, every vehicle on the road, so its rate
// is steady from the start: the bench computes where each slice then stands, as continue-as-new
// would carry it.
//
// Per step, after a warm-up: events/s produced (the topics' high watermarks) against what the
// generator makes, events/s ingested (the ingest job's progress file), consumer lag after each
// micro-batch and its trend, freshness p95 (per record: when its micro-batch was visible in the lake
// minus when the record reached Kafka, from high watermarks sampled every 2 s), the delay from a
// window's close to its load, and CPU of the worker, Spark, Kafka and the machine (/proc). A step
// is sustained when the fleet kept pace, freshness p95 ≤ 2 triggers and the lag does not grow; the
// bench stops at the first step that is not and says what saturated first.
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import type { Admin } from 'kafkajs';
import { LocalPipeline } from '../cli/local-run';
import { loadConfig, type Config } from '../config';
import { createKafka } from '../kafka/client';
import { DEPARTURE_SPREAD_S, sliceEvents } from '../producers/fleet';
import { TOPICS } from '../schemas';
import { readProgress, type IngestProgress } from '../spark/runner';
import { runningProcess } from '../stack/processes';
import {
  DEFAULT_STREAMING_JOB,
  fleetSimulation,
  fleetStatusQuery,
  PIPELINE_WORKFLOW_ID,
  pipelineStatusQuery,
  streamingSupervisorInputSchema,
  type FleetSimulationInput,
  type WindowRecord,
} from '../workflows';
import { ZERO_COUNTS } from '../workflows/counts';
import { planSlices } from '../workflows/slices';
import { CpuMeter, type CpuUse } from './proc';
import { until } from '../test/helpers/until';

export interface BenchScaleOptions {
  config?: Config;
  /** Fleet sizes, smallest first (default 1,000, 2,000, 5,000, 10,000). */
  steps?: number[];
  /** Longest wait, once the fleet produces, for the lag to settle before measuring (default 180). */
  warmupSeconds?: number;
  /** Measured time per step (default 180: three 1-minute windows). */
  measureSeconds?: number;
  print?: (line: string) => void;
}

const PIPELINE = { windowMinutes: 1, allowedLatenessSeconds: 10 };
const TRIGGER_MS = streamingSupervisorInputSchema.parse({}).triggerSeconds * 1000;
const SAMPLE_MS = 2_000;
/** The lag grows when it gains more than this share of the production rate (5%: 3 s of events a minute)… */
const GROWING_LAG_SHARE = 0.05;
/** …or when the ingest job completes fewer micro-batches than this in a step (it is not keeping its trigger). */
const MIN_BATCHES = 5;
/** The fleet kept pace when Kafka received at least this share of what the generator makes. */
const PACE_SHARE = 0.95;

interface HwSample {
  at: number;
  /** topic/partition → high watermark */
  hw: Map<string, number>;
}

interface Batch {
  visibleMs: number;
  consumed: number;
  offsets: IngestProgress['offsets'];
}

export interface StepResult {
  vehicles: number;
  expectedPerSec: number;
  producedPerSec: number;
  ingestedPerSec: number;
  /** After each micro-batch of the step; growing also when there were too few batches to tell. */
  lag: { batches: number; first: number; last: number; slopePerSec: number; growing: boolean };
  freshness: { records: number; p50Ms: number; p95Ms: number };
  windows: { closed: number; loaded: number; medianDelayMs: number; maxDelayMs: number };
  cpu: CpuUse;
  sustained: boolean;
  /** Why not sustained, and what saturated first. */
  verdict: string;
}

/** Weighted percentile of (value, weight) pairs. */
function weightedPercentile(pairs: [number, number][], p: number): number {
  const sorted = pairs.filter(([, w]) => w > 0).sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((n, [, w]) => n + w, 0);
  let seen = 0;
  for (const [value, weight] of sorted) {
    seen += weight;
    if (seen >= (p / 100) * total) return value;
  }
  return NaN;
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx;
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const secondsText = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const thousands = (n: number) => Math.round(n).toLocaleString('en-GB');

async function highWatermarks(admin: Admin): Promise<HwSample> {
  const hw = new Map<string, number>();
  for (const topic of Object.values(TOPICS)) for (const p of await admin.fetchTopicOffsets(topic)) hw.set(`${topic}/${p.partition}`, Number(p.high));
  return { at: Date.now(), hw };
}

/**
 * A fleet of `vehicles` that joins its run ten minutes in (every vehicle on the road) at `joinMs`,
 * paced at real time, and the events per second the generator makes for it then.
 */
async function joinedFleet(vehicles: number, seed: number, joinMs: number): Promise<{ input: FleetSimulationInput & { seed: number; start: string }; expectedPerSec: number }> {
  const startMs = joinMs - DEPARTURE_SPREAD_S * 1000;
  const options = { vehicles, seed, start: new Date(startMs) };
  const rateWindowMs = 60_000;
  let expected = 0;
  const slices = [];
  for (const slice of planSlices(vehicles)) {
    let nextIndex = 0;
    for (const event of sliceEvents(options, slice.firstVehicle, slice.vehicles)) {
      const at = Date.parse(event.eventTime);
      if (at >= joinMs + rateWindowMs) break;
      if (at < joinMs) nextIndex++;
      else expected++;
      if ((nextIndex + expected) % 20_000 === 0) await yieldToEventLoop();
    }
    slices.push({ ...slice, chunks: 0, nextIndex, arrived: false, producedUntilMs: joinMs, sent: ZERO_COUNTS });
  }
  return {
    input: { vehicles, seed, start: new Date(startMs).toISOString(), speedup: 1, state: { slices, paused: false, wallAnchorMs: startMs, continuedAsNewCount: 0 } },
    expectedPerSec: expected / (rateWindowMs / 1000),
  };
}

/** The ingest job's micro-batches, from its progress file (<lake>/_progress/<job>.jsonl). */
function batches(config: Config): Batch[] {
  return readProgress(join(config.lakeRoot, '_progress', `${DEFAULT_STREAMING_JOB}.jsonl`)).map((line) => {
    const p = line as IngestProgress & { visible_time?: string };
    return { visibleMs: p.visible_time ? Date.parse(p.visible_time) : Date.parse(p.ingest_time) + p.duration_ms, consumed: p.consumed, offsets: p.offsets };
  });
}

/** Per topic/partition, the end offset of everything ingested by `at`. */
function ingestedBy(all: Batch[], at: number): Map<string, number> {
  const ends = new Map<string, number>();
  for (const b of all) {
    if (b.visibleMs > at) continue;
    for (const [topic, partitions] of Object.entries(b.offsets)) {
      for (const [partition, { end }] of Object.entries(partitions)) ends.set(`${topic}/${partition}`, Math.max(ends.get(`${topic}/${partition}`) ?? 0, end));
    }
  }
  return ends;
}

/**
 * Freshness of the records that reached Kafka between the first and the last sample: a record
 * arrived between the two samples whose high watermarks bracket its offset (taken as their
 * midpoint), and is fresh when the first micro-batch holding it is visible. Records not ingested by
 * `now` count with their age now (a lower bound), so a job that falls behind shows it.
 */
function freshness(samples: HwSample[], all: Batch[], now: number): { records: number; p50Ms: number; p95Ms: number } {
  const pairs: [number, number][] = [];
  for (const [tp] of samples[0]!.hw) {
    const [topic, partition] = [tp.slice(0, tp.lastIndexOf('/')), tp.slice(tp.lastIndexOf('/') + 1)];
    const ranges = all
      .map((b) => ({ visibleMs: b.visibleMs, range: b.offsets[topic]?.[partition] }))
      .filter((r): r is { visibleMs: number; range: { start: number; end: number } } => r.range !== undefined)
      .sort((a, b) => a.visibleMs - b.visibleMs);
    for (let k = 1; k < samples.length; k++) {
      const from = samples[k - 1]!.hw.get(tp) ?? 0;
      const to = samples[k]!.hw.get(tp) ?? from;
      if (to <= from) continue;
      const arrivedMs = (samples[k - 1]!.at + samples[k]!.at) / 2;
      let left = to - from;
      for (const { visibleMs, range } of ranges) {
        const overlap = Math.min(to, range.end) - Math.max(from, range.start);
        if (overlap <= 0) continue;
        pairs.push([visibleMs - arrivedMs, overlap]);
        left -= overlap;
      }
      if (left > 0) pairs.push([now - arrivedMs, left]);
    }
  }
  return { records: pairs.reduce((n, [, w]) => n + w, 0), p50Ms: weightedPercentile(pairs, 50), p95Ms: weightedPercentile(pairs, 95) };
}

/**
 * The windows that closed (end + lateness) within [from, to): how long after closing each was
 * loaded; one not loaded yet counts with its wait so far.
 */
function windowDelays(records: WindowRecord[], from: number, to: number, now: number): StepResult['windows'] {
  const sizeMs = PIPELINE.windowMinutes * 60_000;
  const lateness = PIPELINE.allowedLatenessSeconds * 1000;
  const loadedAt = new Map(records.filter((w) => w.loadedAt).map((w) => [Date.parse(w.window.from), Date.parse(w.loadedAt!)]));
  const delays: number[] = [];
  let loaded = 0;
  for (let end = Math.ceil((from - lateness) / sizeMs) * sizeMs; end + lateness < to; end += sizeMs) {
    const at = loadedAt.get(end - sizeMs);
    if (at !== undefined) loaded++;
    delays.push((at ?? now) - (end + lateness));
  }
  delays.sort((a, b) => a - b);
  return {
    closed: delays.length,
    loaded,
    medianDelayMs: delays[Math.floor(delays.length / 2)] ?? NaN,
    maxDelayMs: delays.at(-1) ?? NaN,
  };
}

function judge(r: Omit<StepResult, 'sustained' | 'verdict'>): { sustained: boolean; verdict: string } {
  const problems: string[] = [];
  if (r.producedPerSec < PACE_SHARE * r.expectedPerSec) problems.push(`the fleet fell behind real time (Kafka got ${thousands(r.producedPerSec)} of ${thousands(r.expectedPerSec)} events/s)`);
  if (r.lag.growing) {
    problems.push(
      r.lag.batches < MIN_BATCHES
        ? `the ingest job completed ${r.lag.batches} micro-batch(es) in the step`
        : `the consumer lag grows by ${thousands(r.lag.slopePerSec)} events/s`,
    );
  }
  if (!(r.freshness.p95Ms <= 2 * TRIGGER_MS)) problems.push(`freshness p95 ${secondsText(r.freshness.p95Ms)} is over 2 triggers (${secondsText(2 * TRIGGER_MS)})`);
  // Not a criterion of the issue, but what an operator reads next: are the windows keeping up too?
  const windowsNote =
    r.windows.maxDelayMs > 2 * PIPELINE.windowMinutes * 60_000 ? ` (batch runs fall behind: a window waited ${secondsText(r.windows.maxDelayMs)} for its load)` : '';
  if (problems.length === 0) return { sustained: true, verdict: `sustained${windowsNote}` };
  // What ran out first: the worker is one Node thread (the fleet's generator and producer); the
  // ingest job and the batch runs' Spark share the machine's cores.
  const { cores, machine, cpus } = r.cpu;
  const saturated =
    r.producedPerSec < PACE_SHARE * r.expectedPerSec && cores.worker >= 0.85
      ? `the worker's one thread (${cores.worker.toFixed(2)} cores: generating and producing the fleet)`
      : machine >= 0.9
        ? `the machine's ${cpus} cores (${Math.round(machine * 100)}% busy; Spark ${cores.spark.toFixed(2)}, worker ${cores.worker.toFixed(2)}, Kafka ${cores.kafka.toFixed(2)} cores)`
        : r.ingestedPerSec < 0.98 * r.producedPerSec || r.lag.growing
          ? `the Spark ingest job (${cores.spark.toFixed(2)} cores, machine ${Math.round(machine * 100)}% busy)`
          : `micro-batch latency (Spark ${cores.spark.toFixed(2)} cores)`;
  return { sustained: false, verdict: `${problems.join('; ')}; saturated first: ${saturated}${windowsNote}` };
}

function report(r: StepResult, print: (line: string) => void): void {
  const { cores, machine, cpus, loadAverage } = r.cpu;
  print(`  produced ${thousands(r.producedPerSec)} events/s (the generator makes ${thousands(r.expectedPerSec)}) · ingested ${thousands(r.ingestedPerSec)} events/s`);
  print(
    `  consumer lag after each of ${r.lag.batches} micro-batches ${thousands(r.lag.first)} → ${thousands(r.lag.last)} events ` +
      `(trend ${r.lag.slopePerSec >= 0 ? '+' : ''}${thousands(r.lag.slopePerSec)} events/s: ${r.lag.growing ? 'growing' : 'flat'})`,
  );
  print(`  freshness p50 ${secondsText(r.freshness.p50Ms)}, p95 ${secondsText(r.freshness.p95Ms)} (goal ≤ ${secondsText(2 * TRIGGER_MS)}) over ${thousands(r.freshness.records)} records`);
  print(
    `  window close → load: ${r.windows.closed} window(s) closed, ${r.windows.loaded} loaded; median ${secondsText(r.windows.medianDelayMs)}, max ${secondsText(r.windows.maxDelayMs)}`,
  );
  print(
    `  CPU in cores: worker ${cores.worker.toFixed(2)} · Spark ${cores.spark.toFixed(2)} · Kafka ${cores.kafka.toFixed(2)} · Temporal ${cores.temporal.toFixed(2)} · machine ${Math.round(machine * 100)}% of ${cpus} · load average ${loadAverage.toFixed(1)}`,
  );
  print(`  → ${r.verdict}`);
}

export async function benchScale(opts: BenchScaleOptions = {}): Promise<StepResult[]> {
  const config = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const steps = opts.steps ?? [1_000, 2_000, 5_000, 10_000];
  const warmupMs = (opts.warmupSeconds ?? 180) * 1000;
  const measureMs = (opts.measureSeconds ?? 180) * 1000;
  const pipeline = new LocalPipeline(config, print);
  const admin = createKafka(config).admin();
  const results: StepResult[] = [];
  let fleet: WorkflowHandle<typeof fleetSimulation> | undefined;
  try {
    await pipeline.stackUp();
    const controller = pipeline.client.workflow.getHandle(PIPELINE_WORKFLOW_ID);
    if ((await controller.describe().catch(() => undefined))?.status.name === 'RUNNING') {
      throw new Error(`${PIPELINE_WORKFLOW_ID} is running: the bench runs the pipeline itself; stop yours first (smartcity pipeline stop)`);
    }
    const worker = await pipeline.workerUp();
    await admin.connect();
    await pipeline.startController(PIPELINE, { replace: false });
    print(`scale bench: the local pipeline (${config.spark.master}, trigger ${TRIGGER_MS / 1000} s, 1-minute windows), a fleet at real time of ${steps.join(' → ')} vehicles`);
    print(`waiting for the ingest job to catch up with the topics…`);
    await settle(admin, config, warmupMs + 5 * 60_000, 0);

    for (const [i, vehicles] of steps.entries()) {
      print(`\nstep ${i + 1}: ${thousands(vehicles)} vehicles`);
      const joinMs = Date.now() + 30_000;
      const { input, expectedPerSec } = await joinedFleet(vehicles, Date.now() % 1_000_000, joinMs);
      if (fleet) await fleet.cancel();
      fleet = await pipeline.startFleet(input);
      const producing = fleet;
      await until('every slice of the fleet to produce', async () => {
        const s = await producing.query(fleetStatusQuery).catch(() => undefined);
        return s?.parts.every((p) => p.acked.vehicle > 0) ? true : undefined;
      }, { timeoutMs: 10 * 60_000, everyMs: 2_000 });
      await settle(admin, config, warmupMs, expectedPerSec);

      const cpu = new CpuMeter(() => ({ worker: worker.pid, kafka: runningProcess(config.dataDir, 'kafka')?.pid, temporal: runningProcess(config.dataDir, 'temporal')?.pid }));
      const samples: HwSample[] = [];
      const from = Date.now();
      while (Date.now() - from < measureMs) {
        samples.push(await highWatermarks(admin));
        cpu.sample();
        await sleep(SAMPLE_MS);
      }
      samples.push(await highWatermarks(admin));
      const cpuUse = cpu.use();
      const to = samples.at(-1)!.at;
      // The last records need a trigger or two to be visible, the last window its batch run.
      await sleep(2 * TRIGGER_MS);
      const now = Date.now();
      const all = batches(config);
      const inStep = all.filter((b) => b.visibleMs >= from && b.visibleMs < to);
      const lagPoints = inStep.map((b): [number, number] => [b.visibleMs / 1000, sum(hwAt(samples, b.visibleMs)) - sum(ingestedBy(all, b.visibleMs))]);
      const lagSlope = slope(lagPoints);
      const producedPerSec = (sum(samples.at(-1)!.hw) - sum(samples[0]!.hw)) / ((to - from) / 1000);
      const status = await pipeline.client.workflow.getHandle(PIPELINE_WORKFLOW_ID).query(pipelineStatusQuery);
      const measured = {
        vehicles,
        expectedPerSec,
        producedPerSec,
        ingestedPerSec: inStep.reduce((n, b) => n + b.consumed, 0) / ((to - from) / 1000),
        lag: {
          batches: inStep.length,
          first: lagPoints[0]?.[1] ?? NaN,
          last: lagPoints.at(-1)?.[1] ?? NaN,
          slopePerSec: lagSlope,
          growing: inStep.length < MIN_BATCHES || lagSlope > GROWING_LAG_SHARE * producedPerSec,
        },
        freshness: freshness(samples, all, now),
        windows: windowDelays(status.windows, from, to, now),
        cpu: cpuUse,
      };
      const result = { ...measured, ...judge(measured) };
      results.push(result);
      report(result, print);
      if (!result.sustained) break;
    }
  } finally {
    await admin.disconnect();
    await pipeline.shutdown();
  }

  const sustained = results.filter((r) => r.sustained).at(-1);
  const failed = results.find((r) => !r.sustained);
  print('\nvehicles   expected/s  produced/s  ingested/s  lag trend/s  fresh p95  worker  Spark  machine  verdict');
  for (const r of results) {
    print(
      `${thousands(r.vehicles).padStart(8)}  ${thousands(r.expectedPerSec).padStart(10)}  ${thousands(r.producedPerSec).padStart(10)}  ${thousands(r.ingestedPerSec).padStart(10)}  ` +
        `${thousands(r.lag.slopePerSec).padStart(11)}  ${secondsText(r.freshness.p95Ms).padStart(9)}  ${r.cpu.cores.worker.toFixed(2).padStart(6)}  ${r.cpu.cores.spark.toFixed(2).padStart(5)}  ` +
        `${`${Math.round(r.cpu.machine * 100)}%`.padStart(7)}  ${r.sustained ? 'sustained' : 'fell behind'}`,
    );
  }
  const load = results.at(-1)?.cpu.loadAverage;
  const why = failed ? `at ${thousands(failed.vehicles)}: ${failed.verdict}` : `every step up to ${thousands(steps.at(-1)!)} held`;
  print(
    `scale: ${sustained ? thousands(sustained.vehicles) : 0} vehicles sustained (${sustained ? `${thousands(sustained.producedPerSec)} events/s, freshness p95 ${secondsText(sustained.freshness.p95Ms)}; ` : ''}${why}; load average ${load?.toFixed(1) ?? '?'})`,
  );
  return results;
}

/** High watermarks at `at`, from the samples around it (the later one: what had arrived by then, at most). */
function hwAt(samples: HwSample[], at: number): Map<string, number> {
  return (samples.find((s) => s.at >= at) ?? samples.at(-1)!).hw;
}

/**
 * Waits until the ingest job keeps up: the lag after its last micro-batch is under what two
 * triggers of production add (or `timeoutMs` passed: the step then measures a job still catching up).
 */
async function settle(admin: Admin, config: Config, timeoutMs: number, perSec: number): Promise<void> {
  const allowed = Math.max(5_000, 2 * (TRIGGER_MS / 1000) * perSec);
  const started = Date.now();
  await until(
    'the ingest job to keep up',
    async () => {
      const all = batches(config);
      const last = all.at(-1);
      if (!last || last.visibleMs < started) return undefined;
      const lag = sum((await highWatermarks(admin)).hw) - sum(ingestedBy(all, Date.now()));
      return lag <= allowed ? true : undefined;
    },
    { timeoutMs, everyMs: TRIGGER_MS },
  ).catch(() => undefined);
}
