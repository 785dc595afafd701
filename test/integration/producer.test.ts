// The event producer against a real broker (SMARTCITY_KAFKA_BROKERS). Every run works on its own
// throwaway topics, so runs never see each other's records, and deletes them at the end.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { logLevel, type LogEntry } from 'kafkajs';
import { loadConfig, type Config } from '../../config';
import { createKafka, describeBrokerError, ensureTopics, kafkaClientConfig, topicOffsets, type KafkaClientOptions } from '../../kafka/client';
import { DeliveryError, EventProducer, InvalidEventError } from '../../producers/event-producer';
import { eventId } from '../../producers/ids';
import { SOURCES, type SmartCityEvent, type Source } from '../../schemas';
import { consumeSince, type Consumed } from '../helpers/kafka';

const config = loadConfig();
const run = randomUUID().slice(0, 8);
const created: string[] = [];
// kafkajs logs (WARN and up) go to stderr, except in the tests that provoke failures on purpose.
const client: KafkaClientOptions = {};
const quiet: KafkaClientOptions = { log: () => undefined };

/** Topics of their own for one test: `it_<run>_<label>_<source>`. */
function topicsFor(label: string): Record<Source, string> {
  const topics = Object.fromEntries(SOURCES.map((s) => [s, `it_${run}_${label}_${s}`])) as Record<Source, string>;
  created.push(...Object.values(topics));
  return topics;
}

const T0 = Date.parse('2026-03-01T08:00:00Z');

/** A valid event of `source`, the `seq`-th of its vehicle. */
function makeEvent(source: Source, vehicleId: string, seq: number): SmartCityEvent {
  const envelope = {
    eventId: eventId(42, vehicleId, source, seq),
    vehicleId,
    deviceId: `${vehicleId}-dev`,
    seq,
    eventTime: new Date(T0 + seq * 1000).toISOString(),
    schemaVersion: 1 as const,
  };
  const location = { lat: 51.5 + seq * 1e-4, lon: -0.12 - seq * 1e-4 };
  switch (source) {
    case 'vehicle':
      return { ...envelope, source, location, speedKmh: 40, headingDeg: 315, direction: 'NW', make: 'Volvo', model: 'XC40', year: 2022, fuelType: 'electric', journeyStatus: seq === 0 ? 'departed' : 'en_route' };
    case 'gps':
      return { ...envelope, source, location, speedKmh: 40, headingDeg: 315, accuracyM: 4.5, vehicleType: 'taxi' };
    case 'traffic':
      return { ...envelope, source, cameraId: `cam-${seq}`, location, observedSpeedKmh: 38, congestion: 'moderate', snapshotRef: `s3://snapshots/cam-${seq}/${seq}.jpg` };
    case 'weather':
      return { ...envelope, source, location, temperatureC: 11.5, condition: 'cloudy', precipitationMm: 0, windSpeedKmh: 12, humidityPct: 70, airQualityIndex: 35 };
    case 'emergency':
      return { ...envelope, source, incidentId: randomUUID(), incidentType: 'medical', location, status: 'active', description: 'passenger unwell' };
  }
}

/** `vehicles` × SOURCES × `ticks` events, interleaved tick by tick as a fleet would emit them. */
function fleet(vehicles: string[], ticks: number): SmartCityEvent[] {
  const events: SmartCityEvent[] = [];
  for (let seq = 0; seq < ticks; seq++) for (const v of vehicles) for (const s of SOURCES) events.push(makeEvent(s, v, seq));
  return events;
}

/** Every record of `topics` (fresh topics of this run) from offset 0. */
function consumeAll(topics: string[]): Promise<Consumed[]> {
  return consumeSince(config, new Map(topics.map((t) => [t, new Map<number, bigint>()])));
}

const unreachable: Config = { ...config, kafka: { ...config.kafka, brokers: ['127.0.0.1:1'] } };
const fastFail: KafkaClientOptions = { ...quiet, connectionTimeoutMs: 500, retries: 1, initialRetryMs: 100, maxRetryMs: 200 };

