// The activities of the batch stages, with their timeouts and retries, and how a failed run is
// recorded: shared by batchRun (one window) and backfillChunk (many windows, one curate). Not
// exported from the bundle's entry point (./index): its functions are no workflows.
import { ActivityCancellationType, ApplicationFailure, ChildWorkflowFailure, proxyActivities, proxyLocalActivities, rootCause } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { z } from 'zod';
import type { PipelineActivities } from '../activities/types';

/**
 * The curated layer became Iceberg tables: curate commits and registers each table, so the batch
 * runs no longer crawl curated, and their loads and checks read the snapshot curate committed.
 * Histories recorded before the patch replay with the curated crawl.
 */
export const ICEBERG_CURATED_PATCH = 'iceberg-curated';

/** Failure type of a batch run whose data failed its quality checks; retrying the run as is won't help. */
export const DATA_QUALITY_ERROR = 'DataQualityError';

/**
 * Every long activity heartbeats (a remote one on every poll, a local one on a timer while it
 * works): a worker that dies mid-stage is noticed within this, and the stage is retried on another
 * worker — a retried curate attaches to the job still running — instead of waiting for the
 * start-to-close timeout.
 */
export const BATCH_HEARTBEAT_TIMEOUT = '20s';

// A cancelled batch run closes only once the activity has stopped its remote work (Glue run,
// Redshift statement, spark-submit): WAIT_CANCELLATION_COMPLETED. Loads replace their window in one
// transaction, so every stage is safe to retry.
const cancellationType = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED;
const heartbeatTimeout = BATCH_HEARTBEAT_TIMEOUT;
export const { crawlLayer } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout,
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
  cancellationType,
});
export const { countRawWindows } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout,
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  cancellationType,
});
// A chunk's curate covers up to a day of windows: its start-to-close allows for that.
export const { curateWindow } = proxyActivities<PipelineActivities>({
  startToCloseTimeout: '3 hours',
  heartbeatTimeout,
  retry: { initialInterval: '15s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3 },
  cancellationType,
});
const loadOptions = {
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
  cancellationType,
} as const;
const qualityOptions = {
  startToCloseTimeout: '15 minutes',
  retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
  cancellationType,
} as const;
export const { loadWarehouse } = proxyActivities<PipelineActivities>({ ...loadOptions, heartbeatTimeout });
export const { checkQuality } = proxyActivities<PipelineActivities>({ ...qualityOptions, heartbeatTimeout });

/**
 * The same two stages as local activities, for the windows of a backfillChunk: each is short once
 * its chunk has curated, and run by the worker that runs the window's workflow task they cost no
 * activity task and no workflow task of their own (a chunk runs hundreds). A worker that dies
 * mid-stage is noticed by the workflow task's timeout; the next worker runs the stage again (a
 * load replaces its window, so it is safe to repeat).
 */
export const { loadWarehouse: loadWarehouseLocal } = proxyLocalActivities<PipelineActivities>(loadOptions);
export const { checkQuality: checkQualityLocal } = proxyLocalActivities<PipelineActivities>(qualityOptions);

/** Why a batch run failed, as the controller records it for its window. */
export interface RunError {
  type: typeof DATA_QUALITY_ERROR | 'BatchRunError';
  message: string;
  failedChecks?: string[];
}

const qualityDetailsSchema = z.object({ failedChecks: z.array(z.object({ name: z.string() }).loose()) }).loose();

/** A failed child run (batchRun, or a backfillChunk for its windows) as a RunError. */
export function runError(err: unknown, workflowId: string): RunError {
  const quality = err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure && err.cause.type === DATA_QUALITY_ERROR ? err.cause : undefined;
  if (quality) {
    const details = qualityDetailsSchema.safeParse(quality.details?.[0]);
    return { type: DATA_QUALITY_ERROR, message: quality.message, failedChecks: details.success ? details.data.failedChecks.map((c) => c.name) : undefined };
  }
  const message = err instanceof WorkflowExecutionAlreadyStartedError ? `${workflowId} is already running: ${err.message}` : (rootCause(err) ?? String(err));
  return { type: 'BatchRunError', message };
}

/**
 * The stage runner of a batch workflow: runs one stage, keeping which one runs and how long each
 * took in the workflow's status (its `status` query shows both).
 */
export function timedStages<S extends string>(status: { stage: S | 'done'; timings: Partial<Record<S, number>> }) {
  return async function stage<T>(name: S, run: () => Promise<T>): Promise<T> {
    status.stage = name;
    const started = Date.now();
    try {
      return await run();
    } finally {
      status.timings[name] = Date.now() - started;
    }
  };
}
