// streamingSupervisor: keeps the Spark ingest job running. It starts the job under a fixed name
// (its checkpoint follows the name, so every restart resumes where the last run stopped), watches
// it with a bounded heartbeating activity, restarts it after a crash with exponential backoff,
// stops it on pause and on cancellation, and continues-as-new before its history grows large.
import {
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  log,
  proxyActivities,
  rootCause,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { z } from 'zod';
import type { IngestProgress, PipelineActivities, StreamingJobSpec, StreamingJobState } from '../activities/types';
import { iso, parseInput } from './input';

export const DEFAULT_STREAMING_JOB = 'smartcity-ingest';

// The real watch returns after maxWaitSeconds; one that returns sooner must not turn the loop into
// a busy poll, so the rest of the interval is slept. Below this, the difference is clock noise.
const EARLY_WATCH_TOLERANCE_MS = 2_000;

const progressSchema = z.object({
  batchId: z.number().int(),
  at: z.string(),
  consumed: z.number(),
  valid: z.number(),
  quarantined: z.number(),
  durationMs: z.number(),
}) satisfies z.ZodType<IngestProgress>;

const supervisorStateSchema = z
  .object({
    paused: z.boolean(),
    jobRunning: z.boolean(),
    restarts: z.number().int().nonnegative(),
    /** Crashes since the job last made progress: the exponent of the backoff. */
    consecutiveCrashes: z.number().int().nonnegative(),
    lastCrash: z.object({ at: z.string(), reason: z.string() }).strict().optional(),
    nextRestartAt: z.iso.datetime().optional(),
    lastProgress: progressSchema.optional(),
    /** Micro-batch the job had reached when it was last started: progress beyond it means healthy again. */
    batchIdAtStart: z.number().int().optional(),
    continuedAsNewCount: z.number().int().nonnegative(),
  })
  .strict();
type SupervisorState = z.output<typeof supervisorStateSchema>;

export const streamingSupervisorInputSchema = z
  .object({
    jobName: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, { error: 'letters, digits, dot, dash and underscore only (it names the checkpoint folder)' })
      .default(DEFAULT_STREAMING_JOB),
    triggerSeconds: z.number().int().min(1).max(3600).default(10),
    maxOffsetsPerTrigger: z.number().int().positive().optional(),
    /** How long one watchStreamingJob call waits for the job to exit. */
    watchSeconds: z.number().int().min(1).max(3600).default(60),
    initialBackoffSeconds: z.number().positive().max(3600).default(10),
    maxBackoffSeconds: z.number().positive().max(86_400).default(600),
    /** Asked to stop, the job finishes its running micro-batch for at most this long (its --stop-timeout-seconds). */
    stopTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
    /** Past stopTimeoutSeconds, how long a stop still waits for the job to exit before killing it. */
    stopGraceSeconds: z.number().int().min(0).max(3600).default(30),
    /** Continue-as-new once the history holds this many events. */
    historyThreshold: z.number().int().min(20).max(40_000).default(2000),
    /** Carried across continue-as-new; not for people. */
    state: supervisorStateSchema.optional(),
  })
  .strict()
  .refine((i) => i.maxBackoffSeconds >= i.initialBackoffSeconds, {
    error: 'must be at least initialBackoffSeconds',
    path: ['maxBackoffSeconds'],
  });
export type StreamingSupervisorInput = z.input<typeof streamingSupervisorInputSchema>;

export type StreamingPhase = 'starting' | 'running' | 'restarting' | 'paused' | 'stopped';

export interface StreamingStatus {
  state: StreamingPhase;
  jobName: string;
  restarts: number;
  lastCrash?: { at: string; reason: string };
  nextRestartAt?: string;
  lastProgress?: IngestProgress;
  continuedAsNewCount: number;
}

export const streamingPauseSignal = defineSignal('pause');
export const streamingResumeSignal = defineSignal('resume');
export const streamingStatusQuery = defineQuery<StreamingStatus>('status');

type Input = z.output<typeof streamingSupervisorInputSchema>;

/** How long the job may take to stop in all: its own stop timeout, then the grace before SIGKILL. */
const stopWaitSeconds = (input: Input) => input.stopTimeoutSeconds + input.stopGraceSeconds;

// Each activity heartbeats while it works: a worker that dies mid-call is noticed within this, not
// at the start-to-close timeout, and the call is retried on another worker (start and stop are
// idempotent; the job itself runs on, it belongs to this workflow, not to a worker).
const heartbeatTimeout = '20s';

function activitiesFor(input: Input) {
  const { startStreamingJob } = proxyActivities<PipelineActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
  });
  const { watchStreamingJob } = proxyActivities<PipelineActivities>({
    startToCloseTimeout: (input.watchSeconds + 60) * 1000,
    // A watch only reads state, so a pause abandons it at once (the default TRY_CANCEL) without waiting.
    heartbeatTimeout,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  });
  const { stopStreamingJob } = proxyActivities<PipelineActivities>({
    startToCloseTimeout: (stopWaitSeconds(input) + 60) * 1000,
    heartbeatTimeout,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  });
  return { startStreamingJob, watchStreamingJob, stopStreamingJob };
}

function crashReason(job: StreamingJobState): string {
  const how =
    job.state === 'unknown'
      ? `streaming job ${job.jobName} is in an unknown state`
      : `streaming job ${job.jobName} ${job.state}${job.exitCode === undefined ? '' : ` (exit code ${job.exitCode})`}`;
  return job.failure ? `${how}: ${job.failure}` : how;
}

