// The fleet activities against the real broker, in the SDK's mock activity environment: a chunk
// sends the events of its time span (one journey, or a slice of the fleet merged by event time,
// exactly as the generator makes them), heartbeats the prefix Kafka acknowledged, and a retried
// attempt resumes from its heartbeat, re-sending the rest with the same event ids.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { kafkaActivities, type EventSink } from '../../activities/kafka';
import type { FleetSliceInput, JourneyChunkInput, JourneyChunkResult } from '../../activities/types';
import { loadConfig } from '../../config';
import { createKafka } from '../../kafka/client';
import { DeliveryError, EventProducer, type Receipt } from '../../producers/event-producer';
import { fleetEvents, journeyEvents } from '../../producers/fleet';
import { SOURCES, type Source } from '../../schemas';
import { consumeSince, snapshotOffsets } from '../helpers/kafka';

const config = loadConfig();
const run = randomUUID().slice(0, 8);
const topics = Object.fromEntries(SOURCES.map((s) => [s, `chunk_${run}_${s}`])) as Record<Source, string>;
const producer = new EventProducer(config, { topics });
const activities = kafkaActivities(async () => producer);
const produceJourneyChunk = (i: JourneyChunkInput): Promise<JourneyChunkResult> => activities.produceJourneyChunk(i);
const fleet = { vehicles: 1, seed: 77, start: '2026-04-01T06:00:00Z' };
const input: JourneyChunkInput = { fleet, vehicleIndex: 0, fromIndex: 0, untilEventTime: '2026-04-01T06:03:00Z' };
// A chunk is a prefix of the journey in generation order: it ends at the first event at or after
// `untilEventTime` (a camera event can carry a time just before its tick's), the next chunk goes on from there.
const journey = [...journeyEvents({ ...fleet, start: new Date(fleet.start) }, 0)];
const expected = journey.slice(0, journey.findIndex((e) => Date.parse(e.eventTime) >= Date.parse(input.untilEventTime)));

const readBack = () => consumeSince(config, new Map(Object.values(topics).map((t) => [t, new Map<number, bigint>()])));

