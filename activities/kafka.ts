// Kafka activities (local and aws alike: only the brokers and their TLS/SASL settings differ): a
// fleet's events produced chunk by chunk, either one vehicle's journey (runs started before fleets
// were sliced) or a slice of consecutive vehicles merged by event time.
//
// What a chunk heartbeats is its acknowledged prefix: every event of the stream before `acked` was
// acknowledged by Kafka. Receipts of one producer settle in send order and the producer sends
// nothing past a failed batch until it gives up on it, so the prefix only ever grows, and a retried
// attempt resumes exactly at the first event Kafka had not acknowledged (re-sending, with the same
// ids, at most what was in flight).
import { activityInfo, Context, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { DeliveryError, type EventProducer } from '../producers/event-producer';
import { sliceEvents, type FleetOptions } from '../producers/fleet';
import { SOURCES, type SmartCityEvent, type Source } from '../schemas';
import { fleetProgressSignal } from '../workflows/fleet-simulation';
import type { FleetSliceInput, FleetSpec, JourneyChunkInput, JourneyChunkResult, Pacing, SourceCounts } from './types';

/** Heartbeats this often (the workflows' heartbeat timeout is 30 s)… */
const HEARTBEAT_EVERY_MS = 5_000;
/**
 * …and a running slice reports its progress at most this often: each report is a signal, and so a
 * few events in the fleet's history (8 slices: about 3 events a second, continue-as-new every half hour).
 */
const REPORT_EVERY_MS = 10_000;
/** Streams kept between chunks, least recently used dropped first (a few per running fleet). */
const MAX_CACHED_STREAMS = 64;

/** What a chunk heartbeats: every event of its stream before `acked` was acknowledged by Kafka. */
interface ChunkHeartbeat {
  acked: number;
}

/** What a chunk needs of the producer. */
export type EventSink = Pick<EventProducer, 'send'>;

/** A part of a fleet (one vehicle, or a slice) and the span of it one call produces. */
interface Chunk {
  fleet: FleetSpec;
  firstVehicle: number;
  vehicles: number;
  fromIndex: number;
  untilEventTime: string;
  pacing?: Pacing;
}

/** A part's event stream, positioned: `next` is the event at `position`, already taken from `rest`. */
interface Stream {
  rest: Generator<SmartCityEvent>;
  position: number;
  next: IteratorResult<SmartCityEvent>;
}

function fleetOptions(fleet: FleetSpec): FleetOptions {
  const start = new Date(fleet.start);
  if (Number.isNaN(start.getTime())) throw ApplicationFailure.nonRetryable(`fleet.start is not a time: ${fleet.start}`, 'InvalidInput');
  return {
    vehicles: fleet.vehicles,
    seed: fleet.seed,
    start,
    route: fleet.route,
    tickSeconds: fleet.tickSeconds,
  };
}

const zeroCounts = (): SourceCounts => Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;

/**
 * Streams left where the last chunk of their part ended. Regenerating a stream is deterministic but
 * costs the whole journey so far (tens of µs per event: minutes for a large slice late in its
 * journey), so the next chunk of a part on this worker continues the stream instead. A chunk takes
 * its stream out while it runs and puts it back only when it completes, so a failed or cancelled
 * attempt leaves nothing half-consumed behind; a worker without the stream regenerates it.
 */
class StreamCache {
  private readonly streams = new Map<string, Stream>();

  static key(c: Chunk): string {
    return JSON.stringify([c.fleet.vehicles, c.fleet.seed, c.fleet.start, c.fleet.route ?? null, c.fleet.tickSeconds ?? null, c.firstVehicle, c.vehicles]);
  }

  take(key: string, position: number): Stream | undefined {
    const stream = this.streams.get(key);
    if (stream?.position !== position) return undefined;
    this.streams.delete(key);
    return stream;
  }

  put(key: string, stream: Stream): void {
    if (stream.next.done) return;
    this.streams.set(key, stream);
    if (this.streams.size > MAX_CACHED_STREAMS) this.streams.delete(this.streams.keys().next().value!);
  }
}

function openStream(c: Chunk): Stream {
  let rest;
  try {
    rest = sliceEvents(fleetOptions(c.fleet), c.firstVehicle, c.vehicles);
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    throw ApplicationFailure.nonRetryable(`invalid fleet: ${(err as Error).message}`, 'InvalidInput');
  }
  return { rest, position: 0, next: rest.next() };
}

function advance(stream: Stream): SmartCityEvent {
  const event = stream.next.value as SmartCityEvent;
  stream.next = stream.rest.next();
  stream.position++;
  return event;
}

/**
 * The acknowledged prefix of a chunk's stream: it grows over events that are all acknowledged and
 * stops for good at the first one that failed. The producer answers in send order, but nothing
 * here depends on that.
 */
class AckedPrefix {
  readonly counts = zeroCounts();
  failure: Error | undefined;
  private failedAt = Infinity;
  /** Acknowledged events past the prefix, by stream position. */
  private readonly ahead = new Map<number, Source>();
  private outstanding = 0;
  private drained: (() => void) | undefined;

  /** Every event of the stream before `position` was acknowledged. */
  constructor(public position: number) {}

  /** Counts an event as acknowledged without sending it (an earlier attempt got it acknowledged). */
  skip(source: Source): void {
    this.counts[source]++;
    this.position++;
  }

  track(position: number, source: Source, acked: Promise<void>): void {
    this.outstanding++;
    acked.then(
      () => {
        this.ahead.set(position, source);
        for (let next = this.ahead.get(this.position); next !== undefined && this.position < this.failedAt; next = this.ahead.get(this.position)) {
          this.ahead.delete(this.position);
          this.skip(next);
        }
        this.answered();
      },
      (err: Error) => {
        this.failure ??= err;
        this.failedAt = Math.min(this.failedAt, position);
        this.answered();
      },
    );
  }

  /** Resolves once every tracked event has its answer. */
  settled(): Promise<void> {
    return this.outstanding === 0 ? Promise.resolve() : new Promise((resolve) => (this.drained = resolve));
  }

  private answered(): void {
    if (--this.outstanding === 0) this.drained?.();
  }
}

/** Regenerating is CPU-bound: hand the event loop back this often, so heartbeats and other activities go on. */
const YIELD_EVERY_EVENTS = 2_000;

/** Takes events off the stream up to `position` (or its end), passing each to `each`; stops early when cancelled. */
async function skipTo(stream: Stream, position: number, signal: AbortSignal, each: (event: SmartCityEvent) => void = () => undefined): Promise<void> {
  while (stream.position < position && !stream.next.done && !signal.aborted) {
    each(advance(stream));
    if (stream.position % YIELD_EVERY_EVENTS === 0) await yieldToEventLoop();
  }
}

/**
 * Sends the events of `c` (resuming after the acknowledged prefix of an earlier attempt), keeps its
 * heartbeat at the acknowledged prefix, and reports the acknowledged counts of the chunk to
 * `report` every few seconds. Fails retryably when Kafka did not acknowledge an event within the
 * producer's delivery timeout, after waiting for the answers to what it had already sent.
 */
async function produceChunk(
  producer: () => Promise<EventSink>,
  cache: StreamCache,
  c: Chunk,
  report?: (acked: SourceCounts) => void,
): Promise<JourneyChunkResult> {
  const key = StreamCache.key(c);
  // Opened before connecting, so a bad fleet fails at once even with Kafka away.
  const stream = cache.take(key, c.fromIndex) ?? openStream(c);
  let kafka;
  try {
    kafka = await producer();
  } catch (err) {
    cache.put(key, stream);
    throw err;
  }
  const signal = Context.current().cancellationSignal;
  const resumed = Math.max(c.fromIndex, (activityInfo().heartbeatDetails as ChunkHeartbeat | undefined)?.acked ?? 0);
  const prefix = new AckedPrefix(c.fromIndex);
  let reported = -1;
  let reportedAt = Date.now();
  const beat = () => {
    // Before the chunk's own events are reached, what was acknowledged is what the last heartbeat said.
    heartbeat({
      acked: Math.max(prefix.position, resumed),
    } satisfies ChunkHeartbeat);
    if (report && prefix.position !== reported && Date.now() - reportedAt >= REPORT_EVERY_MS - HEARTBEAT_EVERY_MS / 2) {
      reported = prefix.position;
      reportedAt = Date.now();
      report({ ...prefix.counts });
    }
  };
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    // Regenerate up to where this chunk starts, then count (without sending) what an earlier
    // attempt of it got acknowledged.
    await skipTo(stream, c.fromIndex, signal);
    await skipTo(stream, resumed, signal, (event) => prefix.skip(event.source));
    const until = Date.parse(c.untilEventTime);
    while (!stream.next.done && !signal.aborted && !prefix.failure) {
      const at = Date.parse(stream.next.value.eventTime);
      if (at >= until) break;
      if (c.pacing) {
        const dueInMs = c.pacing.wallAnchorMs + (at - c.pacing.simAnchorMs) / c.pacing.speedup - Date.now();
        // A paced wait can be long (a late departure at speedup 1 is minutes away); the timer
        // keeps heartbeating through it.
        if (dueInMs > 2) await sleep(dueInMs, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) break;
      }
      const position = stream.position;
      const event = advance(stream);
      try {
        prefix.track(position, event.source, (await kafka.send(event)).acked);
      } catch (err) {
        // The producer refuses events that were waiting for room when it gave up on a batch.
        if (!(err instanceof DeliveryError)) throw err;
        prefix.failure ??= err;
      }
    }
    await prefix.settled();
  } finally {
    clearInterval(timer);
  }
  beat();
  if (prefix.failure) {
    // The message says it all; kafkajs's cause chain (stacks of every retry) would make the failure
    // too large for Temporal to keep.
    throw ApplicationFailure.retryable(
      `${prefix.failure.message} (this chunk resumes from event ${prefix.position} of its stream on retry)`,
      'KafkaDeliveryFailed',
    );
  }
  if (signal.aborted) throw signal.reason;
  cache.put(key, stream);
  return {
    nextIndex: stream.position,
    arrived: stream.next.done === true,
    sent: prefix.counts,
  };
}

