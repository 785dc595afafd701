// The Spark cluster path: `stack up --spark-cluster` starts a standalone master and two workers
// (PySpark's spark-class, loopback, ports of the test offset) beside the test stack's Kafka; the
// ingest job and a curate run go to it through SMARTCITY_SPARK_MASTER=spark://127.0.0.1:<port>.
// The counts are checked against the deterministic generator (producers/fleet.ts): every event
// produced is one raw row and one curated row, with the generator's event ids; and the master's
// own account shows that both applications ran on it, with executors on its workers.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lakeIds } from '../helpers/lake';
import { loadConfig } from '../../config';
import { EventProducer } from '../../producers/event-producer';
import { fleetEvents } from '../../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../../schemas';
import { runSparkJob, type IngestProgress } from '../../spark/runner';
import { stackStatus, stackUp } from '../../stack';
import { stopProcess } from '../../stack/processes';
import { sparkMasterUiUrl, sparkMasterUrl } from '../../stack/spark';
import { deleteTopics } from '../helpers/kafka';

const run = randomUUID().slice(0, 8);
const lake = mkdtempSync(join(tmpdir(), 'smartcity-spark-cluster-'));
const master = sparkMasterUrl(loadConfig());
// What a user sets for the worker; the jobs below take their master from it.
const config = loadConfig({ ...process.env, SMARTCITY_SPARK_MASTER: master, SMARTCITY_LAKE_ROOT: lake });
const topics = Object.fromEntries(SOURCES.map((s) => [s, `it_${run}_cluster_${s}`])) as Record<Source, string>;
const conf = { 'spark.ui.enabled': 'false', 'spark.sql.shuffle.partitions': '4' };
const SLOW = { timeout: 8 * 60_000 };

const START = new Date('2026-03-03T07:00:00Z');
const events: SmartCityEvent[] = [];
for (const e of fleetEvents({ vehicles: 2, seed: 23, start: START })) {
  if (events.length === 300) break;
  events.push(e);
}
const window = { from: START.toISOString(), to: new Date(START.getTime() + 3_600_000).toISOString() };

async function eventIds(layer: 'raw' | 'curated'): Promise<string[]> {
  const ids = await Promise.all(SOURCES.map((source) => lakeIds(lake, layer, source)));
  return ids.flatMap((i) => [...i.counts.keys()]).sort();
}

/** The master's applications (its UI's JSON), by name. */
async function masterApps(): Promise<{ name: string; cores: number; state: string }[]> {
  const state = (await (await fetch(`${sparkMasterUiUrl(config)}/json/`)).json()) as { activeapps: { name: string; cores: number; state: string }[]; completedapps: { name: string; cores: number; state: string }[] };
  return [...state.activeapps, ...state.completedapps];
}

describe('the ingest and curate jobs on a Spark standalone cluster', () => {
  before(async () => {
    await stackUp(config, () => {}, { sparkCluster: true });
  });

  after(async () => {
    // The cluster only: the test stack's Kafka and Temporal serve the other test files.
    for (const name of ['spark-worker-2', 'spark-worker-1', 'spark-master']) await stopProcess(config.dataDir, name);
    await deleteTopics(config, Object.values(topics));
    rmSync(lake, { recursive: true, force: true });
  });

  test('the stack shows the master and two workers running, answering, the master UI on loopback', async () => {
    const info = await stackStatus(config);
    const cluster = info.components.filter((c) => c.name.startsWith('spark-master') || c.name.startsWith('spark-worker'));
    assert.deepEqual(
      cluster.map((c) => [c.name, c.state, c.answering]),
      [
        ['spark-master', 'running', true],
        ['spark-worker-1', 'running', true],
        ['spark-worker-2', 'running', true],
      ],
    );
    assert.equal(info.urls.sparkMaster, master);
    assert.equal(info.urls.sparkMasterUi, `http://127.0.0.1:${config.ports.sparkMasterUi}`);
  });

  test('ingest consumes every produced event into raw, on the cluster', SLOW, async () => {
    const producer = new EventProducer(config, { topics });
    await producer.connect();
    for (const e of events) await producer.send(e);
    assert.equal((await producer.close()).acked, events.length);

    const result = await runSparkJob(config, {
      name: `it-${run}-cluster-ingest`,
      job: 'stream_ingest',
      master: config.spark.master,
      conf,
      args: { lakeRoot: lake, topics, availableNow: true },
    });
    assert.equal(result.state, 'succeeded', result.logTail);
    assert.equal((result.lastProgress as IngestProgress | undefined)?.consumed, events.length);
    assert.deepEqual(await eventIds('raw'), events.map((e) => e.eventId).sort());
  });

  test('curate writes the window\'s raw rows to curated, on the cluster', SLOW, async () => {
    const result = await runSparkJob(config, { name: `it-${run}-cluster-curate`, job: 'curate', master: config.spark.master, conf, args: { lakeRoot: lake, ...window } });
    assert.equal(result.state, 'succeeded', result.logTail);
    const sources = (result.summary?.sources ?? {}) as Record<string, { rows_written: number }>;
    assert.equal(Object.values(sources).reduce((n, s) => n + s.rows_written, 0), events.length);
    assert.deepEqual(await eventIds('curated'), events.map((e) => e.eventId).sort());
  });

  test('both applications ran on the cluster, one core each (the cluster\'s default)', async () => {
    const apps = await masterApps();
    for (const name of ['smartcity-stream-ingest', 'smartcity-curate']) {
      const app = apps.find((a) => a.name === name && a.state === 'FINISHED');
      assert.ok(app, `${name} finished on the master; it knows ${JSON.stringify(apps)}`);
      assert.equal(app.cores, 1);
    }
  });
});
