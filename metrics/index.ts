// The pipeline's own Prometheus metrics. They are made with the Temporal Runtime's metric meter,
// so the SDK's Prometheus exporter (workers/runtime.ts) serves them on the same endpoint as the
// SDK's runtime metrics: one scrape, one exposition. Their sources:
//  - the worker's event producer (stats(): acknowledged and failed events per topic);
//  - the streaming job's progress file, read as it grows (micro-batches, records landed and
//    quarantined, newest event time per source, consumed offsets) against Kafka's high watermarks;
//  - the controller's and the streaming supervisor's `status` queries;
//  - an activity interceptor timing the batch stages this worker runs.
// Every source is polled on its own and may be missing (no controller, no job yet, Kafka down):
// its families then keep their last values and the rest go on.
import type { Admin } from 'kafkajs';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError, type Client, type QueryDefinition } from '@temporalio/client';
import type { MetricCounter, MetricMeter, MetricTags } from '@temporalio/common';
import { Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Config } from '../config';
import { createKafka } from '../kafka/client';
import { log } from '../logging';
import type { ProducerStats } from '../producers/event-producer';
import { SOURCES, TOPICS } from '../schemas';
import { connectClient } from '../temporal/connection';
import {
  DEFAULT_STREAMING_JOB,
  PIPELINE_WORKFLOW_ID,
  pipelineStatusQuery,
  STREAMING_WORKFLOW_ID,
  streamingStatusQuery,
  type BatchStage,
  type PipelineStatus,
  type StreamingPhase,
} from '../workflows';
import { progressFilePath, ProgressTail, type ProgressLine } from './progress';

/** How often the sources are read; Prometheus scrapes whatever was read last. */
export const METRICS_POLL_MS = 5_000;
/** A status query that takes longer than this counts as no answer. */
const QUERY_TIMEOUT_MS = 10_000;

/**
 * Bucket bounds (seconds) of our histograms, for the exporter's histogramBucketOverrides: Spark
 * stages take seconds to minutes, far beyond the SDK's default buckets (up to 10).
 */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  smartcity_batch_stage_duration: [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
  smartcity_ingest_batch_duration: [0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120],
};

const STREAMING_PHASES: StreamingPhase[] = ['starting', 'running', 'restarting', 'paused', 'stopped'];
const WINDOW_STATES = ['loaded', 'failed', 'queued', 'running'] as const;

/** The activities of a batch run, by the stage names batchRun reports (BatchStage). */
function batchStage(activityType: string, args: unknown[]): BatchStage | undefined {
  switch (activityType) {
    case 'crawlLayer':
      return (args[0] as { layer?: string } | undefined)?.layer === 'curated' ? 'crawlCurated' : 'crawlRaw';
    case 'countRawWindows':
      return 'countRaw';
    case 'curateWindow':
      return 'curate';
    case 'loadWarehouse':
      return 'load';
    case 'checkQuality':
      return 'quality';
    default:
      return undefined;
  }
}

/**
 * A Prometheus counter fed from a cumulative count kept elsewhere (the producer's stats, the
 * supervisor's restarts): adds what the count grew by since it was last seen. A count that went
 * down was reset at its source (a new producer); all of it is new then.
 */
class CumulativeCounter {
  private readonly seen = new Map<string, number>();
  constructor(private readonly counter: MetricCounter) {}

  observe(total: number, tags: MetricTags = {}): void {
    const key = JSON.stringify(tags);
    const last = this.seen.get(key);
    const delta = last === undefined || total < last ? total : total - last;
    this.seen.set(key, total);
    if (delta > 0 || last === undefined) this.counter.add(delta, tags);
  }
}