export function kafkaActivities(producer: () => Promise<EventSink>) {
  const cache = new StreamCache();
  return {
    /** One vehicle's journey from `fromIndex` up to `untilEventTime` (or arrival). */
    produceJourneyChunk: (input: JourneyChunkInput): Promise<JourneyChunkResult> =>
      produceChunk(producer, cache, {
        ...input,
        firstVehicle: input.vehicleIndex,
        vehicles: 1,
      }),

    /**
     * A slice of the fleet from `fromIndex` of its merged stream up to `untilEventTime` (or until
     * every vehicle of it has arrived), reporting the acknowledged counts of the chunk to its
     * workflow every few seconds so the fleet's status counts chunks still running.
     */
    produceFleetSlice: async (input: FleetSliceInput): Promise<JourneyChunkResult> => {
      const { workflowExecution: run } = activityInfo();
      const context = Context.current();
      const report = (acked: SourceCounts) => {
        // Progress is a courtesy: a report that does not arrive is replaced by the next one, and
        // the chunk's result carries the totals anyway.
        const signalled = async () => {
          if (!run) throw new Error('the activity was not started by a workflow');
          await context.client.workflow.getHandle(run.workflowId, run.runId).signal(fleetProgressSignal, {
            slice: input.slice.index,
            chunk: input.chunk,
            acked,
          });
        };
        signalled().catch((err: unknown) => {
          log.warn('fleet slice progress report not delivered', {
            error: (err as Error).message,
          });
        });
      };
      return produceChunk(
        producer,
        cache,
        {
          ...input,
          firstVehicle: input.slice.firstVehicle,
          vehicles: input.slice.vehicles,
        },
        report,
      );
    },
  };
}
