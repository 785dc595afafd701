// The one way smartcity events get into Kafka. Events are accumulated in memory and sent in
// batches (one sendBatch across all topics per round trip), never one request per event.
//
// Ordering: Kafka key = vehicleId, so all events of a vehicle and source land in one partition in
// the order send() was called. Retries cannot reorder them because
//  - the producer is idempotent: the broker deduplicates a retried batch by its sequence numbers
//    and refuses a sequence gap instead of appending out of order;
//  - at most one batch is in flight at a time (our dispatch loop, plus maxInFlightRequests: 1 as
//    kafkajs requires for idempotence): kafkajs rolls the partition sequence back when a request
//    fails, so a second concurrent batch could take the failed batch's sequence numbers and be
//    written ahead of its retry;
//  - a batch that fails is retried, and nothing queued behind it is sent, until it is acknowledged
//    or its delivery timeout passes (like the Java producer's delivery.timeout.ms): a broker
//    restart delays a vehicle's stream but leaves no gap in it.
import type { Kafka, Message, Producer } from 'kafkajs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config';
import {
  KEY_PARTITIONER,
  KafkaClientError,
  createKafka,
  describeBrokerError,
  ensureTopics,
  isRetriable,
  kafkaLogSink,
  type KafkaClientOptions,
} from '../kafka/client';
import { TOPICS, validateEvent, type SmartCityEvent, type Source } from '../schemas';

export interface EventProducerOptions {
  /** Topic per source; TOPICS by default (tests and the bench point sources elsewhere). */
  topics?: Partial<Record<Source, string>>;
  /** Check each event against its schema before buffering it (default true). */
  validate?: boolean;
  /** Longest an event waits for its batch to fill before it is sent anyway. */
  lingerMs?: number;
  /** A batch is sent as soon as it holds this many events… */
  batchMaxEvents?: number;
  /** …or this many key + value bytes (keep under the broker's message.max.bytes, 1 MiB). */
  batchMaxBytes?: number;
  /** send() waits while this many events (buffered + in flight) are not yet acknowledged… */
  bufferMaxEvents?: number;
  /** …or while they add up to this many bytes. */
  bufferMaxBytes?: number;
  /** How long the leader waits for all in-sync replicas before answering (acks = all). */
  ackTimeoutMs?: number;
  /**
   * How long a batch is retried, counted from when its first event was accepted, before it and
   * everything queued behind it fail; config.kafka.deliveryTimeoutMs (SMARTCITY_KAFKA_DELIVERY_TIMEOUT) by default.
   */
  deliveryTimeoutMs?: number;
  /** Create missing topics on connect() with the configured partitions (default true). */
  ensureTopics?: boolean;
  /** Connection, timeout and logging settings of the underlying client. */
  client?: KafkaClientOptions;
}

export interface TopicStats {
  acked: number;
  ackedBytes: number;
  failed: number;
}

export interface ProducerStats {
  /** Per topic: events acknowledged by Kafka (acks = all) and their key + value bytes. */
  topics: Record<string, TopicStats>;
  acked: number;
  ackedBytes: number;
  failed: number;
  /** Accepted by send() but not yet acknowledged (waiting or in flight). */
  pending: number;
  pendingBytes: number;
}

/** What send() hands back once the event is buffered. */
export interface Receipt {
  topic: string;
  /** Settles when Kafka acknowledges the event's batch; rejects with DeliveryError if it fails. */
  acked: Promise<void>;
}

export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
  constructor(
    readonly eventId: string,
    readonly problems: string[],
  ) {
    super(`event ${eventId} is invalid, not sent: ${problems.join('; ')}`);
  }
}

