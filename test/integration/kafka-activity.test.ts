// produceJourneyChunk against the real broker, in the SDK's mock activity environment: a chunk
// sends the journey's events of its time span, heartbeats what Kafka acknowledged, and a retried
// attempt resumes from its heartbeat, re-sending the rest with the same event ids.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { kafkaActivities } from '../../activities/kafka';
import type { JourneyChunkInput, JourneyChunkResult } from '../../activities/types';
import { loadConfig } from '../../config';
import { createKafka } from '../../kafka/client';
import { EventProducer } from '../../producers/event-producer';
import { journeyEvents } from '../../producers/fleet';
import { SOURCES, type Source } from '../../schemas';
import { consumeSince } from '../helpers/kafka';

const config = loadConfig();
const run = randomUUID().slice(0, 8);
const topics = Object.fromEntries(SOURCES.map((s) => [s, `chunk_${run}_${s}`])) as Record<Source, string>;
const producer = new EventProducer(config, { topics });
const activities = kafkaActivities(config, async () => producer);
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
    const sentAgain = SOURCES.reduce((n, s) => n + result.sent[s], 0);
    assert.equal(sentAgain, expected.length - 10);
    const records = await readBack();
    const counts = new Map<string, number>();
    for (const r of records) counts.set(r.event.eventId, (counts.get(r.event.eventId) ?? 0) + 1);
    expected.forEach((e, i) => assert.equal(counts.get(e.eventId), i < 10 ? 1 : 2, `event ${i}`));
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