/** Every pipeline metric family, made on `meter`; names without the exporter's suffixes (_total, _seconds). */
export function metricFamilies(meter: MetricMeter) {
  const counter = (name: string, help: string) => meter.createCounter(name, undefined, help);
  const gauge = (name: string, help: string, unit?: string) => meter.createGauge(name, 'float', unit, help);
  return {
    produced: new CumulativeCounter(counter('smartcity_events_produced', "Events the worker's producer handed to Kafka and Kafka answered for (acknowledged or failed), per topic.")),
    acked: new CumulativeCounter(counter('smartcity_events_acked', 'Events Kafka acknowledged (acks=all), per topic.')),
    failed: new CumulativeCounter(counter('smartcity_events_failed', 'Events Kafka did not acknowledge after every retry, per topic.')),
    pending: gauge('smartcity_events_pending', 'Events accepted by the producer and not yet acknowledged or failed.'),
    lag: gauge('smartcity_ingest_lag_records', "Records in a Kafka partition the streaming job has not consumed yet: the high watermark minus the job's next offset."),
    batchDuration: meter.createHistogram('smartcity_ingest_batch_duration', 'float', 'seconds', 'Duration of a streaming micro-batch, from the progress file.'),
    lastBatch: gauge('smartcity_ingest_last_batch_timestamp_seconds', 'When the latest micro-batch of the streaming job started writing (Unix time).'),
    consumed: counter('smartcity_ingest_consumed_records', 'Records the streaming job consumed from Kafka.'),
    landed: counter('smartcity_ingest_landed_records', 'Valid records the streaming job landed in raw, per source.'),
    quarantined: counter('smartcity_ingest_quarantined_records', 'Records the streaming job quarantined, per source and reason class (error kind; "unclassified" in progress lines without kinds).'),
    freshness: gauge('smartcity_ingest_freshness_seconds', 'Now minus the newest event time landed in raw, per source.'),
    windows: gauge('smartcity_pipeline_windows', "The controller's windows by state: loaded, failed (among the recent windows it lists), queued, running."),
    paused: gauge('smartcity_pipeline_paused', '1 while the controller is paused.'),
    controllerUp: gauge('smartcity_pipeline_controller_up', '1 when the controller (smartcity-pipeline) answered its status query at the last poll.'),
    restarts: new CumulativeCounter(counter('smartcity_streaming_job_restarts', 'Restarts of the streaming job by its supervisor after a crash.')),
    streamingState: gauge('smartcity_streaming_job_state', "1 for the streaming supervisor's current phase (starting, running, restarting, paused, stopped), 0 for the others."),
    stageDuration: meter.createHistogram(
      'smartcity_batch_stage_duration',
      'float',
      'seconds',
      'Duration of one attempt of a batch-run stage on this worker, by stage (crawlRaw, countRaw, curate, load, quality; crawlCurated in runs from before the curated layer was Iceberg) and outcome.',
    ),
  };
}
type Families = ReturnType<typeof metricFamilies>;

/** What the worker lends the metrics. */
export interface MetricsSources {
  /** The worker's event producer's counts; undefined before the first journey connected it. */
  producerStats: () => ProducerStats | undefined;
}

export interface PipelineMetrics {
  /** Times the batch stages; goes into the worker's interceptors. */
  activityInterceptor: ActivityInterceptorsFactory;
  /** Stops polling and releases the connections (Kafka admin, Temporal client). */
  stop(): Promise<void>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = sleep(ms, undefined, { ref: false }).then(() => {
    throw new Error(`${what}: no answer within ${ms / 1000} s`);
  });
  return Promise.race([promise, timeout]);
}

class Collector {
  private readonly f: Families;
  private jobName = DEFAULT_STREAMING_JOB;
  private tail: ProgressTail;
  /** Next offset to consume per topic and partition, from the progress lines read so far. */
  private readonly consumedUpTo = new Map<string, Map<string, number>>();
  private readonly newestEvent = new Map<string, number>();
  private admin: Admin | undefined;
  private client: { client: Client; close: () => Promise<void> } | undefined;
  /** The problem each source last had, so a lasting one is logged once, not every poll. */
  private readonly problems = new Map<string, string>();