describe('EventProducer against a real broker', () => {
  after(async () => {
    const admin = createKafka(config, client).admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      await admin.deleteTopics({ topics: created.filter((t) => existing.has(t)) });
    } finally {
      await admin.disconnect();
    }
  });

  test('ensureTopics creates only what is missing, with the configured partitions', async () => {
    const topics = [`it_${run}_ensure_a`, `it_${run}_ensure_b`];
    created.push(...topics);
    assert.deepEqual(await ensureTopics(config, [topics[0]!], client), [topics[0]]);
    assert.deepEqual(await ensureTopics(config, topics, client), [topics[1]]);
    assert.deepEqual(await ensureTopics(config, topics, client), []);
    const admin = createKafka(config, client).admin();
    await admin.connect();
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      for (const t of meta) assert.equal(t.partitions.length, config.kafka.partitions, t.name);
    } finally {
      await admin.disconnect();
    }
  });

  test('events come back with the same ids and counts, in per-vehicle order, one partition per vehicle', async () => {
    const topics = topicsFor('roundtrip');
    const vehicles = Array.from({ length: 12 }, (_, i) => `vehicle-${String(i + 1).padStart(3, '0')}`);
    const events = fleet(vehicles, 40);
    const producer = new EventProducer(config, { topics, client, lingerMs: 10, batchMaxEvents: 300 });
    await producer.connect();
    const receipts = [];
    for (const e of events) receipts.push(await producer.send(e));
    await Promise.all(receipts.map((r) => r.acked));
    const stats = await producer.close();

    // acks are counted per topic, and agree with what the broker holds
    const perSource = vehicles.length * 40;
    for (const s of SOURCES) {
      assert.equal(stats.topics[topics[s]]?.acked, perSource, s);
      assert.ok(stats.topics[topics[s]]!.ackedBytes > perSource * 100, s);
      assert.equal(await topicOffsets(config, topics[s], client), perSource, s);
    }
    assert.equal(stats.acked, events.length);
    assert.equal(stats.failed, 0);
    assert.equal(stats.pending, 0);

    const consumed = await consumeAll(Object.values(topics));
    assert.equal(consumed.length, events.length);
    assert.deepEqual(new Set(consumed.map((c) => c.event.eventId)), new Set(events.map((e) => e.eventId)));
    for (const c of consumed) assert.equal(c.topic, topics[c.event.source]);

    const partitionOf = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    for (const { topic, partition, event } of consumed) {
      const key = `${topic}/${event.vehicleId}`;
      assert.equal(partitionOf.get(key) ?? partition, partition, `${key} spread over partitions`);
      partitionOf.set(key, partition);
      // eachMessage delivers a partition's records in offset order
      assert.equal(event.seq, (lastSeq.get(key) ?? -1) + 1, `${key} out of order`);
      lastSeq.set(key, event.seq);
    }
    if (config.kafka.partitions === 3) {
      // Partitions computed by the Java client (Utils.murmur2, as Spark's Kafka source uses).
      const java = { 'vehicle-001': 0, 'vehicle-002': 1, 'vehicle-003': 1, 'vehicle-004': 0, 'vehicle-005': 1, 'vehicle-006': 0 };
      for (const [vehicle, partition] of Object.entries(java)) assert.equal(partitionOf.get(`${topics.gps}/${vehicle}`), partition, vehicle);
    }
  });

  test('close() sends what is still buffered, without waiting for the linger time', async () => {
    const topics = topicsFor('close');
    const events = fleet(['bus-17', 'taxi-42'], 30);
    const producer = new EventProducer(config, { topics, client, lingerMs: 60_000, batchMaxEvents: 10_000 });
    await producer.connect();
    for (const e of events) await producer.send(e);
    assert.equal(producer.stats().acked, 0);
    assert.equal(producer.stats().pending, events.length);
    const started = Date.now();
    const stats = await producer.close();
    assert.ok(Date.now() - started < 10_000, 'close() waited for the linger time');
    assert.equal(stats.acked, events.length);
    assert.equal(stats.pending, 0);
    let onBroker = 0;
    for (const t of Object.values(topics)) onBroker += await topicOffsets(config, t, client);
    assert.equal(onBroker, events.length);
    await assert.rejects(producer.send(events[0]!), /closed/);
  });

  test('send() waits for room: the buffer never holds more than its bound', async () => {
    const topics = topicsFor('backpressure');
    const events = fleet(['vehicle-001', 'vehicle-002', 'vehicle-003'], 200);
    const producer = new EventProducer(config, { topics, client, bufferMaxEvents: 100, batchMaxEvents: 40, lingerMs: 5 });
    await producer.connect();
    let maxPending = 0;
    for (const e of events) {
      await producer.send(e);
      maxPending = Math.max(maxPending, producer.stats().pending);
    }
    assert.ok(maxPending <= 100, `pending reached ${maxPending}`);

    // Callers that do not await each send() are held back the same way, and keep their order.
    const more = fleet(['vehicle-004', 'vehicle-005'], 200);
    await Promise.all(
      more.map(async (e) => {
        await producer.send(e);
        maxPending = Math.max(maxPending, producer.stats().pending);
      }),
    );
    assert.ok(maxPending <= 100, `pending reached ${maxPending}`);
    assert.equal((await producer.close()).acked, events.length + more.length);
    const consumed = await consumeAll([topics.weather]);
    for (const vehicle of ['vehicle-004', 'vehicle-005']) {
      assert.deepEqual(
        consumed.filter((c) => c.event.vehicleId === vehicle).map((c) => c.event.seq),
        Array.from({ length: 200 }, (_, i) => i),
      );
    }
  });

  test('a failing batch is retried until the delivery timeout, holding back what is queued behind it; then both fail and later events go through', async () => {
    const topics = { ...topicsFor('failure'), emergency: `it_${run}_failure_missing` };
    await ensureTopics(config, [topics.vehicle], client);
    // One event per batch, so the event behind the failing one is a batch of its own.
    const producer = new EventProducer(config, { topics, client: fastFail, ensureTopics: false, batchMaxEvents: 1, deliveryTimeoutMs: 3_000 });
    await producer.connect();

    const first = await producer.send(makeEvent('vehicle', 'vehicle-001', 0));
    await producer.flush();
    await first.acked;

    const started = Date.now();
    const lost = await producer.send(makeEvent('emergency', 'vehicle-001', 0));
    const behind = await producer.send(makeEvent('vehicle', 'vehicle-001', 1));
    await assert.rejects(producer.flush(), (err: Error) => err instanceof DeliveryError && /^2 event\(s\)/.test(err.message));
    assert.ok(Date.now() - started >= 3_000, `gave up after ${Date.now() - started} ms, before the delivery timeout`);
    for (const receipt of [lost, behind]) {
      await assert.rejects(receipt.acked, (err: Error) => {
        assert.ok(err instanceof DeliveryError);
        assert.match(err.message, new RegExp(`2 event\\(s\\) for ${topics.emergency}, ${topics.vehicle} were not acknowledged by Kafka, past the delivery timeout of 3 s`));
        assert.match(err.message, /for \d+ s/);
        return true;
      });
    }
    assert.equal(await topicOffsets(config, topics.vehicle, client), 1, 'the event queued behind the failing batch was never sent');

    const later = await producer.send(makeEvent('vehicle', 'vehicle-001', 2));
    await producer.flush();
    await later.acked;

    const stats = await producer.close();
    assert.deepEqual(stats.topics[topics.vehicle], { acked: 2, ackedBytes: stats.topics[topics.vehicle]!.ackedBytes, failed: 1 });
    assert.equal(stats.topics[topics.emergency]!.failed, 1);
    assert.equal(stats.failed, 2);
  });

  test('a refusal that retrying cannot fix fails at once, not at the delivery timeout', async () => {
    const topics = topicsFor('refused');
    const admin = createKafka(config, client).admin();
    await admin.connect();
    try {
      // Smaller than any event: the broker answers MESSAGE_TOO_LARGE, which no retry changes.
      await admin.createTopics({ topics: [{ topic: topics.gps, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: '200' }] }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    const producer = new EventProducer(config, { topics, client: quiet, deliveryTimeoutMs: 600_000 });
    await producer.connect();
    const receipt = await producer.send(makeEvent('gps', 'vehicle-001', 0));
    await assert.rejects(receipt.acked, (err: Error) => err instanceof DeliveryError && !/delivery timeout/.test(err.message) && /too large|MESSAGE_TOO_LARGE|larger/i.test(err.message));
    assert.equal((await producer.close()).failed, 1);
  });

  test('an invalid event is refused with its id and problems, and nothing is sent', async () => {
    const topics = topicsFor('invalid');
    const producer = new EventProducer(config, { topics, client });
    await producer.connect();
    const bad = { ...makeEvent('gps', 'vehicle-001', 0), speedKmh: -5 } as SmartCityEvent;
    await assert.rejects(producer.send(bad), (err: Error) => {
      assert.ok(err instanceof InvalidEventError);
      assert.ok(err.message.includes(bad.eventId), err.message);
      assert.match(err.message, /speedKmh/);
      return true;
    });
    assert.equal(producer.stats().pending, 0);
    assert.equal((await producer.close()).acked, 0);
  });
});

