// `smartcity simulate` end to end against the test stack's broker: what it reports as
// acknowledged is exactly what a consumer reads back, valid, ordered per vehicle.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../config';
import { SOURCES, TOPICS, validateEvent, type Source } from '../../schemas';
import { Child } from '../helpers/child';
import { runCli } from '../helpers/cli';
import { consumeSince, snapshotOffsets, type Consumed } from '../helpers/kafka';

const config = loadConfig();
const topics = Object.values(TOPICS);

interface Totals {
  reason: string;
  sent: Record<Source, number>;
  topics: Record<string, { acked: number; failed: number }>;
}

function ackedTotal(totals: Totals): number {
  return Object.values(totals.topics).reduce((n, t) => n + t.acked, 0);
}

async function simulateAndRead(args: string[]): Promise<{ totals: Totals; records: Consumed[] }> {
  const before = await snapshotOffsets(config, topics);
  const result = runCli(['simulate', ...args, '--json']);
  assert.equal(result.status, 0, result.stderr);
  return { totals: JSON.parse(result.stdout) as Totals, records: await consumeSince(config, before) };
}

describe('smartcity simulate', () => {
  const seed = String(Math.floor(Math.random() * 1e9));
  const history = ['--vehicles', '3', '--seed', seed, '--as-fast-as-possible', '--start', '2026-01-05T07:00:00Z', '--duration', '20m'];
  let first: { totals: Totals; records: Consumed[] };

  test('what it reports as acknowledged is what a consumer reads back, per topic', async () => {
    first = await simulateAndRead(history);
    const { totals, records } = first;
    assert.equal(totals.reason, 'duration');
    for (const source of SOURCES) {
      const topic = TOPICS[source];
      const read = records.filter((r) => r.topic === topic).length;
      assert.equal(totals.topics[topic]?.acked ?? 0, totals.sent[source], `${topic}: every sent event acknowledged`);
      assert.equal(read, totals.sent[source], `${topic}: read back what was acknowledged`);
    }
    assert.ok(totals.sent.vehicle > 100 && totals.sent.weather > 10, 'twenty minutes of three vehicles is a real amount of data');
  });

  test('every event read back validates against schemas/ and sits on its source topic, keyed by vehicle', () => {
    for (const { topic, key, event } of first.records) {
      const result = validateEvent(event);
      assert.ok(result.ok, result.ok ? '' : result.errors.join('; '));
      assert.equal(topic, TOPICS[event.source]);
      assert.equal(key, event.vehicleId);
    }
    assert.equal(new Set(first.records.map((r) => r.event.eventId)).size, first.records.length, 'event ids are unique');
  });

  test('per vehicle and source, seq is gap-free from 0 and in offset order in one partition', () => {
    const streams = new Map<string, Consumed[]>();
    for (const record of first.records) {
      const id = `${record.event.vehicleId}/${record.event.source}`;
      streams.set(id, [...(streams.get(id) ?? []), record]);
    }
    for (const [id, stream] of streams) {
      assert.equal(new Set(stream.map((r) => r.partition)).size, 1, `${id} stays in one partition`);
      const bySeqOrder = stream.slice().sort((a, b) => (a.offset < b.offset ? -1 : 1)).map((r) => r.event.seq);
      assert.deepEqual(bySeqOrder, bySeqOrder.map((_, i) => i), `${id}: seq 0..n in offset order`);
    }
  });

  test('the same seed and start produce the same events with the same ids', async () => {
    const again = await simulateAndRead(history);
    const ids = (records: Consumed[]) => records.map((r) => r.event.eventId).sort();
    assert.deepEqual(ids(again.records), ids(first.records));
    const byId = new Map(first.records.map((r) => [r.event.eventId, r.event]));
    for (const r of again.records) assert.deepEqual(r.event, byId.get(r.event.eventId));
  });

  test('Ctrl-C flushes what was sent and reports totals; nothing acknowledged is lost', async () => {
    const before = await snapshotOffsets(config, topics);
    const child = new Child(['simulate', '--vehicles', '4', '--speedup', '200', '--json']);
    // Interrupt as a user would, once it has sent and had acknowledgements for a while.
    await child.waitFor(/acked [1-9]/, 'acknowledgements');
    child.process.kill('SIGINT');
    assert.equal(await child.exited, 130, child.stderr);
    assert.match(child.stderr, /stopping: flushing/);
    const totals = JSON.parse(child.stdout) as Totals;
    assert.equal(totals.reason, 'stopped');
    const records = await consumeSince(config, before);
    assert.ok(ackedTotal(totals) > 0, 'it had sent something before the interrupt');
    assert.equal(records.length, ackedTotal(totals));
  });

  test('with a worker polling, it runs as a fleetSimulation workflow and prints the totals of the same events', { timeout: 10 * 60_000 }, async () => {
    // A task queue of its own, so the other simulate runs here keep producing directly.
    const env = { SMARTCITY_TASK_QUEUE: `simulate-${seed}` };
    const worker = new Child(['worker'], env);
    try {
      await worker.waitFor(/worker polling task queue/, 'the worker to poll', 180_000);
      const before = await snapshotOffsets(config, topics);
      const cli = new Child(['simulate', ...history, '--json'], env);
      assert.equal(await cli.exited, 0, cli.stderr);
      assert.match(cli.stderr, /running as workflow smartcity-fleet-/);
      const totals = JSON.parse(cli.stdout) as { reason: string; sent: Record<Source, number> };
      assert.equal(totals.reason, 'done');
      assert.deepEqual(totals.sent, first.totals.sent, 'the same events as the direct run of the same seed and start');
      const ids = (records: Consumed[]) => records.map((r) => r.event.eventId).sort();
      assert.deepEqual(ids(await consumeSince(config, before)), ids(first.records));
    } finally {
      await worker.stop();
    }
  });

  test('an unreachable broker is a clear error within a bounded time, not a hang', () => {
    const started = Date.now();
    const result = runCli(['simulate', '--vehicles', '1', '--as-fast-as-possible', '--duration', '1m'], { SMARTCITY_KAFKA_BROKERS: '127.0.0.1:1' }, 60_000);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot reach Kafka at 127\.0\.0\.1:1/);
    assert.ok(Date.now() - started < 45_000);
  });
});
