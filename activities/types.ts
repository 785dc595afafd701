// The contract between workflows and activities: what each activity takes and returns. Workflows
// import these types only (`import type`), so the same workflow code and histories run against
// the local implementations (Kafka, spark-submit, DuckDB) and the aws ones (EMR, Glue, Redshift,
// Athena). Everything here is plain JSON: it travels through Temporal's payload converter.
import type { Source } from '../schemas';

/** A half-open time window [from, to) of event time, both ISO-8601 UTC with Z. */
export interface TimeWindow {
  from: string;
  to: string;
}

export type SourceCounts = Record<Source, number>;

// ---- streaming ---------------------------------------------------------------------------

export interface StreamingJobSpec {
  /** Stable name of the job; its checkpoint is derived from it, so a restart resumes. */
  jobName: string;
  triggerSeconds: number;
  maxOffsetsPerTrigger?: number;
  /**
   * On a stop request the job finishes its running micro-batch for at most this long (the ingest
   * job's --stop-timeout-seconds); the supervisor's stop grace is longer, so a stop never kills a
   * batch half-written. Absent (histories from before it existed): the job's own default, 60 s.
   */
  stopTimeoutSeconds?: number;
}

/** One micro-batch of the ingest job, as its progress file records it. */
export interface IngestProgress {
  batchId: number;
  /** When the batch finished, ISO UTC. */
  at: string;
  consumed: number;
  valid: number;
  quarantined: number;
  durationMs: number;
}

export interface StreamingJobState {
  jobName: string;
  state: 'running' | 'succeeded' | 'failed' | 'stopped' | 'unknown';
  pid?: number;
  exitCode?: number;
  lastProgress?: IngestProgress;
  /** Last lines of the job's log when it failed: the crash reason people read. */
  failure?: string;
  /** The remote run on the aws target (EMR step id). */
  remoteId?: string;
}

// ---- batch -------------------------------------------------------------------------------

export type Layer = 'raw' | 'curated';

export interface CrawlResult {
  layer: Layer;
  /** Tables the catalog holds for the layer after the crawl, one per source. */
  tables: string[];
  partitionsAdded: number;
  /** Human-readable schema changes found, e.g. `raw.gps: new column satellites (BIGINT)`. */
  schemaChanges: string[];
  /** When the crawl started (the aws target checks it began after the window's data landed). */
  startedAt: string;
}

export interface CurateResult {
  rowsRead: number;
  duplicatesDropped: number;
  rowsWritten: SourceCounts;
  /**
   * Per source, the curated Iceberg table's snapshot that holds this curate's commit (decimal
   * string: ids are 64-bit), taken right after it: the load and the checks of the window read this
   * snapshot. Absent for a table that has no snapshot yet; absent altogether from results recorded
   * before the lake was Iceberg.
   */
  snapshots?: Snapshots;
  /** The remote run on the aws target (Glue job run id). */
  remoteId?: string;
}

/** Curated snapshot ids per source (see CurateResult.snapshots). */
export type Snapshots = Partial<Record<Source, string>>;

/**
 * What the warehouse load and the checks read: a window of the curated tables, as of the given
 * snapshots (a source without one: that table's current snapshot).
 */
export interface CuratedRead {
  window: TimeWindow;
  snapshots?: Snapshots;
}

export interface LoadResult {
  rows: SourceCounts;
}

export interface QualityCheck {
  name: string;
  passed: boolean;
  detail: string;
}

export interface QualityResult {
  passed: boolean;
  checks: QualityCheck[];
  /** Rows of the window per layer: distinct event ids in raw, curated rows, warehouse rows. */
  counts: { raw: SourceCounts; curated: SourceCounts; warehouse: SourceCounts };
}

// ---- fleet simulation ----------------------------------------------------------------------

export interface FleetSpec {
  vehicles: number;
  seed: number;
  /** Departure of the first vehicle, ISO UTC. */
  start: string;
  route?: string;
  tickSeconds?: number;
}

/** Pacing: event time t is sent at wallAnchorMs + (t − simAnchorMs) / speedup. */
export interface Pacing {
  speedup: number;
  wallAnchorMs: number;
  simAnchorMs: number;
}

/** One vehicle's journey, chunk by chunk: what fleetSimulation ran before it produced slices. */
export interface JourneyChunkInput {
  fleet: FleetSpec;
  vehicleIndex: number;
  /** Index of the first event of the journey to send (events before it were acknowledged). */
  fromIndex: number;
  /** Send events whose event time is before this (ISO UTC); the chunk ends there or at arrival. */
  untilEventTime: string;
  /** Undefined = as fast as possible. */
  pacing?: Pacing;
}

export interface JourneyChunkResult {
  /** Position after the last event of the chunk: where the next chunk starts. */
  nextIndex: number;
  /** The stream has no events left (every vehicle of it arrived). */
  arrived: boolean;
  /** Events of the chunk per source, from fromIndex to nextIndex: all acknowledged by Kafka. */
  sent: SourceCounts;
}

/** Consecutive vehicles of a fleet whose journeys one activity produces, merged by event time. */
export interface FleetSlice {
  index: number;
  firstVehicle: number;
  vehicles: number;
}

export interface FleetSliceInput {
  fleet: FleetSpec;
  slice: FleetSlice;
  /** Sequence number of this call within its slice; progress reports carry it. */
  chunk: number;
  /** Position in the slice's merged stream of the first event to send (events before it were acknowledged). */
  fromIndex: number;
  /** Send events whose event time is before this (ISO UTC); the chunk ends there or when the slice has arrived. */
  untilEventTime: string;
  pacing?: Pacing;
}

/**
 * What a running slice reports to its workflow every few seconds: the events of its chunk that
 * Kafka acknowledged so far (a contiguous prefix). Reports of one chunk only grow, so a late or
 * repeated one never counts twice.
 */
export interface FleetSliceProgress {
  slice: number;
  chunk: number;
  acked: SourceCounts;
}

// ---- the activity set ------------------------------------------------------------------------

/** Every activity the workflows call; `createActivities(config)` returns one per target. */
export interface PipelineActivities {
  startStreamingJob(spec: StreamingJobSpec): Promise<StreamingJobState>;
  /** Returns when the job exits or after `maxWaitSeconds`, with its latest state; heartbeats. */
  watchStreamingJob(input: { jobName: string; maxWaitSeconds: number }): Promise<StreamingJobState>;
  stopStreamingJob(input: { jobName: string; graceSeconds: number }): Promise<StreamingJobState>;

  crawlLayer(input: { layer: Layer; window: TimeWindow }): Promise<CrawlResult>;
  curateWindow(input: { window: TimeWindow }): Promise<CurateResult>;
  loadWarehouse(input: CuratedRead): Promise<LoadResult>;
  checkQuality(input: CuratedRead): Promise<QualityResult>;
  /** Rows per source in raw for each window (late-data detection compares them with the load). */
  countRawWindows(input: { windows: TimeWindow[] }): Promise<SourceCounts[]>;

  /** Runs started before fleets were sliced still call this; new runs produce slices. */
  produceJourneyChunk(input: JourneyChunkInput): Promise<JourneyChunkResult>;
  /** Runs on the fleet's own task queue (<task queue>-fleet), so the fleet never takes the pipeline's slots. */
  produceFleetSlice: (input: FleetSliceInput) => Promise<JourneyChunkResult>;
}

/** The activities that produce a fleet into Kafka: the same on every target. */
export type FleetActivities = Pick<PipelineActivities, 'produceJourneyChunk' | 'produceFleetSlice'>;