describe('unreachable broker', () => {
  test('connect() fails within a bounded time, naming the broker', async () => {
    const producer = new EventProducer(unreachable, { client: fastFail });
    const started = Date.now();
    await assert.rejects(producer.connect(), (err: Error) => {
      assert.match(err.message, /cannot reach Kafka at 127\.0\.0\.1:1/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    await producer.close();
  });

  test('the producer connection itself fails the same way', async () => {
    const producer = new EventProducer(unreachable, { client: fastFail, ensureTopics: false });
    await assert.rejects(producer.connect(), /cannot reach Kafka at 127\.0\.0\.1:1 after 2 attempts/);
    await producer.close();
  });

  test('a broker that accepts connections but never answers fails within ~15 s with the defaults', { timeout: 30_000 }, async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const started = Date.now();
      const cfg: Config = { ...config, kafka: { ...config.kafka, brokers: [address] } };
      await assert.rejects(topicOffsets(cfg, 'anything', quiet), (err: Error) => err.message.startsWith(`cannot reach Kafka at ${address}`));
      assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    } finally {
      silent.close();
    }
  });
});

describe('client options', () => {
  const saslEnv = {
    SMARTCITY_KAFKA_BROKERS: 'b-1.example:9096,b-2.example:9096',
    SMARTCITY_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    SMARTCITY_KAFKA_SASL_USERNAME: 'pipeline',
    SMARTCITY_KAFKA_SASL_PASSWORD: 'hunter2-secret',
  };

  test('SASL settings become kafkajs sasl options, over TLS', () => {
    const options = kafkaClientConfig(loadConfig(saslEnv));
    assert.deepEqual(options.sasl, { mechanism: 'scram-sha-512', username: 'pipeline', password: 'hunter2-secret' });
    assert.equal(options.ssl, true);
    assert.deepEqual(options.brokers, ['b-1.example:9096', 'b-2.example:9096']);

    const plain = kafkaClientConfig(loadConfig({ ...saslEnv, SMARTCITY_KAFKA_SASL_MECHANISM: 'plain' }));
    assert.deepEqual(plain.sasl, { mechanism: 'plain', username: 'pipeline', password: 'hunter2-secret' });

    const none = kafkaClientConfig(loadConfig({}));
    assert.equal(none.sasl, undefined);
    assert.equal(none.ssl, false);
  });

  test('timeouts and retries are bounded', () => {
    const options = kafkaClientConfig(loadConfig({}));
    assert.ok(options.connectionTimeout! <= 5000);
    assert.ok(options.requestTimeout! <= 30_000);
    assert.ok(options.retry!.retries! < 10);
  });

  test('a kafkajs line repeating within 30 s is counted, then printed once with the count', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 });
    const lines: string[] = [];
    const log = kafkaClientConfig(loadConfig({}), { log: (l) => lines.push(l) }).logCreator!(logLevel.WARN);
    const refused = (retryCount: number): LogEntry => ({
      namespace: 'Connection',
      level: logLevel.ERROR,
      label: 'ERROR',
      log: { timestamp: '', message: 'Connection error: connect ECONNREFUSED', broker: '127.0.0.1:9092', retryCount },
    });
    for (let i = 0; i < 20; i++) {
      log(refused(i));
      t.mock.timers.tick(1_000);
    }
    assert.equal(lines.length, 1, lines.join('\n'));
    t.mock.timers.tick(15_000);
    log(refused(20));
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /\[19 more like it in the last 35 s\]$/);
  });

  test('the password never reaches the log or an error message', () => {
    const lines: string[] = [];
    const cfg = loadConfig(saslEnv);
    const log = kafkaClientConfig(cfg, { log: (l) => lines.push(l) }).logCreator!(logLevel.WARN);
    const entry: LogEntry = {
      namespace: 'Connection',
      level: logLevel.ERROR,
      label: 'ERROR',
      log: { timestamp: new Date().toISOString(), message: 'auth failed for hunter2-secret', broker: 'b-1.example:9096', sasl: cfg.kafka.sasl },
    };
    log(entry);
    assert.equal(lines.length, 1);
    assert.doesNotMatch(lines[0]!, /hunter2/);
    assert.match(lines[0]!, /broker=b-1\.example:9096/);

    const saslError = Object.assign(new Error('SASL SCRAM SHA512 authentication failed'), { name: 'KafkaJSSASLAuthenticationError', broker: 'b-1.example:9096' });
    const message = describeBrokerError(saslError, cfg.kafka.brokers);
    assert.match(message, /SASL login at b-1\.example:9096/);
    assert.doesNotMatch(message, /hunter2/);
  });
});
