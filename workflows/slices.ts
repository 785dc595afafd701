// How a fleet is cut into slices: consecutive ranges of vehicle indexes, one activity each. Apart
// from the workflow so the bench and tests can plan the same slices (workflows/index.ts registers
// every function exported by a workflow file as a workflow type).
import type { FleetSlice } from '../activities/types';

/** Activities one fleet run keeps going at once, whatever the fleet size. */
export const MAX_SLICES = 8;
/** Unless told otherwise, a slice per this many vehicles (up to MAX_SLICES). */
const VEHICLES_PER_SLICE = 250;

/** `slices` (default: one per 250 vehicles, at most MAX_SLICES) near-equal consecutive ranges of the fleet's vehicles. */
export function planSlices(vehicles: number, slices?: number): FleetSlice[] {
  const count = slices ?? Math.min(MAX_SLICES, Math.ceil(vehicles / VEHICLES_PER_SLICE));
  const out: FleetSlice[] = [];
  for (let index = 0, firstVehicle = 0; index < count; index++) {
    const size = Math.floor(vehicles / count) + (index < vehicles % count ? 1 : 0);
    out.push({ index, firstVehicle, vehicles: size });
    firstVehicle += size;
  }
  return out;
}
