// Workflow ids (fixed ones for the singletons, builders for the runs that repeat) and task queue names.
import type { TimeWindow } from '../activities/types';

export const PIPELINE_WORKFLOW_ID = 'smartcity-pipeline';
export const STREAMING_WORKFLOW_ID = 'smartcity-streaming';

/** One id per attempt: a window re-run (late data, retry, forced backfill) never collides with an earlier run. */
export function batchRunWorkflowId(window: TimeWindow, attempt: number): string {
  return `smartcity-batch-${window.from}-${attempt}`;
}

/** A chunk is named by its range and the attempt of its first window's batch run, which is new for every launch. */
export function backfillChunkWorkflowId(range: TimeWindow, firstAttempt: number): string {
  return `smartcity-chunk-${range.from}-${range.to}-${firstAttempt}`;
}

/** A fleet run is named by its seed and departure, which together fix its event ids. */
export function fleetSimulationWorkflowId(seed: number, start: string): string {
  return `smartcity-fleet-${seed}-${start}`;
}

/**
 * The task queue of a fleet's producer activities, next to the pipeline's own: a worker polls both
 * with separate slot budgets, so a fleet of any size never delays the pipeline's activities.
 */
export function fleetTaskQueue(taskQueue: string): string {
  return `${taskQueue}-fleet`;
}