/**
 * Events that Kafka did not acknowledge within the delivery timeout (or refused for good): a batch
 * and what was queued behind it, or all failures seen by flush()/close().
 */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(
    message: string,
    readonly events: number,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

export class ProducerClosedError extends Error {
  override name = 'ProducerClosedError';
}

/**
 * The outcome of one event. Its promise is made only when someone asks for it: most callers rely
 * on flush()/close(), and a promise per event costs about a microsecond of CPU plus garbage.
 */
class Delivery implements Receipt {
  private outcome: true | Error | undefined;
  private promise: Promise<void> | undefined;
  private settlePromise: ((outcome: true | Error) => void) | undefined;

  constructor(readonly topic: string) {}

  get acked(): Promise<void> {
    if (!this.promise) {
      if (this.outcome === true) this.promise = Promise.resolve();
      else if (this.outcome) this.promise = Promise.reject(this.outcome);
      else {
        this.promise = new Promise<void>((resolve, reject) => {
          this.settlePromise = (outcome) => (outcome === true ? resolve() : reject(outcome));
        });
      }
      // Reading `acked` and dropping it must not crash the process with an unhandled rejection.
      this.promise.catch(() => undefined);
    }
    return this.promise;
  }

  settle(outcome: true | Error): void {
    this.outcome = outcome;
    this.settlePromise?.(outcome);
  }
}

interface Pending {
  topic: string;
  message: Message;
  bytes: number;
  bufferedAt: number;
  delivery: Delivery;
}

const DEFAULTS = {
  lingerMs: 20,
  batchMaxEvents: 2000,
  batchMaxBytes: 900 * 1024,
  bufferMaxEvents: 20_000,
  bufferMaxBytes: 16 * 1024 * 1024,
  ackTimeoutMs: 30_000,
};

/** kafkajs's own retries within one attempt of a batch (a leader moving, a dropped connection). */
const ATTEMPT_RETRIES = 2;
/** Backoff between attempts of a failed batch: doubling from the first, capped at the second. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 5_000;
/** While a batch keeps failing, one line says so this often (kafkajs's own lines are throttled). */
const OUTAGE_REPORT_EVERY_MS = 30_000;

/**
 * Usage: `await connect()`, then `await send(event)` for each event, then `await close()`.
 *
 * A batch that fails is retried with backoff until its delivery timeout; meanwhile later events
 * wait in the buffer (and send() waits for room once it is full). Past the timeout, or at once for
 * an error retrying cannot fix, the batch and everything accepted behind it fail: their receipts
 * reject with one DeliveryError, send() calls waiting for room reject with it, stats().failed
 * counts them and a flush()/close() waiting meanwhile rejects. Receipts therefore settle in send() order.
 * Events sent after that go out again normally: whoever resends must resend from the first failed
 * event (eventIds are stable, so the lake deduplicates what was already written).
 */
export class EventProducer {
  private readonly kafka: Kafka;
  private readonly topics: Record<Source, string>;
  private readonly opts: typeof DEFAULTS & EventProducerOptions;
  private producer: Producer;
  private state: 'new' | 'open' | 'closing' | 'closed' = 'new';
  /** A failed batch may have reached the broker; the next one needs a fresh producer id. */
  private resetBeforeNextBatch = false;

  private readonly buffer: Pending[] = [];
  private bufferBytes = 0;
  private inFlight: Pending[] = [];
  private inFlightBytes = 0;
  private sending = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private closing: Promise<ProducerStats> | undefined;
  private flushing = 0;
  /** send() calls waiting for room, served strictly in call order so order is kept. */
  private readonly roomWaiters: { pending: Pending; admitted: () => void; refused: (err: DeliveryError) => void }[] = [];
  private idleWaiters: (() => void)[] = [];

  private readonly perTopic = new Map<string, TopicStats>();
  private failed = 0;
  private lastFailure: DeliveryError | undefined;
  /** When the current run of failed attempts began; undefined while Kafka answers. */
  private failingSince: number | undefined;
  private outageReportedAt = 0;
  /** Events failed since failingSince: a recovery after none lost nothing. */
  private failedInOutage = 0;
  private readonly deliveryTimeoutMs: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly config: Config,
    options: EventProducerOptions = {},
  ) {
    this.opts = { ...DEFAULTS, ...options };
    if (this.opts.batchMaxBytes > this.opts.bufferMaxBytes || this.opts.batchMaxEvents > this.opts.bufferMaxEvents) {
      throw new RangeError('EventProducer: a batch must fit in the buffer (batchMax* ≤ bufferMax*)');
    }
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? config.kafka.deliveryTimeoutMs;
    this.log = kafkaLogSink(options.client);
    this.topics = { ...TOPICS, ...options.topics };
    for (const topic of new Set(Object.values(this.topics))) this.perTopic.set(topic, { acked: 0, ackedBytes: 0, failed: 0 });
    this.kafka = createKafka(config, options.client);
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: KEY_PARTITIONER,
      // A missing topic must be an error, not a broker-default topic with the wrong partitions.
      allowAutoTopicCreation: false,
      retry: { retries: ATTEMPT_RETRIES },
    });
  }

  /** Connects (and by default creates missing topics); fails with a message naming the brokers. */
  async connect(): Promise<void> {
    if (this.state !== 'new') throw new ProducerClosedError(`EventProducer.connect(): producer is already ${this.state}`);
    if (this.opts.ensureTopics !== false) await ensureTopics(this.config, [...this.perTopic.keys()], this.opts.client);
    await this.connectProducer();
    this.state = 'open';
  }

  private async connectProducer(): Promise<void> {
    try {
      await this.producer.connect();
    } catch (err) {
      await this.producer.disconnect().catch(() => undefined);
      throw new KafkaClientError(describeBrokerError(err, this.config.kafka.brokers), this.config.kafka.brokers, { cause: err });
    }
  }

  /**
   * Buffers one event for sending. Resolves as soon as the buffer has room for it (backpressure:
   * await each call and a fast generator is paced by Kafka); the receipt's `acked` settles when
   * Kafka acknowledges it. Rejects with InvalidEventError for an event that breaks its schema.
   */
  async send(event: SmartCityEvent): Promise<Receipt> {
    if (this.state !== 'open') {
      throw new ProducerClosedError(this.state === 'new' ? 'EventProducer.send() before connect()' : `EventProducer.send(): producer is ${this.state}`);
    }
    if (this.opts.validate !== false) {
      const result = validateEvent(event);
      if (!result.ok) throw new InvalidEventError(String((event as { eventId?: unknown }).eventId), result.errors);
    }
    const topic = this.topics[event.source];
    const value = Buffer.from(JSON.stringify(event));
    const bytes = Buffer.byteLength(event.vehicleId) + value.length;
    if (bytes > this.opts.batchMaxBytes) {
      throw new InvalidEventError(event.eventId, [`${bytes} bytes, more than batchMaxBytes (${this.opts.batchMaxBytes})`]);
    }
    const delivery = new Delivery(topic);
    const pending: Pending = {
      topic,
      // No headers: source and schemaVersion are in the value already, and encoding two headers
      // per record costs kafkajs about 15% of its throughput.
      message: { key: event.vehicleId, value },
      bytes,
      bufferedAt: 0,
      delivery,
    };
    if (this.roomWaiters.length === 0 && this.hasRoom(bytes)) {
      this.accept(pending);
      this.schedule();
    } else {
      const admitted = new Promise<void>((resolve, reject) => this.roomWaiters.push({ pending, admitted: resolve, refused: reject }));
      this.schedule();
      await admitted;
    }
    return delivery;
  }

  private accept(p: Pending): void {
    p.bufferedAt = Date.now();
    this.buffer.push(p);
    this.bufferBytes += p.bytes;
  }

  private hasRoom(bytes: number): boolean {
    const events = this.buffer.length + this.inFlight.length;
    const used = this.bufferBytes + this.inFlightBytes;
    return events === 0 || (events < this.opts.bufferMaxEvents && used + bytes <= this.opts.bufferMaxBytes);
  }

  /** Moves waiting events into the buffer here, not in their send(), so room is never overbooked. */
  private admitWaiters(): void {
    while (this.roomWaiters.length > 0 && this.hasRoom(this.roomWaiters[0]!.pending.bytes)) {
      const { pending, admitted } = this.roomWaiters.shift()!;
      this.accept(pending);
      admitted();
    }
  }

  private batchIsFull(): boolean {
    return this.buffer.length >= this.opts.batchMaxEvents || this.bufferBytes >= this.opts.batchMaxBytes;
  }

  private schedule(): void {
    const oldest = this.buffer[0];
    if (this.sending || !oldest) return;
    const waited = Date.now() - oldest.bufferedAt;
    if (this.flushing > 0 || this.batchIsFull() || waited >= this.opts.lingerMs || this.roomWaiters.length > 0) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      // sendNextBatch handles Kafka's errors itself; anything else is a bug, said out loud.
      this.sendNextBatch().catch((err: unknown) => this.log(`kafka: the event producer's send loop failed (a bug): ${(err as Error).stack ?? String(err)}`));
    } else {
      this.lingerTimer ??= setTimeout(() => {
        this.lingerTimer = undefined;
        this.schedule();
      }, this.opts.lingerMs - waited);
    }
  }

  private takeBatch(): Pending[] {
    let count = 0;
    let bytes = 0;
    while (count < this.buffer.length && count < this.opts.batchMaxEvents) {
      const next = this.buffer[count]!.bytes;
      if (count > 0 && bytes + next > this.opts.batchMaxBytes) break;
      bytes += next;
      count++;
    }
    this.bufferBytes -= bytes;
    this.inFlightBytes = bytes;
    return this.buffer.splice(0, count);
  }

  private async sendNextBatch(): Promise<void> {
    this.sending = true;
    // In-flight events still count against the buffer bound until Kafka answers for them.
    const batch = (this.inFlight = this.takeBatch());
    const byTopic = new Map<string, Message[]>();
    for (const p of batch) {
      const messages = byTopic.get(p.topic);
      if (messages) messages.push(p.message);
      else byTopic.set(p.topic, [p.message]);
    }
    const deadline = batch[0]!.bufferedAt + this.deliveryTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.attempt(byTopic);
        this.delivered(batch);
        break;
      } catch (err) {
        // After a failed attempt kafkajs rewinds its sequence numbers although the broker may have
        // written the batch; reusing them could make the broker drop the next batch as a duplicate.
        this.resetBeforeNextBatch = true;
        const now = Date.now();
        this.failingSince ??= now;
        // Retried until the delivery timeout has passed, like the Java producer's delivery.timeout.ms:
        // the last wait is cut short so that one attempt is made at the deadline itself.
        if (!isRetriable(err) || now >= deadline) {
          this.giveUp(batch, [...byTopic.keys()], err, now - this.failingSince);
          break;
        }
        this.reportOutage(err, now);
        await sleep(Math.min(BACKOFF_FIRST_MS * 2 ** attempt, BACKOFF_MAX_MS, deadline - now));
      }
    }
    this.inFlight = [];
    this.inFlightBytes = 0;
    this.sending = false;
    this.admitWaiters();
    this.schedule();
    if (!this.sending && this.buffer.length === 0 && this.roomWaiters.length === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of idle) wake();
    }
  }

  /** One attempt at a batch, on a fresh producer id after a failure. Throws what kafkajs threw. */
  private async attempt(byTopic: Map<string, Message[]>): Promise<void> {
    if (this.resetBeforeNextBatch) {
      await this.producer.disconnect().catch(() => undefined);
      this.producer = this.newProducer();
      await this.connectProducer();
      this.resetBeforeNextBatch = false;
    }
    await this.producer.sendBatch({
      acks: -1,
      timeout: this.opts.ackTimeoutMs,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  }

  private delivered(batch: Pending[]): void {
    if (this.failingSince !== undefined) {
      const lost = this.failedInOutage ? `; ${this.failedInOutage} event(s) failed meanwhile` : ', in order, nothing skipped';
      this.log(`kafka: delivering again after ${seconds(Date.now() - this.failingSince)} of failed attempts${lost}`);
      this.failingSince = undefined;
      this.outageReportedAt = 0;
      this.failedInOutage = 0;
    }
    for (const p of batch) {
      const stats = this.perTopic.get(p.topic)!;
      stats.acked++;
      stats.ackedBytes += p.bytes;
      p.delivery.settle(true);
    }
  }

  /** One line when a batch starts failing and one every OUTAGE_REPORT_EVERY_MS after, not one per attempt. */
  private reportOutage(err: unknown, now: number): void {
    if (now - this.outageReportedAt < OUTAGE_REPORT_EVERY_MS) return;
    this.outageReportedAt = now;
    const waiting = this.inFlight.length + this.buffer.length;
    this.log(
      `kafka: holding ${waiting} event(s) in order, retrying each batch for up to ${seconds(this.deliveryTimeoutMs)} (SMARTCITY_KAFKA_DELIVERY_TIMEOUT): ` +
        describeBrokerError(err, this.config.kafka.brokers, now - this.failingSince!),
    );
  }

  /** Fails the batch, everything accepted behind it and every send() waiting for room, in that order. */
  private giveUp(batch: Pending[], topics: string[], err: unknown, failingForMs: number): void {
    const reason = describeBrokerError(err, this.config.kafka.brokers, failingForMs);
    const queued = this.buffer.splice(0);
    this.bufferBytes = 0;
    const failed = [...batch, ...queued];
    const timedOut = isRetriable(err) ? `, past the delivery timeout of ${seconds(this.deliveryTimeoutMs)} (SMARTCITY_KAFKA_DELIVERY_TIMEOUT)` : '';
    const error = new DeliveryError(
      `${failed.length} event(s) for ${[...new Set([...topics, ...queued.map((p) => p.topic)])].join(', ')} were not acknowledged by Kafka${timedOut}: ${reason}`,
      failed.length,
      { cause: err },
    );
    this.failed += failed.length;
    this.failedInOutage += failed.length;
    this.lastFailure = error;
    for (const p of failed) {
      this.perTopic.get(p.topic)!.failed++;
      p.delivery.settle(error);
    }
    for (const waiter of this.roomWaiters.splice(0)) waiter.refused(error);
  }

  /**
   * Sends everything buffered now, without waiting for the linger time, and waits until Kafka has
   * answered for all of it. Rejects with DeliveryError if any event failed meanwhile.
   */
  async flush(): Promise<ProducerStats> {
    const failedBefore = this.failed;
    this.flushing++;
    try {
      if (this.sending || this.buffer.length > 0 || this.roomWaiters.length > 0) {
        const idle = new Promise<void>((wake) => this.idleWaiters.push(wake));
        this.schedule();
        await idle;
      }
    } finally {
      this.flushing--;
    }
    const failed = this.failed - failedBefore;
    if (failed > 0) {
      throw new DeliveryError(`${failed} event(s) were not acknowledged by Kafka; last failure: ${this.lastFailure?.message}`, failed, {
        cause: this.lastFailure,
      });
    }
    return this.stats();
  }

  /** Refuses new events, sends everything accepted so far, then disconnects. */
  close(): Promise<ProducerStats> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<ProducerStats> {
    const wasOpen = this.state === 'open';
    this.state = 'closing';
    try {
      if (wasOpen) await this.flush();
    } finally {
      clearTimeout(this.lingerTimer);
      await this.producer.disconnect();
      this.state = 'closed';
    }
    return this.stats();
  }

  /** A snapshot of what Kafka has acknowledged so far; cheap, callable at any time. */
  stats(): ProducerStats {
    const topics: Record<string, TopicStats> = {};
    let acked = 0;
    let ackedBytes = 0;
    for (const [topic, s] of this.perTopic) {
      topics[topic] = { ...s };
      acked += s.acked;
      ackedBytes += s.ackedBytes;
    }
    return {
      topics,
      acked,
      ackedBytes,
      failed: this.failed,
      pending: this.buffer.length + this.inFlight.length,
      pendingBytes: this.bufferBytes + this.inFlightBytes,
    };
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}
