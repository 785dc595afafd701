// Duplicates end to end, with the real components: events the producer sends twice (as a journey
// chunk retried after a lost acknowledgement does: a new producer, so Kafka's idempotence cannot
// drop the copies) go through the Spark ingest job into raw, the curate job (the curateWindow
// activity) and the DuckDB warehouse load, and come out once. Raw must hold both copies: the
// dedupe is curate's, not an accident of ingest. Needs the test stack's broker; lake, warehouse and
// topics are this run's own.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { loadConfig, type Config } from '../../config';
import { sparkActivities } from '../../activities/spark';
import type { CurateResult, TimeWindow } from '../../activities/types';
import { warehouseActivities, warehousePath } from '../../activities/warehouse';
import { createKafka } from '../../kafka/client';
import { EventProducer } from '../../producers/event-producer';
import { fleetEvents } from '../../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../../schemas';
import { runSparkJob } from '../../spark/runner';
import { lakeIds, warehouseContents, type IdCounts } from '../helpers/lake';
import { killAll } from '../helpers/processes';

const run = randomUUID().slice(0, 8);
const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-duplicates-'));
const base = loadConfig();
const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake') };
const topics = Object.fromEntries(SOURCES.map((s) => [s, `it_${run}_dup_${s}`])) as Record<Source, string>;
// Spark's UI would take port 4040 from whatever else runs; two cores want few shuffle partitions.
const conf = { 'spark.ui.enabled': 'false', 'spark.sql.shuffle.partitions': '4' };

const START = Date.parse('2026-04-07T06:00:00Z');
const window = { from: new Date(START).toISOString(), to: new Date(START + 30 * 60_000).toISOString() };
const events: SmartCityEvent[] = [];
for (const event of fleetEvents({ vehicles: 2, seed: 611, start: new Date(START) })) {
  if (Date.parse(event.eventTime) >= START + 20 * 60_000) break;
  events.push(event);
}
// The retried chunk resends from here on: a third of the events once, the rest twice.
const resendFrom = Math.floor(events.length / 3);
const copiesOf = (index: number) => (index < resendFrom ? 1 : 2);

async function produce(batch: SmartCityEvent[]): Promise<void> {
  const producer = new EventProducer(config, { topics });
  await producer.connect();
  for (const event of batch) await producer.send(event);
  const stats = await producer.close();
  assert.equal(stats.acked, batch.length, 'Kafka acknowledged every event sent');
}

/** The ingest job over everything the topics hold beyond its checkpoint, then exit. */
async function ingest(label: string): Promise<void> {
  const result = await runSparkJob(config, {
    name: `it-${run}-dup-ingest-${label}`,
    job: 'stream_ingest',
    conf,
    args: { lakeRoot: config.lakeRoot, topics, availableNow: true, startingOffsets: 'earliest', checkpoint: join(config.lakeRoot, 'checkpoints', 'dup') },
  });
  assert.equal(result.state, 'succeeded', result.logTail);
}

/** Per source: the ids it should hold and how many copies of each. */
function expected(copies: (index: number) => number): Record<Source, Map<string, number>> {
  const out = Object.fromEntries(SOURCES.map((s) => [s, new Map<string, number>()])) as Record<Source, Map<string, number>>;
  events.forEach((event, index) => out[event.source].set(event.eventId, copies(index)));
  return out;
}

function assertHolds(what: string, actual: IdCounts, want: Map<string, number>): void {
  const wrong = [...new Set([...want.keys(), ...actual.counts.keys()])]
    .filter((id) => actual.counts.get(id) !== want.get(id))
    .map((id) => `${id}: ${actual.counts.get(id) ?? 0} (want ${want.get(id) ?? 0})`);
  assert.deepEqual(wrong.slice(0, 10), [], `${what}: ${wrong.length} event id(s) with the wrong number of copies`);
}

describe('an event produced twice goes through ingest, curate and the warehouse once', { timeout: 30 * 60_000 }, () => {
  after(async () => {
    const admin = createKafka(config).admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      await admin.deleteTopics({ topics: Object.values(topics).filter((t) => existing.has(t)) });
    } finally {
      await admin.disconnect();
    }
    // A job cut short by a timeout must not outlive the test.
    await killAll(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('raw holds both copies of every resent event, in two micro-batches of the real ingest job', async () => {
    await produce(events);
    await ingest('first');
    await produce(events.slice(resendFrom));
    await ingest('retry');
    const want = expected(copiesOf);
    for (const source of SOURCES) assertHolds(`raw ${source}`, await lakeIds(config.lakeRoot, 'raw', source), want[source]);
  });

  test('the curate job keeps one copy of each event', async () => {
    const spark = sparkActivities(config);
    const curateWindow = (input: { window: TimeWindow }): Promise<CurateResult> => spark.activities.curateWindow(input);
    let curated: CurateResult;
    try {
      curated = await new MockActivityEnvironment().run<[{ window: TimeWindow }], CurateResult, typeof curateWindow>(curateWindow, { window });
    } finally {
      await spark.close();
    }
    assert.equal(curated.rowsRead, events.length + (events.length - resendFrom));
    assert.equal(curated.duplicatesDropped, events.length - resendFrom);
    const want = expected(() => 1);
    for (const source of SOURCES) assertHolds(`curated ${source}`, await lakeIds(config.lakeRoot, 'curated', source), want[source]);
  });

  test('the warehouse load holds each event once, and again after a re-run of the window', async () => {
    const warehouseLoad = warehouseActivities(config);
    const want = expected(() => 1);
    const perSource = Object.fromEntries(SOURCES.map((s) => [s, want[s].size]));
    for (const attempt of ['first load', 're-run']) {
      const loaded = await warehouseLoad.loadWarehouse({ window });
      assert.deepEqual(loaded.rows, perSource, attempt);
      const warehouse = await warehouseContents(warehousePath(config), SOURCES);
      for (const source of SOURCES) assertHolds(`warehouse ${source} (${attempt})`, warehouse.ids[source], want[source]);
    }
  });
});