describe('produceJourneyChunk', () => {
  after(async () => {
    await producer.close();
    const admin = createKafka(config).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: Object.values(topics) });
    await admin.disconnect();
  });

  test('sends the journey events of its time span and heartbeats what Kafka acknowledged', async () => {
    await producer.connect();
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const result = await env.run<[JourneyChunkInput], JourneyChunkResult, typeof produceJourneyChunk>(produceJourneyChunk, input);
    assert.equal(result.nextIndex, expected.length);
    assert.equal(result.arrived, false);
    assert.deepEqual(beats.at(-1), { acked: expected.length });
    const records = await readBack();
    assert.deepEqual(records.map((r) => r.event.eventId).sort(), expected.map((e) => e.eventId).sort());
  });

  test('a retried attempt resumes after the acknowledged events of its heartbeat, with the same ids', async () => {
    const env = new MockActivityEnvironment({ heartbeatDetails: { acked: 10 } });
    const result = await env.run<[JourneyChunkInput], JourneyChunkResult, typeof produceJourneyChunk>(produceJourneyChunk, input);
    assert.equal(result.nextIndex, expected.length);
    // The result counts the whole chunk: the first attempt's acknowledged prefix too.
    assert.equal(SOURCES.reduce((n, s) => n + result.sent[s], 0), expected.length);
    const records = await readBack();
    const counts = new Map<string, number>();
    for (const r of records) counts.set(r.event.eventId, (counts.get(r.event.eventId) ?? 0) + 1);
    expected.forEach((e, i) => assert.equal(counts.get(e.eventId), i < 10 ? 1 : 2, `event ${i}`));
  });

  test('a batch failing mid-chunk fails the attempt with the prefix before it heartbeated; the retry re-sends from its first event', async () => {
    const failFrom = 17;
    const failCount = 5;
    const resent: string[] = [];
    // The real producer, except that one batch of five events in the middle fails as the producer
    // fails a batch past its delivery timeout; what follows it goes through.
    const failing: EventSink = {
      send: async (event) => {
        const position = expected.findIndex((e) => e.eventId === event.eventId);
        if (position >= failFrom && position < failFrom + failCount) {
          const error = new DeliveryError(`${failCount} event(s) for ${topics.vehicle} were not acknowledged by Kafka (test)`, failCount);
          return { topic: topics[event.source], acked: Promise.reject(error) } satisfies Receipt;
        }
        return producer.send(event);
      },
    };
    const recording: EventSink = {
      send: (event) => {
        resent.push(event.eventId);
        return producer.send(event);
      },
    };
    const before = await snapshotOffsets(config, Object.values(topics));

    const first = new MockActivityEnvironment();
    const beats: { acked: number }[] = [];
    first.on('heartbeat', (d: { acked: number }) => beats.push(d));
    await assert.rejects(first.run(kafkaActivities(async () => failing).produceJourneyChunk, input), (err: ApplicationFailure) => {
      assert.equal(err.type, 'KafkaDeliveryFailed');
      assert.equal(err.nonRetryable, false);
      return true;
    });
    assert.deepEqual(beats.at(-1), { acked: failFrom }, 'the heartbeat stops at the first event Kafka did not acknowledge');
    assert.ok(beats.every((b) => b.acked <= failFrom), 'no heartbeat ever passed the failed batch');

    const retry = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
    const retried = kafkaActivities(async () => recording).produceJourneyChunk;
    const result = await retry.run<[JourneyChunkInput], JourneyChunkResult, typeof retried>(retried, input);
    assert.deepEqual(resent, expected.slice(failFrom).map((e) => e.eventId), 'the retry sends the generator\'s events from the first unacknowledged one on');
    assert.equal(SOURCES.reduce((n, s) => n + result.sent[s], 0), expected.length);

    const counts = new Map<string, number>();
    for (const r of await consumeSince(config, before)) counts.set(r.event.eventId, (counts.get(r.event.eventId) ?? 0) + 1);
    // The prefix once (first attempt), the failed batch once (the retry), the rest at least once
    // (the first attempt may have sent an event or two past the failed batch before it stopped).
    expected.forEach((e, i) => {
      const n = counts.get(e.eventId) ?? 0;
      if (i < failFrom + failCount) assert.equal(n, 1, `event ${i}`);
      else assert.ok(n >= 1, `event ${i}`);
    });
  });

  test('a fleet slice sends exactly its vehicles\' events of the fleet, in the fleet\'s order, chunk after chunk', async () => {
    const slicedFleet = { vehicles: 5, seed: 78, start: '2026-04-01T06:00:00Z' };
    const slice = { index: 1, firstVehicle: 1, vehicles: 3 };
    const mine = new Set(['vehicle-002', 'vehicle-003', 'vehicle-004']);
    const until = ['2026-04-01T06:04:00Z', '2026-04-01T06:09:00Z'];
    const generated = [...fleetEvents({ ...slicedFleet, start: new Date(slicedFleet.start) })].filter(
      (e) => mine.has(e.vehicleId) && Date.parse(e.eventTime) < Date.parse(until[1]!),
    );
    const sent: string[] = [];
    const sliceActivities = kafkaActivities(async () => ({
      send: (event) => {
        sent.push(event.eventId);
        return producer.send(event);
      },
    }));
    let fromIndex = 0;
    for (const [chunk, untilEventTime] of until.entries()) {
      const sliceInput: FleetSliceInput = { fleet: slicedFleet, slice, chunk, fromIndex, untilEventTime };
      const produce = sliceActivities.produceFleetSlice;
      const result = await new MockActivityEnvironment().run<[FleetSliceInput], JourneyChunkResult, typeof produce>(produce, sliceInput);
      assert.equal(result.nextIndex, generated.filter((e) => Date.parse(e.eventTime) < Date.parse(untilEventTime)).length);
      assert.equal(result.arrived, false);
      fromIndex = result.nextIndex;
    }
    assert.deepEqual(sent, generated.map((e) => e.eventId));
  });

  test('an invalid fleet is a non-retryable InvalidInput failure', async () => {
    const env = new MockActivityEnvironment();
    await assert.rejects(env.run(produceJourneyChunk, { ...input, fleet: { ...fleet, vehicles: 0 } }), (err: Error & { type?: string; nonRetryable?: boolean }) => {
      assert.equal(err.type, 'InvalidInput');
      assert.equal(err.nonRetryable, true);
      return true;
    });
  });
});