  constructor(
    private readonly config: Config,
    private readonly sources: MetricsSources,
    meter: MetricMeter,
  ) {
    this.f = metricFamilies(meter);
    this.tail = this.newTail();
  }

  private newTail(): ProgressTail {
    const path = progressFilePath(this.config, this.jobName);
    return new ProgressTail(path, (problem) => {
      log.warn('metrics: skipped a line of the progress file that is not a progress line', { file: path, problem });
    });
  }

  async poll(): Promise<void> {
    await Promise.all([
      this.step('producer', async () => this.producer()),
      this.step('temporal', () => this.temporal()),
    ]);
    // The supervisor's status names the job, so the progress file is read after it.
    await this.step('progress', async () => this.progress());
    await this.step('kafka', () => this.lag());
    this.freshness();
  }

  private async step(source: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
      if (this.problems.delete(source)) log.info(`metrics: ${source} readable again`);
    } catch (err) {
      const problem = (err as Error).message ?? String(err);
      if (this.problems.get(source) !== problem) log.warn(`metrics: cannot read ${source}; its metrics keep their last values`, { error: problem });
      this.problems.set(source, problem);
    }
  }

  private producer(): void {
    const stats = this.sources.producerStats();
    if (!stats) return;
    for (const [topic, t] of Object.entries(stats.topics)) {
      this.f.acked.observe(t.acked, { topic });
      this.f.failed.observe(t.failed, { topic });
      this.f.produced.observe(t.acked + t.failed, { topic });
    }
    this.f.pending.set(stats.pending);
  }

  private async temporal(): Promise<void> {
    this.client ??= await connectClient(this.config);
    const [pipeline, streaming] = await Promise.all([
      this.ask(PIPELINE_WORKFLOW_ID, pipelineStatusQuery, 'controller status'),
      this.ask(STREAMING_WORKFLOW_ID, streamingStatusQuery, 'streaming supervisor status'),
    ]);
    if (pipeline) this.windows(pipeline);
    this.f.controllerUp.set(pipeline ? 1 : 0);
    const phase: StreamingPhase = streaming?.state ?? 'stopped';
    for (const p of STREAMING_PHASES) this.f.streamingState.set(p === phase ? 1 : 0, { state: p });
    if (streaming) {
      this.f.restarts.observe(streaming.restarts);
      if (streaming.jobName !== this.jobName) {
        this.jobName = streaming.jobName;
        this.tail = this.newTail();
      }
    }
  }

  /**
   * A running workflow's answer to a query; undefined when it is not running (a closed workflow
   * still answers queries, with the state it closed in).
   */
  private async ask<T>(workflowId: string, query: QueryDefinition<T>, what: string): Promise<T | undefined> {
    const handle = this.client!.client.workflow.getHandle(workflowId);
    try {
      const { status } = await withTimeout(handle.describe(), QUERY_TIMEOUT_MS, what);
      if (status.name !== 'RUNNING') return undefined;
      return await withTimeout(handle.query(query), QUERY_TIMEOUT_MS, what);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
  }

  private windows(status: PipelineStatus): void {
    const windowMs = status.windowMinutes * 60_000;
    const count: Record<(typeof WINDOW_STATES)[number], number> = {
      loaded: status.loaded.reduce((n, w) => n + Math.round((Date.parse(w.to) - Date.parse(w.from)) / windowMs), 0),
      failed: status.windows.filter((w) => w.status === 'failed').length,
      queued: status.queued,
      running: status.running.length,
    };
    for (const state of WINDOW_STATES) this.f.windows.set(count[state], { state });
    this.f.paused.set(status.paused ? 1 : 0);
  }

  private progress(): void {
    for (const line of this.tail.read()) this.batch(line);
  }

  private batch(line: ProgressLine): void {
    this.f.batchDuration.record(line.duration_ms / 1000);
    const started = Date.parse(line.ingest_time);
    if (Number.isFinite(started)) this.f.lastBatch.set(started / 1000);
    this.f.consumed.add(line.consumed);
    for (const [source, n] of Object.entries(line.valid)) if (n > 0) this.f.landed.add(n, { source });
    for (const [source, n] of Object.entries(line.quarantined)) {
      if (n === 0) continue;
      const kinds = line.quarantined_kinds?.[source];
      if (kinds) for (const [reason, k] of Object.entries(kinds)) this.f.quarantined.add(k, { source, reason });
      else this.f.quarantined.add(n, { source, reason: 'unclassified' });
    }
    for (const [source, time] of Object.entries(line.newest_event_time ?? {})) {
      const at = time === null ? NaN : Date.parse(time);
      if (Number.isFinite(at) && at > (this.newestEvent.get(source) ?? -Infinity)) this.newestEvent.set(source, at);
    }
    for (const [topic, partitions] of Object.entries(line.offsets)) {
      const known = this.consumedUpTo.get(topic) ?? new Map<string, number>();
      for (const [partition, { end }] of Object.entries(partitions)) known.set(partition, Math.max(end, known.get(partition) ?? 0));
      this.consumedUpTo.set(topic, known);
    }
  }

  /**
   * Lag per partition of the topics the job reads. A partition the job has not consumed from
   * yet counts from its low watermark (the job starts from the earliest offset).
   */
  private async lag(): Promise<void> {
    if (!this.admin) {
      const admin = createKafka(this.config, { log: (line) => log.warn(line) }).admin();
      await admin.connect();
      this.admin = admin;
    }
    try {
      for (const topic of Object.values(TOPICS)) {
        const known = this.consumedUpTo.get(topic);
        for (const p of await this.admin.fetchTopicOffsets(topic)) {
          const position = known?.get(String(p.partition)) ?? Number(p.low);
          this.f.lag.set(Math.max(0, Number(p.high) - position), { topic, partition: String(p.partition) });
        }
      }
    } catch (err) {
      const admin = this.admin;
      this.admin = undefined;
      await admin.disconnect().catch(() => undefined);
      throw err;
    }
  }

  private freshness(): void {
    const now = Date.now();
    for (const source of SOURCES) {
      const newest = this.newestEvent.get(source);
      if (newest !== undefined) this.f.freshness.set(Math.max(0, now - newest) / 1000, { source });
    }
  }

  timeStage(activityType: string, workflowType: string | undefined, args: unknown[]): ((outcome: 'ok' | 'failed') => void) | undefined {
    // countRawWindows also serves the controller's late-data check; only a batch run's call is a stage.
    const stage = workflowType === 'batchRun' ? batchStage(activityType, args) : undefined;
    if (!stage) return undefined;
    const started = performance.now();
    return (outcome) => this.f.stageDuration.record((performance.now() - started) / 1000, { stage, outcome });
  }

  async close(): Promise<void> {
    await this.admin?.disconnect().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
  }
}

/** Starts polling the sources into the Runtime's metrics; the exporter was set up by installWorkerRuntime. */
export function startPipelineMetrics(config: Config, sources: MetricsSources, meter: MetricMeter = Runtime.instance().metricMeter): PipelineMetrics {
  const collector = new Collector(config, sources, meter);
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      await collector.poll();
      await sleep(METRICS_POLL_MS, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();
  return {
    activityInterceptor: (ctx) => ({
      inbound: {
        async execute(input, next) {
          const done = collector.timeStage(ctx.info.activityType, ctx.info.workflowType, input.args);
          try {
            const result = await next(input);
            done?.('ok');
            return result;
          } catch (err) {
            done?.('failed');
            throw err;
          }
        },
      },
    }),
    async stop() {
      stopping.abort();
      await loop;
      await collector.close();
    },
  };
}
