// fleetSimulation: drives a fleet's journeys into Kafka as a few slices of consecutive vehicles,
// each a loop of produceFleetSlice calls covering a few simulated minutes of its vehicles' merged
// events. The slices run on the fleet's own task queue (<task queue>-fleet), so however large the
// fleet, it holds at most MAX_SLICES activity slots there and none of the pipeline's. The activity
// heartbeats its acknowledged position and resumes from it on retry, so the workflow keeps only
// where each slice stands; running slices report their acknowledged counts by signal, so the
// status counts chunks still in progress. Pause and resume take effect at chunk boundaries; time
// spent paused shifts the pacing anchor so a resumed fleet does not rush to catch up.
//
// Runs started before slicing (no FLEET_SLICES_PATCH marker in their history) keep driving one
// produceJourneyChunk loop per vehicle on the workflow's own task queue, to the end, across
// continue-as-new too.
import { condition, continueAsNew, defineQuery, defineSignal, patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import type { FleetSliceProgress, FleetSpec, JourneyChunkResult, Pacing, PipelineActivities, SourceCounts } from '../activities/types';
import { ZERO_COUNTS, addCounts, countsSchema } from './counts';
import { fleetTaskQueue } from './ids';
import { iso, isoTime, parseInput } from './input';
import { MAX_SLICES, planSlices } from './slices';
import { MINUTE_MS } from './windows';

const CHUNK_MS = 5 * MINUTE_MS;
export const FLEET_SLICES_PATCH = 'fleet-slices';
const MAX_VEHICLES = 10_000;

/** Where one part of the fleet (a slice; a vehicle in runs from before slicing) stands. */
const partProgress = {
  /** Position in the part's event stream where its next chunk starts. */
  nextIndex: z.number().int().nonnegative(),
  arrived: z.boolean(),
  /** Event time up to which the part has been produced, epoch ms. */
  producedUntilMs: z.number(),
  /** Acknowledged events of its completed chunks. */
  sent: countsSchema,
};

const vehicleStateSchema = z.object({ vehicleIndex: z.number().int().nonnegative(), ...partProgress }).strict();

const sliceStateSchema = z
  .object({
    index: z.number().int().nonnegative(),
    firstVehicle: z.number().int().nonnegative(),
    vehicles: z.number().int().positive(),
    /** Chunks called so far: the sequence number of the next one. */
    chunks: z.number().int().nonnegative(),
    ...partProgress,
  })
  .strict();
type SliceState = z.output<typeof sliceStateSchema>;

const runState = {
  paused: z.boolean(),
  pausedAtMs: z.number().optional(),
  /** Wall time at which event time `start` is due; moved forward by every pause. */
  wallAnchorMs: z.number(),
  continuedAsNewCount: z.number().int().nonnegative(),
};
const perVehicleStateSchema = z.object({ vehicles: z.array(vehicleStateSchema), ...runState }).strict();
const slicedStateSchema = z.object({ slices: z.array(sliceStateSchema).min(1).max(MAX_SLICES), ...runState }).strict();
type RunState = z.output<typeof perVehicleStateSchema> | z.output<typeof slicedStateSchema>;

/** Whether `slices` cover vehicles 0 … vehicles−1 in order, each once. */
function coversFleet(slices: SliceState[], vehicles: number): boolean {
  let next = 0;
  for (const [i, s] of slices.entries()) {
    if (s.index !== i || s.firstVehicle !== next) return false;
    next += s.vehicles;
  }
  return next === vehicles;
}

export const fleetSimulationInputSchema = z
  .object({
    vehicles: z.number().int().min(1).max(MAX_VEHICLES).default(3),
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
    /** Activities producing the fleet at once; default one per 250 vehicles. More spread a large fleet over more fleet workers. */
    slices: z.number().int().min(1).max(MAX_SLICES).optional(),
    historyThreshold: z.number().int().min(50).max(40_000).default(5000),
    /** Carried across continue-as-new; not for people. */
    state: z.union([perVehicleStateSchema, slicedStateSchema]).optional(),
  })
  .strict()
  .refine((i) => !i.state || ('slices' in i.state ? coversFleet(i.state.slices, i.vehicles) : i.state.vehicles.length === i.vehicles), {
    error: 'must cover every vehicle of the fleet exactly once',
    path: ['state'],
  })
  .refine((i) => i.slices === undefined || i.slices <= i.vehicles, { error: 'cannot exceed vehicles', path: ['slices'] });
export type FleetSimulationInput = z.input<typeof fleetSimulationInputSchema>;

export interface FleetPartStatus {
  firstVehicle: number;
  vehicles: number;
  /** Position in the part's event stream where its next chunk starts. */
  nextIndex: number;
  arrived: boolean;
  /** Event time up to which the part's completed chunks reach. */
  producedUntil: string;
  /** Events acknowledged by Kafka: completed chunks plus what a running chunk has reported. */
  acked: SourceCounts;
  running: boolean;
}

export interface FleetStatus {
  paused: boolean;
  start: string;
  vehicles: number;
  /** One per slice (one per vehicle in runs started before slicing). */
  parts: FleetPartStatus[];
  /** Events acknowledged by Kafka so far, chunks still running included. */
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
/** Sent by a running produceFleetSlice, not by people. */
export const fleetProgressSignal = defineSignal<[FleetSliceProgress]>('sliceProgress');
export const fleetStatusQuery = defineQuery<FleetStatus>('status');

const progressSchema = z.object({ slice: z.number().int().nonnegative(), chunk: z.number().int().nonnegative(), acked: countsSchema }).strict();

const total = (c: SourceCounts) => Object.values(c).reduce((a, b) => a + b, 0);

/** How a run produces its parts: one activity call covers one part from `nextIndex` up to an event time. */
interface Driver<P> {
  parts: P[];
  describe(p: P): { firstVehicle: number; vehicles: number };
  produce(p: P, untilMs: number, pacing: Pacing | undefined): Promise<JourneyChunkResult>;
  /** Acknowledged events of the part's running chunk, as reported so far. */
  running(p: P): SourceCounts | undefined;
}

type Part = z.output<typeof vehicleStateSchema> | SliceState;

export async function fleetSimulation(rawInput?: FleetSimulationInput): Promise<FleetSimulationResult> {
  const input = parseInput('fleetSimulation', fleetSimulationInputSchema, rawInput);
  const startMs = input.start ?? Date.now();
  const endMs = input.durationMinutes === undefined ? Infinity : startMs + input.durationMinutes * MINUTE_MS;
  const fleet: FleetSpec = { vehicles: input.vehicles, seed: input.seed, start: iso(startMs), route: input.route, tickSeconds: input.tickSeconds };
  const fresh = { paused: false, wallAnchorMs: Date.now(), continuedAsNewCount: 0 };
  const sliced = input.state ? 'slices' in input.state : patched(FLEET_SLICES_PATCH);
  const state: RunState =
    input.state ??
    (sliced
      ? { slices: planSlices(input.vehicles, input.slices).map((slice) => ({ ...slice, chunks: 0, ...startOf(startMs) })), ...fresh }
      : { vehicles: Array.from({ length: input.vehicles }, (_, vehicleIndex) => ({ vehicleIndex, ...startOf(startMs) })), ...fresh });
  const timeouts = {
    // A paced chunk takes its simulated span divided by the speedup, plus sending and catching up.
    startToCloseTimeout: (input.asFastAsPossible ? 0 : CHUNK_MS / input.speedup) + 10 * MINUTE_MS,
    heartbeatTimeout: '30s',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  } as const;

  let driver: Driver<Part>;
  if ('slices' in state) {
    const { produceFleetSlice } = proxyActivities<PipelineActivities>({
      ...timeouts,
      taskQueue: fleetTaskQueue(workflowInfo().taskQueue),
      // A worker that lost a large slice's stream regenerates its journeys so far before sending
      // (heartbeating meanwhile): allow for that on top of the chunk itself.
      startToCloseTimeout: timeouts.startToCloseTimeout + 50 * MINUTE_MS,
    });
    const live = new Map<number, { chunk: number; acked: SourceCounts }>();
    setHandler(fleetProgressSignal, (raw) => {
      const parsed = progressSchema.safeParse(raw);
      const run = parsed.success ? live.get(parsed.data.slice) : undefined;
      // Only the running chunk's reports count, and only forward: a late or repeated one is ignored.
      if (run && parsed.data?.chunk === run.chunk && total(parsed.data.acked) > total(run.acked)) run.acked = parsed.data.acked;
    });
    driver = {
      parts: state.slices,
      describe: (s) => s as SliceState,
      running: (s) => live.get((s as SliceState).index)?.acked,
      produce: async (p, untilMs, pacing) => {
        const s = p as SliceState;
        const chunk = s.chunks++;
        live.set(s.index, { chunk, acked: ZERO_COUNTS });
        try {
          return await produceFleetSlice({ fleet, slice: { index: s.index, firstVehicle: s.firstVehicle, vehicles: s.vehicles }, chunk, fromIndex: s.nextIndex, untilEventTime: iso(untilMs), pacing });
        } finally {
          live.delete(s.index);
        }
      },
    };
  } else {
    const { produceJourneyChunk } = proxyActivities<PipelineActivities>(timeouts);
    driver = {
      parts: state.vehicles,
      describe: (v) => ({ firstVehicle: (v as { vehicleIndex: number }).vehicleIndex, vehicles: 1 }),
      running: () => undefined,
      produce: (v, untilMs, pacing) =>
        produceJourneyChunk({ fleet, vehicleIndex: (v as { vehicleIndex: number }).vehicleIndex, fromIndex: v.nextIndex, untilEventTime: iso(untilMs), pacing }),
    };
  }

  const acked = (p: Part) => addCounts(p.sent, driver.running(p) ?? ZERO_COUNTS);
  const totals = () => driver.parts.reduce((sum, p) => addCounts(sum, acked(p)), ZERO_COUNTS);
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
    vehicles: input.vehicles,
    parts: driver.parts.map((p) => ({
      ...driver.describe(p),
      nextIndex: p.nextIndex,
      arrived: p.arrived,
      producedUntil: iso(p.producedUntilMs),
      acked: acked(p),
      running: driver.running(p) !== undefined,
    })),
    totals: totals(),
    continuedAsNewCount: state.continuedAsNewCount,
  }));

  let draining = false;
  const mustDrain = () => (draining ||= workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.historyThreshold);
  const done = (p: Part) => p.arrived || p.producedUntilMs >= endMs;

  async function drive(p: Part): Promise<void> {
    while (!done(p)) {
      await condition(() => !state.paused || mustDrain());
      if (mustDrain()) return;
      const untilMs = Math.min(p.producedUntilMs + CHUNK_MS, endMs);
      const pacing = input.asFastAsPossible ? undefined : { speedup: input.speedup, wallAnchorMs: state.wallAnchorMs, simAnchorMs: startMs };
      const result = await driver.produce(p, untilMs, pacing);
      p.nextIndex = result.nextIndex;
      p.arrived = result.arrived;
      p.sent = addCounts(p.sent, result.sent);
      p.producedUntilMs = untilMs;
    }
  }

  await Promise.all(driver.parts.map(drive));
  if (!driver.parts.every(done)) {
    state.continuedAsNewCount += 1;
    await continueAsNew<typeof fleetSimulation>({ ...input, start: fleet.start, state });
  }
  const arrived = 'slices' in state ? state.slices.reduce((n, s) => n + (s.arrived ? s.vehicles : 0), 0) : state.vehicles.filter((v) => v.arrived).length;
  return { totals: totals(), vehicles: input.vehicles, arrived, endedBy: arrived === input.vehicles ? 'arrival' : 'duration' };
}

function startOf(startMs: number) {
  return { nextIndex: 0, arrived: false, producedUntilMs: startMs, sent: ZERO_COUNTS };
}
