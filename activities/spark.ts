// Spark activities of the local target: the streaming ingest job and the curate job, run by
// spark/runner.ts as spark-submit processes (local[2] here; spark://host:7077 works the same).
import { ApplicationFailure } from '@temporalio/common';
import { Context, heartbeat } from '@temporalio/activity';
import { join } from 'node:path';
import type { Config } from '../config';
import { SOURCES, type Source } from '../schemas';
import { runSparkJob, sparkJobLogTail, sparkJobStatus, startSparkJob, stopSparkJob, type SparkJobStatus } from '../spark/runner';
import { withCuratedLayer } from './curated-lock';
import { ingestProgress } from './progress';
import type { CurateResult, IngestProgress, SourceCounts, StreamingJobSpec, StreamingJobState, TimeWindow } from './types';

const POLL_MS = 2_000;
const HEARTBEAT_EVERY_MS = 5_000;

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
  return {
    /** Starts the ingest job unless it already runs (a retried start must not start a second). */
    async startStreamingJob(spec: StreamingJobSpec): Promise<StreamingJobState> {
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
        },
      });
      return stateOf(config, await sparkJobStatus(config, spec.jobName));
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
      const result = await stopSparkJob(config, input.jobName, input.graceSeconds * 1000);
      return stateOf(config, result.status);
    },

    async curateWindow(input: { window: TimeWindow }): Promise<CurateResult> {
      const { from, to } = input.window;
      const name = `curate-${from}-${to}`.replace(/[^A-Za-z0-9._-]/g, '');
      const ctx = Context.current();
      const result = await withCuratedLayer(async () => {
        // Heartbeats are how a cancelled batch run reaches this activity: then the job is stopped.
        const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
        const stopOnCancel = ctx.cancelled.catch(() => stopSparkJob(config, name, 15_000));
        try {
          return await runSparkJob(config, { name, job: 'curate', master: config.spark.master, args: { lakeRoot: lake, from, to } });
        } finally {
          clearInterval(beat);
          if (ctx.cancellationSignal.aborted) await stopOnCancel;
        }
      });
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      if (result.state !== 'succeeded') {
        throw ApplicationFailure.retryable(`curate job for ${from} → ${to} ${result.state} (exit code ${result.exitCode ?? '—'})`, 'SparkJobFailed', result.logTail);
      }
      const sources = (result.summary?.sources ?? {}) as Partial<Record<Source, { rows_read: number; duplicates_dropped: number; rows_written: number }>>;
      const rowsWritten = Object.fromEntries(SOURCES.map((s) => [s, sources[s]?.rows_written ?? 0])) as SourceCounts;
      return {
        rowsRead: SOURCES.reduce((n, s) => n + (sources[s]?.rows_read ?? 0), 0),
        duplicatesDropped: SOURCES.reduce((n, s) => n + (sources[s]?.duplicates_dropped ?? 0), 0),
        rowsWritten,
      };
    },
  };
}
