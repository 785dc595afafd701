// A Kafka broker SIGKILLed for 30 s and more, then restarted with `smartcity stack up`, while the
// project's own processes produce into it. The broker is this file's own (a stack on ports and a
// data folder of its own, without Spark), so files running beside it keep the test stack's:
//  - `smartcity simulate --direct` with the default delivery timeout rides it out: exit 0, every
//    event the generator makes for its run acknowledged and in Kafka;
//  - the same with SMARTCITY_KAFKA_DELIVERY_TIMEOUT=5 fails within seconds: exit 1, an error naming
//    the broker and how long it was unreachable, the totals printed, and Kafka holding a prefix of
//    the run (nothing after a gap);
//  - a worker process (`smartcity worker`) running a fleetSimulation survives, and the fleet
//    completes with every generated event acknowledged and in Kafka; its status counted
//    acknowledged events while the first chunk was still running;
//  - a worker with a 5 s delivery timeout fails the chunk, and its retries resume from the
//    acknowledged prefix until the broker is back: the fleet completes all the same.
// Expectations come from the deterministic generator (producers/fleet.ts), not from what the
// processes say about themselves.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import type { SourceCounts } from '../../activities/types';
import { loadConfig } from '../../config';
import { fleetEvents } from '../../producers/fleet';
import { kafkaReady } from '../../stack/kafka';
import { SOURCES, TOPICS, type SmartCityEvent } from '../../schemas';
import { connectClient } from '../../temporal/connection';
import { fleetSimulation, fleetStatusQuery, type FleetSimulationResult, type FleetStatus } from '../../workflows';
import { Child, killBroker } from '../helpers/child';
import { runCli } from '../helpers/cli';
import { consumeSince, snapshotOffsets, type Consumed, type Offsets } from '../helpers/kafka';
import { until, within } from '../helpers/until';

// Every process this file starts (stack, workers, simulate) inherits these. Ports move with
// SMARTCITY_TEST_PORT_OFFSET like the other test ports (stack.test.ts and stop-paths.test.ts hold
// the ones next to these).
const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
Object.assign(process.env, {
  SMARTCITY_DATA_DIR: mkdtempSync(join(tmpdir(), 'smartcity-outage-')),
  SMARTCITY_TEMPORAL_PORT: String(37236 + offset),
  SMARTCITY_TEMPORAL_UI_PORT: String(38236 + offset),
  SMARTCITY_KAFKA_PORT: String(39098 + offset),
  SMARTCITY_KAFKA_CONTROLLER_PORT: String(39099 + offset),
  SMARTCITY_SPARK_CONNECT: 'false',
});
const config = loadConfig();
const OUTAGE_MS = 30_000;
const run = Math.floor(Math.random() * 1e6);

/** What the generator makes for a run: every event before start + duration, in order. */
function generated(vehicles: number, seed: number, start: string, durationMinutes: number): SmartCityEvent[] {
  const end = Date.parse(start) + durationMinutes * 60_000;
  const out: SmartCityEvent[] = [];
  for (const e of fleetEvents({ vehicles, seed, start: new Date(start) })) {
    if (Date.parse(e.eventTime) >= end) break;
    out.push(e);
  }
  return out;
}

function countsOf(events: SmartCityEvent[]): SourceCounts {
  const counts = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
  for (const e of events) counts[e.source]++;
  return counts;
}

const totalOf = (counts: SourceCounts) => SOURCES.reduce((n, s) => n + counts[s], 0);

interface SimulateJson {
  sent: SourceCounts;
  topics: Record<string, { acked: number; failed: number }>;
}

