// Backfill throughput: six hours of history at 5-minute windows (72 windows) backfilled through
// the controller — from `requestBackfill` until every window is loaded and checked — against one
// direct spark-submit of curate over the same range (the reference; the chunk's curate runs
// on the Spark Connect server by default, so the backfill can beat it). The
// history is a small fleet produced as fast as possible with a past start and landed by the real
// ingest job. Runs alternate (direct, backfill, …); the backfills after the first are forced.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TimeWindow } from '../activities/types';
import { loadConfig, type Config } from '../config';
import { runSparkJob } from '../spark/runner';
import { connectClient } from '../temporal/connection';
import { startWorker } from '../workers/worker';
import { backfillChunk, pipelineStatusQuery, requestBackfillUpdate, smartCityPipeline, type BackfillChunkResult, type PipelineStatus } from '../workflows';
import { smartCityPipelineInputSchema } from '../workflows/pipeline';
import { ingestFleetHistory } from './history';
import { until } from '../test/helpers/until';

export interface BenchBackfillOptions {
  config?: Config;
  /** Direct / backfill pairs (default 3). */
  rounds?: number;
  hours?: number;
  print?: (line: string) => void;
}

const WINDOW_MINUTES = 5;
/** Window runs of a chunk at a time: the controller's default. */
const LOAD_LANES = smartCityPipelineInputSchema.parse({}).chunkLoadConcurrency;
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => {
  const s = sorted(xs);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const spread = (xs: number[]) => `median ${seconds(median(xs))}, range ${seconds(sorted(xs)[0]!)}–${seconds(sorted(xs)[xs.length - 1]!)}`;


export async function benchBackfill(opts: BenchBackfillOptions = {}) {
  const base = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const rounds = opts.rounds ?? 3;
  const hours = opts.hours ?? 6;
  const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-bench-backfill-'));
  const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake'), temporal: { ...base.temporal, taskQueue: `bench-${randomUUID()}` } };
  const run = randomUUID().slice(0, 8);
  const start = new Date('2026-02-03T06:00:00Z');
  const range: TimeWindow = { from: start.toISOString(), to: new Date(start.getTime() + hours * 3_600_000).toISOString() };
  const windows = (hours * 60) / WINDOW_MINUTES;
  try {
    const history = await ingestFleetHistory(config, { run, vehicles: 2, seed: 12, start, until: new Date(range.to) });
    print(`backfill bench: ${hours} h of history (${windows} windows of ${WINDOW_MINUTES} min, ${history.events.length} events of 2 vehicles), ${rounds} rounds each way, alternating`);

    const worker = await startWorker(config);
    const { client, close } = await connectClient(config);
    const directMs: number[] = [];
    const connectMs: number[] = [];
    const backfillMs: number[] = [];
    const stages: BackfillChunkResult['timings'][] = [];
    try {
      const pipeline = await client.workflow.start(smartCityPipeline, {
        taskQueue: config.temporal.taskQueue,
        workflowId: `bench-pipeline-${run}`,
        // No live windows before tomorrow: only the backfill runs.
        args: [{ windowMinutes: WINDOW_MINUTES, streaming: false, startAt: new Date(Date.now() + 86_400_000).toISOString() }],
      });
      // The reference: one spark-submit of curate. Beside it, for the record, the same run as a client
      // of the Spark Connect server, which is how the backfill's chunk runs it by default.
      const direct = async (i: number, connect = false) => {
        const name = `bench-curate-${run}-${i}${connect ? '-connect' : ''}`;
        const result = await runSparkJob(config, { name, job: 'curate', master: config.spark.master, connect, args: { from: range.from, to: range.to } });
        if (result.state !== 'succeeded') throw new Error(`the direct curate failed:\n${result.logTail}`);
        return result.durationMs;
      };
      const backfill = async (force: boolean) => {
        const t0 = performance.now();
        const outcome = await pipeline.executeUpdate(requestBackfillUpdate, { args: [{ ...range, force }] });
        if (outcome.accepted.length !== windows) throw new Error(`the backfill accepted ${outcome.accepted.length} of ${windows} windows: ${JSON.stringify(outcome.skipped[0])}`);
        const done = (s: PipelineStatus) => s.running.length === 0 && s.queued === 0 && s.loaded.some((r) => r.from <= range.from && r.to >= range.to);
        // Polled every 250 ms: the quantity measured is about half a minute, a coarser poll would show in it.
        const status = await until('every window loaded and checked', async () => {
          const s = await pipeline.query(pipelineStatusQuery);
          const failed = s.windows.find((w) => w.status === 'failed');
          if (failed) throw new Error(`window ${failed.window.from} failed: ${failed.lastError?.message}`);
          return done(s) ? s : undefined;
        }, { timeoutMs: 30 * 60_000, everyMs: 250 });
        const elapsed = performance.now() - t0;
        const chunk = status.windows.find((w) => w.chunk !== undefined)?.chunk;
        if (chunk) stages.push((await client.workflow.getHandle<typeof backfillChunk>(chunk).result()).timings);
        return elapsed;
      };
      for (let i = 0; i < rounds; i++) {
        directMs.push(await direct(i));
        if (config.spark.connect) connectMs.push(await direct(i, true));
        backfillMs.push(await backfill(i > 0));
      }
      await pipeline.cancel();
    } finally {
      worker.worker.shutdown();
      await worker.done;
      await close();
    }
    const ratio = median(backfillMs) / median(directMs);
    const stageNames = ['crawlRaw', 'countRaw', 'curate', 'windows'] as const;
    print(`  one spark-submit of curate over the range : ${spread(directMs)} (${directMs.map(seconds).join(', ')})`);
    if (connectMs.length) print(`  the same, a Spark Connect client (no ref.) : ${spread(connectMs)} (${connectMs.map(seconds).join(', ')})`);
    print(`  requestBackfill → all windows checked     : ${spread(backfillMs)} (${backfillMs.map(seconds).join(', ')})`);
    print(`  chunk stages, median: ${stageNames.map((s) => `${s} ${seconds(median(stages.map((t) => t[s] ?? 0)))}`).join(' · ')}`);
    print(`  per window (load + checks in its own batchRun, ${LOAD_LANES} at a time): ${Math.round(median(stages.map((t) => (t.windows ?? 0) / windows)))} ms of the windows stage`);
    const load = loadavg().map((l) => l.toFixed(2)).join(' ');
    print(`backfill: ratio ${ratio.toFixed(2)} (backfill ${seconds(median(backfillMs))} / direct curate ${seconds(median(directMs))}, medians of ${rounds}; ${windows} windows; goal ≤ 1.5; load average ${load})`);
    return { directMs, connectMs, backfillMs, ratio, stages };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
