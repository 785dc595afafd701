// Orchestration overhead: one batch run (crawl raw → count raw → curate → crawl curated → load →
// quality) through Temporal — worker, workflow, activity tasks — against the same activities
// called directly in sequence, in the same run on the same lake window. Runs alternate so neither
// side gets all the warm caches.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivities } from '../activities';
import type { TimeWindow } from '../activities/types';
import { loadConfig, type Config } from '../config';
import { EventProducer } from '../producers/event-producer';
import { fleetEvents } from '../producers/fleet';
import { SOURCES, type Source } from '../schemas';
import { runSparkJob } from '../spark/runner';
import { connectClient } from '../temporal/connection';
import { startWorker } from '../workers/worker';
import { batchRun } from '../workflows';

export interface BenchOrchestrationOptions {
  config?: Config;
  /** Direct / Temporal pairs to run (default 2). */
  rounds?: number;
  print?: (line: string) => void;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchOrchestration(opts: BenchOrchestrationOptions = {}) {
  const base = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const rounds = opts.rounds ?? 2;
  const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-bench-orchestration-'));
  // Activities of this bench work on a lake, catalog and warehouse of their own.
  const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake'), temporal: { ...base.temporal, taskQueue: `bench-${randomUUID()}` } };
  const run = randomUUID().slice(0, 8);
  const topics = Object.fromEntries(SOURCES.map((s) => [s, `bench_${run}_${s}`])) as Record<Source, string>;
  const start = new Date('2026-02-02T08:00:00Z');
  const window: TimeWindow = { from: start.toISOString(), to: new Date(start.getTime() + 30 * 60_000).toISOString() };
  try {
    const producer = new EventProducer(config, { topics, validate: false });
    await producer.connect();
    let events = 0;
    for (const event of fleetEvents({ vehicles: 6, seed: 11, start })) {
      if (Date.parse(event.eventTime) >= Date.parse(window.to)) continue;
      await producer.send(event);
      events++;
    }
    await producer.close();
    const ingest = await runSparkJob(config, { name: `bench-ingest-${run}`, job: 'stream_ingest', args: { availableNow: true, topics } });
    if (ingest.state !== 'succeeded') throw new Error(`ingest failed:\n${ingest.logTail}`);
    print(`orchestration bench: one batch run over ${events} events (30-minute window), ${rounds} rounds each way, alternating`);

    const set = createActivities(config);
    const { activities } = set;
    const direct = async () => {
      const t0 = performance.now();
      await activities.crawlLayer({ layer: 'raw', window });
      await activities.countRawWindows({ windows: [window] });
      await activities.curateWindow({ window });
      await activities.crawlLayer({ layer: 'curated', window });
      await activities.loadWarehouse({ window });
      const quality = await activities.checkQuality({ window });
      if (!quality.passed) throw new Error('quality checks failed in the direct run');
      return performance.now() - t0;
    };

    const worker = await startWorker(config);
    const { client, close: closeClient } = await connectClient(config);
    let historyEvents = 0;
    const viaTemporal = async () => {
      const t0 = performance.now();
      const handle = await client.workflow.start(batchRun, { taskQueue: config.temporal.taskQueue, workflowId: `bench-batch-${randomUUID()}`, args: [{ window }] });
      await handle.result();
      const elapsed = performance.now() - t0;
      historyEvents = (await handle.fetchHistory()).events?.length ?? 0;
      return elapsed;
    };

    const directMs: number[] = [];
    const temporalMs: number[] = [];
    try {
      for (let i = 0; i < rounds; i++) {
        directMs.push(await direct());
        temporalMs.push(await viaTemporal());
      }
    } finally {
      worker.worker.shutdown();
      await worker.done;
      await closeClient();
      await set.close();
    }
    const ratio = median(temporalMs) / median(directMs);
    const fmt = (xs: number[]) => xs.map((x) => `${(x / 1000).toFixed(1)} s`).join(', ');
    print(`  activities called directly : median ${(median(directMs) / 1000).toFixed(1)} s (${fmt(directMs)})`);
    print(`  batchRun through Temporal  : median ${(median(temporalMs) / 1000).toFixed(1)} s (${fmt(temporalMs)})`);
    print(`  ratio Temporal / direct    : ${ratio.toFixed(2)} (aim ≤ 1.15)`);
    print(`  history events per batch run: ${historyEvents}`);
    return { directMs, temporalMs, ratio, historyEvents };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
