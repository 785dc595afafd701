// Spark activities of the local target: the streaming ingest job and the curate job, run by
// spark/runner.ts as spark-submit processes (local[2] here; spark://host:7077 works the same).
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Context, heartbeat } from '@temporalio/activity';
import { join } from 'node:path';
import type { Config } from '../config';
import { runSparkJob, sparkJobLogTail, sparkJobStatus, startSparkJob, stopSparkJob, type SparkJobStatus } from '../spark/runner';
import { heartbeating } from './heartbeat';
import { curateResultOf, curateSummarySchema } from './lake';
import { ingestProgress } from './progress';
import type { CurateResult, IngestProgress, StreamingJobSpec, StreamingJobState, TimeWindow } from './types';

const POLL_MS = 2_000;
/** SIGTERM → SIGKILL for a curate job: it keeps nothing worth a clean stop (it is re-run whole). */
const CURATE_STOP_GRACE_MS = 15_000;
/** The local target's curates: 4 shuffle partitions (2 cores; AQE merges small ones further). */
const CURATE_SHUFFLE_PARTITIONS = 4;

/** The curate job's name: one per range, so a retried activity on any worker finds the job by it. */
export function curateJobName(window: TimeWindow): string {
  return `curate-${window.from}-${window.to}`.replace(/[^A-Za-z0-9._-]/g, '');
}

/**
 * Whether a cancelled curate activity stops its job: when the workflow asked (a cancelled batch
 * run) and when this worker shuts down (another worker retries the window; curate is idempotent).
 * Not on a timeout, nor for an attempt the server no longer knows: the activity has then been
 * handed to another attempt, which attaches to the running job by its name.
 */
function stopsJob(reason: unknown): boolean {
  return reason instanceof CancelledFailure && (reason.message === 'CANCELLED' || reason.message === 'WORKER_SHUTDOWN');
}

const progressOf = (status: SparkJobStatus): IngestProgress | undefined => ingestProgress(status.lastProgress);

async function stateOf(config: Config, status: SparkJobStatus): Promise<StreamingJobState> {
  return {
    jobName: status.name,
    state: status.state,
    ...(status.pid !== undefined && { pid: status.pid }),
    ...(status.exitCode !== undefined && { exitCode: status.exitCode }),
    ...(progressOf(status) && { lastProgress: progressOf(status) }),
    ...(status.state === 'failed' && { failure: `${status.detail ?? `exit code ${status.exitCode}`}\n${await sparkJobLogTail(config, status.name, 30)}` }),
  };
}

export function sparkActivities(config: Config) {
  const lake = config.lakeRoot;
  /** Curate jobs an activity of this process is running (the streaming job belongs to its supervisor, not here). */
  const owned = new Set<string>();

  const activities = {
    /** Starts the ingest job unless it already runs (a retried start must not start a second). */
    async startStreamingJob(spec: StreamingJobSpec): Promise<StreamingJobState> {
      return heartbeating(async () => {
        const current = await sparkJobStatus(config, spec.jobName);
        if (current.state === 'running') return stateOf(config, current);
        await startSparkJob(config, {
          name: spec.jobName,
          job: 'stream_ingest',
          master: config.spark.master,
          args: {
            lakeRoot: lake,
            // Named after the job, so a restart resumes from where the crashed run stopped.
            checkpoint: join(lake, 'checkpoints', spec.jobName),
            progressFile: join(lake, '_progress', `${spec.jobName}.jsonl`),
            triggerSeconds: spec.triggerSeconds,
            ...(spec.maxOffsetsPerTrigger !== undefined && { maxOffsetsPerTrigger: spec.maxOffsetsPerTrigger }),
            ...(spec.stopTimeoutSeconds !== undefined && { stopTimeoutSeconds: spec.stopTimeoutSeconds }),
          },
        });
        return stateOf(config, await sparkJobStatus(config, spec.jobName));
      });
    },

    /** Waits until the job is no longer running or `maxWaitSeconds` passed; heartbeats its progress. */
    async watchStreamingJob(input: { jobName: string; maxWaitSeconds: number }): Promise<StreamingJobState> {
      const deadline = Date.now() + input.maxWaitSeconds * 1000;
      const ctx = Context.current();
      for (;;) {
        const status = await sparkJobStatus(config, input.jobName);
        heartbeat(progressOf(status));
        if (status.state !== 'running' || Date.now() >= deadline) return stateOf(config, status);
        await ctx.sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
      }
    },

    async stopStreamingJob(input: { jobName: string; graceSeconds: number }): Promise<StreamingJobState> {
      return heartbeating(async () => stateOf(config, (await stopSparkJob(config, input.jobName, input.graceSeconds * 1000)).status));
    },

    /**
     * Runs spark/jobs/curate.py over the window: one batch window, or a chunk of them at once. The
     * job is detached: if this worker is SIGKILLed it runs on, and the retried activity (on another
     * worker, after the heartbeat timeout) attaches to it by name instead of starting a second.
     */
    async curateWindow(input: { window: TimeWindow }): Promise<CurateResult> {
      const { from, to } = input.window;
      const name = curateJobName(input.window);
      return heartbeating(async (ctx) => {
        // No lock: writers of curated data are kept apart by Iceberg (one commit per table, and a
        // commit that conflicts with another writer's fails the job, which is retried).
        const result = await (async () => {
          owned.add(name);
          const stopOnCancel = ctx?.cancelled.catch((reason: unknown) => (stopsJob(reason) ? stopSparkJob(config, name, CURATE_STOP_GRACE_MS) : undefined));
          try {
            // Owned by this activity across its attempts: a retry after a dead worker takes the
            // result of a job that finished meanwhile instead of curating the range again.
            const run = ctx?.info.workflowExecution;
            const owner = ctx && run && `${run.workflowId}/${run.runId}/${ctx.info.activityId}`;
            return await runSparkJob(config, {
              name,
              job: 'curate',
              master: config.spark.master,
              connect: config.spark.connect,
              // Two cores: a handful of shuffle partitions per MERGE (curate.py --shuffle-partitions).
              args: { lakeRoot: lake, from, to, shufflePartitions: CURATE_SHUFFLE_PARTITIONS },
              ...(owner && { owner }),
            });
          } finally {
            owned.delete(name);
            if (ctx?.cancellationSignal.aborted) await stopOnCancel;
          }
        })();
        if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        if (result.state !== 'succeeded') {
          throw ApplicationFailure.retryable(`curate job for ${from} → ${to} ${result.state} (exit code ${result.exitCode ?? '—'})`, 'SparkJobFailed', result.logTail);
        }
        const summary = curateSummarySchema.safeParse(result.summary);
        if (!summary.success) {
          throw ApplicationFailure.nonRetryable(`curate job for ${from} → ${to} succeeded without a summary the activity can read: ${summary.error.message}`, 'SparkJobNoSummary', result.logTail);
        }
        return curateResultOf(summary.data);
      });
    },
  };

  return {
    activities,
    /**
     * After the worker stopped: stops the curate jobs whose activity did not get to stop them (a
     * worker that lost Temporal and shut down without cancelling them). Nothing else is left to
     * own them, and their window is retried elsewhere; the streaming job is not touched.
     */
    async close(): Promise<void> {
      await Promise.all([...owned].map((name) => stopSparkJob(config, name, CURATE_STOP_GRACE_MS)));
    },
  };
}
