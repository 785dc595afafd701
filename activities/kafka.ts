// Kafka activities (local and aws alike: only the brokers and their TLS/SASL settings differ).
import { activityInfo, Context, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config';
import { EventProducer } from '../producers/event-producer';
import { journeyEvents, type FleetOptions } from '../producers/fleet';
import { SOURCES } from '../schemas';
import type { FleetSpec, JourneyChunkInput, JourneyChunkResult, SourceCounts } from './types';

const HEARTBEAT_EVERY_MS = 5_000;

/** What a journey chunk heartbeats: every event before `acked` was acknowledged by Kafka. */
interface ChunkHeartbeat {
  acked: number;
}

function fleetOptions(fleet: FleetSpec): FleetOptions {
  const start = new Date(fleet.start);
  if (Number.isNaN(start.getTime())) throw ApplicationFailure.nonRetryable(`fleet.start is not a time: ${fleet.start}`, 'InvalidInput');
  return { vehicles: fleet.vehicles, seed: fleet.seed, start, route: fleet.route, tickSeconds: fleet.tickSeconds };
}

export function kafkaActivities(config: Config, producer: () => Promise<EventProducer>) {
  return {
    /**
     * Sends one vehicle's journey events from `fromIndex` up to `untilEventTime` (or arrival).
     * Regenerating the journey is cheap and deterministic, so a retried attempt resumes at the
     * last acknowledged event from its heartbeat and re-sends what follows with the same ids.
     */
    async produceJourneyChunk(input: JourneyChunkInput): Promise<JourneyChunkResult> {
      let events;
      try {
        events = journeyEvents(fleetOptions(input.fleet), input.vehicleIndex);
      } catch (err) {
        throw ApplicationFailure.nonRetryable(`invalid fleet: ${(err as Error).message}`, 'InvalidInput');
      }
      const resumed = (activityInfo().heartbeatDetails as ChunkHeartbeat | undefined)?.acked;
      const from = Math.max(input.fromIndex, resumed ?? 0);
      const until = Date.parse(input.untilEventTime);
      const signal = Context.current().cancellationSignal;
      const kafka = await producer();
      const sent = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
      const acks: Promise<void>[] = [];
      let acked = from;
      let index = 0;
      let arrived = true;
      for (const event of events) {
        if (index < from) {
          index++;
          continue;
        }
        const at = Date.parse(event.eventTime);
        if (at >= until) {
          arrived = false;
          break;
        }
        if (input.pacing) {
          const { speedup, wallAnchorMs, simAnchorMs } = input.pacing;
          const dueAt = wallAnchorMs + (at - simAnchorMs) / speedup;
          // A paced wait can be long (a late departure at speedup 1 is minutes away): keep
          // heartbeating through it, or the attempt would time out while merely waiting.
          while (!signal.aborted && dueAt - Date.now() > 2) {
            await sleep(Math.min(dueAt - Date.now(), HEARTBEAT_EVERY_MS), undefined, { signal }).catch(() => undefined);
            heartbeat({ acked } satisfies ChunkHeartbeat);
          }
        }
        if (signal.aborted) break;
        const position = index + 1;
        const receipt = await kafka.send(event);
        // Receipts of one producer settle in send order, so `acked` only moves forward.
        acks.push(
          receipt.acked.then(() => {
            acked = Math.max(acked, position);
            heartbeat({ acked } satisfies ChunkHeartbeat);
          }),
        );
        sent[event.source]++;
        index++;
      }
      await kafka.flush();
      await Promise.all(acks);
      heartbeat({ acked } satisfies ChunkHeartbeat);
      if (signal.aborted) throw signal.reason;
      return { nextIndex: index, arrived, sent };
    },
  };
}