export async function streamingSupervisor(rawInput?: StreamingSupervisorInput): Promise<void> {
  const input = parseInput('streamingSupervisor', streamingSupervisorInputSchema, rawInput);
  const { startStreamingJob, watchStreamingJob, stopStreamingJob } = activitiesFor(input);
  const { jobName } = input;
  const spec: StreamingJobSpec = {
    jobName,
    triggerSeconds: input.triggerSeconds,
    maxOffsetsPerTrigger: input.maxOffsetsPerTrigger,
    // One source for both ends of a stop: the job's own timeout, and the wait below that outlasts it.
    stopTimeoutSeconds: input.stopTimeoutSeconds,
  };
  const s: SupervisorState = input.state ?? { paused: false, jobRunning: false, restarts: 0, consecutiveCrashes: 0, continuedAsNewCount: 0 };
  let phase: StreamingPhase = s.paused ? 'paused' : s.nextRestartAt ? 'restarting' : s.jobRunning ? 'running' : 'starting';

  setHandler(streamingPauseSignal, () => void (s.paused = true));
  setHandler(streamingResumeSignal, () => void (s.paused = false));
  setHandler(streamingStatusQuery, () => ({
    state: phase,
    jobName,
    restarts: s.restarts,
    lastCrash: s.lastCrash,
    nextRestartAt: s.nextRestartAt,
    lastProgress: s.lastProgress,
    continuedAsNewCount: s.continuedAsNewCount,
  }));

  const continueAsNewDue = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > input.historyThreshold;
  // Longer than the job's own stop timeout: a stop never kills a micro-batch half-written.
  const stop = () => stopStreamingJob({ jobName, graceSeconds: stopWaitSeconds(input) });

  function crashed(reason: string): void {
    s.jobRunning = false;
    s.consecutiveCrashes += 1;
    const backoffSeconds = Math.min(input.initialBackoffSeconds * 2 ** (s.consecutiveCrashes - 1), input.maxBackoffSeconds);
    s.lastCrash = { at: iso(Date.now()), reason };
    s.nextRestartAt = iso(Date.now() + backoffSeconds * 1000);
    phase = 'restarting';
    log.warn('streaming job crashed; restarting after backoff', { jobName, reason, backoffSeconds, restarts: s.restarts });
  }

  /** Runs `fn` unless a pause comes first; then `fn`'s activity is cancelled and undefined returned. */
  function unlessPaused<T>(fn: () => Promise<T>): Promise<T | undefined> {
    return CancellationScope.cancellable(async () => {
      const outcome = await Promise.race([fn(), condition(() => s.paused).then(() => undefined)]);
      CancellationScope.current().cancel();
      return outcome;
    });
  }

  async function start(): Promise<void> {
    if (s.nextRestartAt) {
      phase = 'restarting';
      const waitMs = Date.parse(s.nextRestartAt) - Date.now();
      if (waitMs > 0 && (await condition(() => s.paused, waitMs))) return;
    }
    if (s.consecutiveCrashes > 0) s.restarts += 1;
    phase = s.consecutiveCrashes > 0 ? 'restarting' : 'starting';
    let job: StreamingJobState;
    try {
      job = await startStreamingJob(spec);
    } catch (err) {
      if (isCancellation(err)) throw err;
      return crashed(`starting ${jobName} failed: ${rootCause(err) ?? String(err)}`);
    }
    if (job.lastProgress) s.lastProgress = job.lastProgress;
    if (job.state !== 'running') return crashed(crashReason(job));
    s.jobRunning = true;
    s.nextRestartAt = undefined;
    s.batchIdAtStart = s.lastProgress?.batchId;
    phase = 'running';
  }

  async function watch(): Promise<void> {
    const began = Date.now();
    let job: StreamingJobState | undefined;
    try {
      job = await unlessPaused(() => watchStreamingJob({ jobName, maxWaitSeconds: input.watchSeconds }));
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Starting is idempotent (it attaches to a job already running), so a lost view is a restart.
      return crashed(`watching ${jobName} failed: ${rootCause(err) ?? String(err)}`);
    }
    if (!job) return;
    if (job.lastProgress) s.lastProgress = job.lastProgress;
    if (job.state !== 'running') return crashed(crashReason(job));
    if (s.lastProgress && s.lastProgress.batchId !== s.batchIdAtStart) s.consecutiveCrashes = 0;
    const earlyMs = input.watchSeconds * 1000 - (Date.now() - began);
    if (earlyMs > EARLY_WATCH_TOLERANCE_MS) await condition(() => s.paused, earlyMs);
  }

  try {
    for (;;) {
      if (s.paused) {
        phase = 'paused';
        s.nextRestartAt = undefined;
        s.consecutiveCrashes = 0;
        if (s.jobRunning) {
          await stop();
          s.jobRunning = false;
        }
        await condition(() => !s.paused || continueAsNewDue());
      }
      if (continueAsNewDue()) {
        s.continuedAsNewCount += 1;
        await continueAsNew<typeof streamingSupervisor>({ ...input, state: s });
      }
      if (s.paused) continue;
      if (s.jobRunning) await watch();
      else await start();
    }
  } catch (err) {
    if (isCancellation(err)) {
      phase = 'stopped';
      await CancellationScope.nonCancellable(stop);
    }
    throw err;
  }
}