describe('a broker outage of 30 s and more', { timeout: 15 * 60_000 }, () => {
  const start = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
  const rides = { vehicles: 3, seed: run, start, speedup: 60, durationMinutes: 60 };
  const gives = { vehicles: 3, seed: run + 1, start, speedup: 60, durationMinutes: 120 };
  const fleet = { vehicles: 3, seed: run + 2, start, speedup: 10, durationMinutes: 20 };
  const retried = { ...fleet, seed: run + 3 };
  const workers: Child[] = [];
  let connection: Awaited<ReturnType<typeof connectClient>>;
  let offsets: Offsets;
  let records: Consumed[];
  let simulateRides: Child;
  let simulateGivesUp: Child;
  let givesUpElapsedMs = 0;
  let fleetHandle: WorkflowHandle<typeof fleetSimulation>;
  let retriedHandle: WorkflowHandle<typeof fleetSimulation>;
  let fleetResult: FleetSimulationResult;
  let retriedResult: FleetSimulationResult;
  let liveStatus: FleetStatus;

  const simulate = (o: typeof rides, env: NodeJS.ProcessEnv = {}) =>
    new Child(
      ['simulate', '--direct', '--json', '--vehicles', String(o.vehicles), '--seed', String(o.seed), '--start', o.start, '--speedup', String(o.speedup), '--duration', `${o.durationMinutes}m`],
      env,
    );

  async function startWorker(taskQueue: string, env: NodeJS.ProcessEnv = {}): Promise<Child> {
    const worker = new Child(['worker'], { SMARTCITY_TASK_QUEUE: taskQueue, ...env });
    workers.push(worker);
    await worker.waitFor(/worker polling task queue/, 'the worker to poll', 180_000);
    return worker;
  }

  before(async () => {
    const stack = runCli(['stack', 'up'], {}, 300_000);
    assert.equal(stack.status, 0, stack.stderr);
    connection = await connectClient(config);
    offsets = await snapshotOffsets(config, Object.values(TOPICS));
    const queue = `outage-${randomUUID()}`;
    const retryQueue = `outage-retry-${randomUUID()}`;
    await Promise.all([startWorker(queue), startWorker(retryQueue, { SMARTCITY_KAFKA_DELIVERY_TIMEOUT: '5' })]);
    const startFleet = (taskQueue: string, input: typeof fleet) =>
      connection.client.workflow.start(fleetSimulation, { taskQueue, workflowId: `outage-fleet-${randomUUID()}`, args: [input] });
    fleetHandle = await startFleet(queue, fleet);
    retriedHandle = await startFleet(retryQueue, retried);
    simulateRides = simulate(rides);
    simulateGivesUp = simulate(gives, { SMARTCITY_KAFKA_DELIVERY_TIMEOUT: '5' });

    // Everything is producing, and the fleet's first chunk is still running.
    liveStatus = await until('the fleet to count acknowledged events of its running first chunk', async () => {
      const s = await fleetHandle.query(fleetStatusQuery).catch(() => undefined);
      return s && totalOf(s.totals) > 0 ? s : undefined;
    });
    await until('the retried fleet to produce', async () => ((await retriedHandle.query(fleetStatusQuery).catch(() => undefined))?.parts[0]?.running ? true : undefined));
    await simulateRides.waitFor(/acked [1-9]/, 'simulate to get acknowledgements');
    await simulateGivesUp.waitFor(/acked [1-9]/, 'simulate (5 s timeout) to get acknowledgements');

    const killedAt = Date.now();
    killBroker(config);
    await within(simulateGivesUp.exited, OUTAGE_MS, () => undefined);
    givesUpElapsedMs = Date.now() - killedAt;
    await sleep(killedAt + OUTAGE_MS - Date.now());
    assert.ok(!(await kafkaReady(config).catch(() => false)), 'the broker stayed down');
    const up = runCli(['stack', 'up'], {}, 300_000);
    assert.equal(up.status, 0, up.stderr);

    [fleetResult, retriedResult] = await Promise.all([fleetHandle.result(), retriedHandle.result()]);
    await until('simulate to finish', async () => (simulateRides.running ? undefined : true), { timeoutMs: 5 * 60_000 });
    records = await consumeSince(config, offsets);
  });

  after(async () => {
    for (const child of [...workers, simulateRides, simulateGivesUp]) await child?.stop();
    await connection?.close();
    runCli(['stack', 'down', '--force'], {}, 120_000);
    rmSync(config.dataDir, { recursive: true, force: true });
  });

  const idsInKafka = () => new Set(records.map((r) => r.event.eventId));

  test('simulate --direct rides it out: exit 0, exactly the generated events acknowledged, all of them in Kafka', () => {
    assert.equal(simulateRides.exitCode, 0, simulateRides.stderr.slice(-3000));
    const expected = generated(rides.vehicles, rides.seed, rides.start, rides.durationMinutes);
    const totals = JSON.parse(simulateRides.stdout) as SimulateJson;
    const counts = countsOf(expected);
    for (const source of SOURCES) {
      assert.equal(totals.topics[TOPICS[source]]!.acked, counts[source], source);
      assert.equal(totals.topics[TOPICS[source]]!.failed, 0, source);
    }
    const ids = idsInKafka();
    assert.deepEqual(expected.filter((e) => !ids.has(e.eventId)).length, 0, 'every generated event is in Kafka');
    assert.match(simulateRides.stderr, /kafka: delivering again after \d+ s of failed attempts, in order, nothing skipped/);
  });

  test('simulate --direct past its delivery timeout exits 1 within seconds, naming the broker and the outage, with totals; Kafka holds a prefix of the run', () => {
    assert.equal(simulateGivesUp.exitCode, 1, simulateGivesUp.stderr.slice(-3000));
    assert.ok(givesUpElapsedMs < OUTAGE_MS, `exited ${givesUpElapsedMs} ms after the kill, while the broker was still down`);
    const broker = config.kafka.brokers[0]!.replaceAll('.', '\\.');
    assert.match(simulateGivesUp.stderr, new RegExp(`past the delivery timeout of 5 s \\(SMARTCITY_KAFKA_DELIVERY_TIMEOUT\\): cannot reach Kafka at ${broker} for \\d+ s`));
    assert.match(simulateGivesUp.stderr, /^total\s+\d+\s+\d+\s+[1-9]\d*/m, 'the totals, with the failed events, are printed');

    const expected = generated(gives.vehicles, gives.seed, gives.start, gives.durationMinutes);
    const ids = idsInKafka();
    const inKafka = expected.map((e) => ids.has(e.eventId));
    const firstMissing = inKafka.indexOf(false);
    assert.ok(firstMissing > 0, 'it had produced before the outage');
    assert.ok(inKafka.slice(firstMissing).every((present) => !present), 'nothing after the first missing event reached Kafka: no gap');
  });

  test('a worker process running a fleet survives; the fleet completes with every generated event acknowledged and in Kafka', () => {
    assert.ok(workers[0]!.running, `the worker exited (${workers[0]!.exitCode}):\n${workers[0]!.stderr.slice(-3000)}`);
    assert.doesNotMatch(workers[0]!.stderr, /unhandled/i);
    const expected = generated(fleet.vehicles, fleet.seed, fleet.start, fleet.durationMinutes);
    assert.deepEqual(fleetResult.totals, countsOf(expected));
    const ids = idsInKafka();
    assert.equal(expected.filter((e) => !ids.has(e.eventId)).length, 0, 'every generated event is in Kafka');
  });

  test("the fleet's status counted acknowledged events of its first chunk while it ran, and ends at the totals", async () => {
    assert.ok(liveStatus.parts[0]!.running && liveStatus.parts[0]!.nextIndex === 0, JSON.stringify(liveStatus.parts));
    assert.ok(totalOf(liveStatus.totals) > 0);
    assert.deepEqual((await fleetHandle.query(fleetStatusQuery)).totals, fleetResult.totals);
  });

  test('past a 5 s delivery timeout the chunk fails and its retries resume from the acknowledged prefix: the fleet completes all the same', async () => {
    assert.ok(workers[1]!.running, `the worker exited (${workers[1]!.exitCode}):\n${workers[1]!.stderr.slice(-3000)}`);
    const history = await retriedHandle.fetchHistory();
    const retriedAttempts = (history.events ?? []).filter(
      (e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1 && e.activityTaskStartedEventAttributes?.lastFailure?.applicationFailureInfo?.type === 'KafkaDeliveryFailed',
    );
    assert.ok(retriedAttempts.length > 0, 'a chunk failed on the delivery timeout and was retried');
    const expected = generated(retried.vehicles, retried.seed, retried.start, retried.durationMinutes);
    assert.deepEqual(retriedResult.totals, countsOf(expected));
    const ids = idsInKafka();
    assert.equal(expected.filter((e) => !ids.has(e.eventId)).length, 0, 'every generated event is in Kafka');
  });
});

