// fleetSimulation: drives every vehicle's journey into Kafka, one vehicle per concurrent loop of
// produceJourneyChunk calls, each covering a few simulated minutes. The activity heartbeats its
// position and resumes from it on retry, so the workflow keeps only where each journey stands.
// Pause and resume take effect at chunk boundaries; time spent paused shifts the pacing anchor so
// a resumed fleet does not rush to catch up.
import { condition, continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import type { FleetSpec, JourneyChunkInput, PipelineActivities, SourceCounts } from '../activities/types';
import { ZERO_COUNTS, addCounts, countsSchema } from './counts';
import { iso, isoTime, parseInput } from './input';
import { MINUTE_MS } from './windows';

const CHUNK_MS = 5 * MINUTE_MS;

const vehicleStateSchema = z
  .object({
    vehicleIndex: z.number().int().nonnegative(),
    nextIndex: z.number().int().nonnegative(),
    arrived: z.boolean(),
    /** Event time up to which the journey has been produced, epoch ms. */
    producedUntilMs: z.number(),
    sent: countsSchema,
  })
  .strict();
type VehicleState = z.output<typeof vehicleStateSchema>;

const fleetStateSchema = z
  .object({
    vehicles: z.array(vehicleStateSchema),
    paused: z.boolean(),
    pausedAtMs: z.number().optional(),
    /** Wall time at which event time `start` is due; moved forward by every pause. */
    wallAnchorMs: z.number(),
    continuedAsNewCount: z.number().int().nonnegative(),
  })
  .strict();
type FleetState = z.output<typeof fleetStateSchema>;

export const fleetSimulationInputSchema = z
  .object({
    // One workflow holds every journey's activity; Temporal caps pending activities per workflow at 2000.
    vehicles: z.number().int().min(1).max(1000).default(3),
    seed: z.number().int().default(1),
    /** Departure of the first vehicle; default: when the workflow starts. */
    start: isoTime.optional(),
    /** Simulated seconds per wall-clock second. */
    speedup: z.number().positive().max(100_000).default(1),
    asFastAsPossible: z.boolean().default(false),
    /** Stop after this much simulated time; default: when every vehicle has arrived. */
    durationMinutes: z.number().positive().optional(),
    route: z.string().min(1).optional(),
    tickSeconds: z.number().positive().max(3600).optional(),
    historyThreshold: z.number().int().min(50).max(40_000).default(5000),
    /** Carried across continue-as-new; not for people. */
    state: fleetStateSchema.optional(),
  })
  .strict()
  .refine((i) => !i.state || i.state.vehicles.length === i.vehicles, { error: 'must hold one entry per vehicle', path: ['state', 'vehicles'] });
export type FleetSimulationInput = z.input<typeof fleetSimulationInputSchema>;

export interface FleetVehicleStatus {
  vehicleIndex: number;
  nextIndex: number;
  arrived: boolean;
  sent: SourceCounts;
}

export interface FleetStatus {
  paused: boolean;
  start: string;
  vehicles: FleetVehicleStatus[];
  totals: SourceCounts;
  continuedAsNewCount: number;
}

export interface FleetSimulationResult {
  totals: SourceCounts;
  vehicles: number;
  arrived: number;
  endedBy: 'arrival' | 'duration';
}

export const fleetPauseSignal = defineSignal('pause');
export const fleetResumeSignal = defineSignal('resume');
export const fleetStatusQuery = defineQuery<FleetStatus>('status');

export async function fleetSimulation(rawInput?: FleetSimulationInput): Promise<FleetSimulationResult> {
  const input = parseInput('fleetSimulation', fleetSimulationInputSchema, rawInput);
  const startMs = input.start ?? Date.now();
  const endMs = input.durationMinutes === undefined ? Infinity : startMs + input.durationMinutes * MINUTE_MS;
  const fleet: FleetSpec = { vehicles: input.vehicles, seed: input.seed, start: iso(startMs), route: input.route, tickSeconds: input.tickSeconds };
  const state: FleetState = input.state ?? {
    vehicles: Array.from({ length: input.vehicles }, (_, vehicleIndex) => ({ vehicleIndex, nextIndex: 0, arrived: false, producedUntilMs: startMs, sent: ZERO_COUNTS })),
    paused: false,
    wallAnchorMs: Date.now(),
    continuedAsNewCount: 0,
  };

  const { produceJourneyChunk } = proxyActivities<PipelineActivities>({
    // A paced chunk takes its simulated span divided by the speedup, plus sending and catching up.
    startToCloseTimeout: (input.asFastAsPossible ? 0 : CHUNK_MS / input.speedup) + 10 * MINUTE_MS,
    heartbeatTimeout: '30s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });

  const totals = () => state.vehicles.reduce((sum, v) => addCounts(sum, v.sent), ZERO_COUNTS);
  setHandler(fleetPauseSignal, () => {
    if (state.paused) return;
    state.paused = true;
    state.pausedAtMs = Date.now();
  });
  setHandler(fleetResumeSignal, () => {
    if (!state.paused) return;
    state.wallAnchorMs += Date.now() - (state.pausedAtMs ?? Date.now());
    state.paused = false;
    state.pausedAtMs = undefined;
  });
  setHandler(fleetStatusQuery, () => ({
    paused: state.paused,
    start: fleet.start,
    vehicles: state.vehicles.map(({ vehicleIndex, nextIndex, arrived, sent }) => ({ vehicleIndex, nextIndex, arrived, sent })),
    totals: totals(),
    continuedAsNewCount: state.continuedAsNewCount,
  }));

  let draining = false;
  const mustDrain = () => (draining ||= workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.historyThreshold);
  const done = (v: VehicleState) => v.arrived || v.producedUntilMs >= endMs;

  async function drive(v: VehicleState): Promise<void> {
    while (!done(v)) {
      await condition(() => !state.paused || mustDrain());
      if (mustDrain()) return;
      const untilMs = Math.min(v.producedUntilMs + CHUNK_MS, endMs);
      const chunk: JourneyChunkInput = {
        fleet,
        vehicleIndex: v.vehicleIndex,
        fromIndex: v.nextIndex,
        untilEventTime: iso(untilMs),
        pacing: input.asFastAsPossible ? undefined : { speedup: input.speedup, wallAnchorMs: state.wallAnchorMs, simAnchorMs: startMs },
      };
      const result = await produceJourneyChunk(chunk);
      v.nextIndex = result.nextIndex;
      v.arrived = result.arrived;
      v.sent = addCounts(v.sent, result.sent);
      v.producedUntilMs = untilMs;
    }
  }

  await Promise.all(state.vehicles.map(drive));
  if (!state.vehicles.every(done)) {
    state.continuedAsNewCount += 1;
    await continueAsNew<typeof fleetSimulation>({ ...input, start: fleet.start, state });
  }
  const arrived = state.vehicles.filter((v) => v.arrived).length;
  return { totals: totals(), vehicles: input.vehicles, arrived, endedBy: arrived === input.vehicles ? 'arrival' : 'duration' };
}
