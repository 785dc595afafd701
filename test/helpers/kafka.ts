// Reading back what tests produced: the records of some topics between two offset snapshots,
// so a test sees exactly its own records even on topics other tests write to.
import { randomUUID } from 'node:crypto';
import type { Config } from '../../config';
import { createKafka } from '../../kafka/client';
import type { SmartCityEvent } from '../../schemas';

export type Offsets = Map<string, Map<number, bigint>>;

export interface Consumed {
  topic: string;
  partition: number;
  offset: bigint;
  key: string;
  event: SmartCityEvent;
}

/** Deletes those of `topics` that exist (a test's own topics, when it is done). */
export async function deleteTopics(config: Config, topics: string[]): Promise<void> {
  const admin = createKafka(config).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    await admin.deleteTopics({ topics: topics.filter((t) => existing.has(t)) });
  } finally {
    await admin.disconnect();
  }
}

/** The high watermark of every partition of `topics` now. */
export async function snapshotOffsets(config: Config, topics: string[]): Promise<Offsets> {
  const admin = createKafka(config).admin();
  await admin.connect();
  try {
    const out: Offsets = new Map();
    for (const topic of topics) {
      const partitions = await admin.fetchTopicOffsets(topic);
      out.set(topic, new Map(partitions.map((p) => [p.partition, BigInt(p.high)])));
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

/** Every record written to `since`'s topics after that snapshot, up to the high watermarks now. */
export async function consumeSince(config: Config, since: Offsets, timeoutMs = 60_000): Promise<Consumed[]> {
  const until = await snapshotOffsets(config, [...since.keys()]);
  const remaining = new Map<string, bigint>();
  for (const [topic, partitions] of until) {
    for (const [partition, high] of partitions) {
      const from = since.get(topic)?.get(partition) ?? 0n;
      if (high > from) remaining.set(`${topic}/${partition}`, high);
    }
  }
  const out: Consumed[] = [];
  if (remaining.size === 0) return out;
  const consumer = createKafka(config).consumer({ groupId: `test-reader-${randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...since.keys()], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${out.length} records; partitions not finished: ${[...remaining.keys()].join(', ')}`)), timeoutMs);
      consumer
        .run({
          eachMessage: async ({ topic, partition, message }) => {
            const key = `${topic}/${partition}`;
            const high = remaining.get(key);
            const offset = BigInt(message.offset);
            if (high === undefined || offset >= high) return;
            out.push({ topic, partition, offset, key: message.key?.toString() ?? '', event: JSON.parse(message.value!.toString()) as SmartCityEvent });
            if (offset + 1n >= high) remaining.delete(key);
            if (remaining.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .then(() => {
          for (const [topic, partitions] of since) {
            for (const [partition, from] of partitions) consumer.seek({ topic, partition, offset: String(from) });
          }
        }, reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}
