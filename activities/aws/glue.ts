// Glue on the aws target: the Data Catalog as the other services see it (the lake's tables and
// their columns), the raw crawler that fills it with raw_<source> tables, and the curate job (ETL),
// whose Iceberg commits register the curated tables (<database>.<source>) themselves. Crawls and
// job runs are each one remote operation: start or join, wait with heartbeats, fetch the result or
// the evidence of the failure.
import {
  BatchStopJobRunCommand,
  GetCrawlerCommand,
  GetJobRunCommand,
  StartCrawlerCommand,
  StartJobRunCommand,
  StopCrawlerCommand,
  paginateGetJobRuns,
  paginateGetPartitions,
  paginateGetTables,
  type Crawler,
  type JobRun,
  type Table,
} from '@aws-sdk/client-glue';
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES, type Source } from '../../schemas';
import { curateResultOf, curateSummarySchema, describeChange, diffColumns, hourPartitions, parseWindow, type Column } from '../lake';
import type { CrawlResult, CurateResult, Layer, PipelineActivities, TimeWindow } from '../types';
import type { AwsDeps } from './clients';
import { awsCall, awsFailure, classifyAwsError } from './errors';
import { logTail } from './logs';
import { runRemoteOperation } from './operation';
import { curatedRoot, curateSummaryKey, latestLanding, layerRoot, readJson, s3Uri, scriptUri } from './s3';
import { sqlString } from '../sql';

// ---- the Data Catalog as Athena and Redshift see it ---------------------------------------------

export interface CatalogColumn {
  name: string;
  /** Hive type as the crawler or Iceberg's Glue catalog wrote it: string, bigint, double, timestamp, decimal(10,2)… */
  type: string;
}

export interface CatalogTable {
  name: string;
  /** Columns in table order: the files' (a crawled table), the current schema's (an Iceberg table). */
  columns: CatalogColumn[];
  partitionKeys: CatalogColumn[];
  /** An Iceberg table (table_type ICEBERG): the curated tables, which curate.py commits to. */
  iceberg?: true;
  /** When the crawler or the last commit changed the table. */
  updatedAt?: Date;
}

export type Catalog = Map<string, CatalogTable>;

/** raw_<source> as the raw crawler names it; the curated Iceberg table is the source's own name. */
export const tableName = (layer: 'raw' | 'curated', source: Source): string => (layer === 'raw' ? `raw_${source}` : source);

/**
 * Iceberg's Glue catalog also lists the columns of the table's earlier schemas, marked
 * iceberg.field.current=false (aws/.../glue/IcebergToGlueConverter.java): only the current ones count.
 */
const isCurrent = (c: { Parameters?: Record<string, string> }): boolean => c.Parameters?.['iceberg.field.current'] !== 'false';

/** Every table of the configured Glue database, by name. */
export async function catalogTables(deps: AwsDeps): Promise<Catalog> {
  const columnsOf = (list: { Name?: string; Type?: string; Parameters?: Record<string, string> }[] | undefined) =>
    (list ?? []).filter(isCurrent).map((c) => ({ name: (c.Name ?? '').toLowerCase(), type: (c.Type ?? '').toLowerCase() }));
  const catalog: Catalog = new Map();
  for (const t of await glueTables(deps)) {
    if (!t.Name) continue;
    const updatedAt = t.UpdateTime ?? t.CreateTime;
    catalog.set(t.Name, {
      name: t.Name,
      columns: columnsOf(t.StorageDescriptor?.Columns),
      partitionKeys: columnsOf(t.PartitionKeys),
      ...(t.Parameters?.table_type?.toUpperCase() === 'ICEBERG' && { iceberg: true as const }),
      ...(updatedAt && { updatedAt }),
    });
  }
  return catalog;
}

/**
 * The curated Iceberg table of a source, or undefined before its first curate created it. A table
 * of that name that is not Iceberg (a crawler's, someone's own) fails for good: nothing would read
 * the curated commits from it.
 */
export function curatedTable(deps: AwsDeps, catalog: Catalog, source: Source): CatalogTable | undefined {
  const table = catalog.get(tableName('curated', source));
  if (table && !table.iceberg) {
    throw ApplicationFailure.nonRetryable(
      `the Glue table ${deps.aws.glue.database}.${table.name} is not an Iceberg table (no table_type ICEBERG): the curated layer of ${source} is the Iceberg table spark/jobs/curate.py commits to; drop or rename the other table`,
      'Aws.CuratedTableNotIceberg',
    );
  }
  return table;
}

/**
 * A curate committed a snapshot of `source`, yet the catalog has no table for it: someone dropped
 * it, or the job writes to another database than the activities read. Fails for good.
 */
export function curatedTableMissing(deps: AwsDeps, windowLabel: string, source: Source, snapshot: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `the curate of ${windowLabel} committed snapshot ${snapshotId(source, snapshot)} of ${source}, but the Glue database ${deps.aws.glue.database} has no table ${tableName('curated', source)}: was it dropped, or does the curate job write to another database?`,
    'Aws.CuratedTableMissing',
  );
}

/** Snapshot ids are 64-bit integers, passed as decimal strings; anything else is refused before it reaches SQL. */
export function snapshotId(source: Source, id: string): string {
  if (!/^\d{1,19}$/.test(id)) throw ApplicationFailure.nonRetryable(`snapshot id of ${source} ${JSON.stringify(id)} is not a decimal snapshot id`, 'InvalidInput');
  return id;
}

// ---- crawlers ----------------------------------------------------------------------------------

/** What the catalog held for the layer before the crawl: columns, and partitions in the window's dates. */
interface CatalogSnapshot {
  columns: Record<string, Column[]>;
  partitions: Record<string, number>;
}

interface CrawlHandle {
  crawler: string;
  /** Latest LastModified of the window's data (S3 clock); a crawl that began earlier misses some of it. */
  landedAt?: string;
  /** True when this activity started the crawl (only then does a cancellation stop it). */
  started: boolean;
  before: CatalogSnapshot;
}

/** Tables of the configured Glue database whose names start with `prefix` (all without one), by name. */
export async function glueTables(deps: AwsDeps, prefix = ''): Promise<Table[]> {
  const database = deps.aws.glue.database;
  const tables: Table[] = [];
  await awsCall(`glue:GetTables on database ${database}`, async () => {
    for await (const page of paginateGetTables({ client: deps.clients.glue }, { DatabaseName: database, ...(prefix && { Expression: `${prefix}.*` }) })) {
      tables.push(...(page.TableList ?? []).filter((t) => t.Name?.startsWith(prefix)));
    }
  });
  return tables.sort((a, b) => (a.Name ?? '').localeCompare(b.Name ?? ''));
}

const layerTables = (deps: AwsDeps, layer: Layer): Promise<Table[]> => glueTables(deps, `${layer}_`);

/** Partitions of a table, optionally only those matching a Glue partition `expression`. */
export async function partitionCount(deps: AwsDeps, table: string, expression?: string): Promise<number> {
  const database = deps.aws.glue.database;
  let count = 0;
  await awsCall(`glue:GetPartitions on table ${database}.${table}`, async () => {
    const input = { DatabaseName: database, TableName: table, ExcludeColumnSchema: true, ...(expression !== undefined && { Expression: expression }) };
    for await (const page of paginateGetPartitions({ client: deps.clients.glue }, input)) count += page.Partitions?.length ?? 0;
  });
  return count;
}

const windowPartitionCount = (deps: AwsDeps, table: string, dates: string[]): Promise<number> =>
  partitionCount(deps, table, `date IN (${dates.map(sqlString).join(', ')})`);

function windowDates(window: TimeWindow): string[] {
  return [...new Set(hourPartitions(parseWindow(window)).map((p) => p.slice('date='.length, 'date='.length + 10)))];
}

async function snapshot(deps: AwsDeps, layer: Layer, window: TimeWindow): Promise<CatalogSnapshot> {
  const dates = windowDates(window);
  const out: CatalogSnapshot = { columns: {}, partitions: {} };
  for (const table of await layerTables(deps, layer)) {
    const name = table.Name!;
    out.columns[name] = (table.StorageDescriptor?.Columns ?? []).map((c) => ({ name: c.Name ?? '', type: c.Type ?? '' }));
    out.partitions[name] = await windowPartitionCount(deps, name, dates);
  }
  return out;
}

async function getCrawler(deps: AwsDeps, name: string): Promise<Crawler> {
  const res = await awsCall(`glue:GetCrawler on crawler ${name}`, () => deps.clients.glue.send(new GetCrawlerCommand({ Name: name })));
  if (!res.Crawler) throw ApplicationFailure.nonRetryable(`glue:GetCrawler returned no crawler ${name}`, 'Aws.EntityNotFoundException');
  return res.Crawler;
}

/** Starts the crawler; false when a crawl is already running (it is joined instead). */
async function startCrawler(deps: AwsDeps, name: string): Promise<boolean> {
  try {
    await deps.clients.glue.send(new StartCrawlerCommand({ Name: name }));
    return true;
  } catch (err) {
    if (classifyAwsError(err).code === 'CrawlerRunningException') return false;
    throw awsFailure(err, `glue:StartCrawler on crawler ${name}`);
  }
}

function crawlerOf(deps: AwsDeps, layer: Layer): string {
  if (layer !== 'raw') throw ApplicationFailure.nonRetryable(`unknown layer ${JSON.stringify(layer)}; expected raw or curated`, 'InvalidInput');
  return deps.aws.glue.rawCrawler;
}

/**
 * The curated layer needs no crawl: each curate's Iceberg commit updates its table in the Glue
 * catalog. Runs started before that still ask for one; they get the curated tables as they are,
 * with nothing added or changed, from one catalog listing.
 */
async function curatedTables(deps: AwsDeps): Promise<CrawlResult> {
  const startedAt = new Date().toISOString();
  const catalog = await catalogTables(deps);
  const tables = SOURCES.filter((s) => curatedTable(deps, catalog, s)).map((s) => tableName('curated', s)).sort();
  return { layer: 'curated', tables, partitionsAdded: 0, schemaChanges: [], startedAt };
}

function crawlFailure(crawler: string, c: Crawler): ApplicationFailure {
  const last = c.LastCrawl;
  const logs = last?.LogGroup ? ` Logs: CloudWatch ${last.LogGroup}${last.LogStream ? ` stream ${last.LogStream}` : ''}.` : '';
  return ApplicationFailure.nonRetryable(`Glue crawler ${crawler} failed: ${last?.ErrorMessage ?? 'no error message'}.${logs}`, 'Glue.CrawlFailed', {
    errorMessage: last?.ErrorMessage,
    logGroup: last?.LogGroup,
    logStream: last?.LogStream,
  });
}

function crawlActivity(deps: AwsDeps) {
  return async (input: { layer: Layer; window: TimeWindow }): Promise<CrawlResult> => {
    const { layer, window } = input;
    if (layer === 'curated') return curatedTables(deps);
    const crawler = crawlerOf(deps, layer);
    const w = parseWindow(window);
    return runRemoteOperation<CrawlHandle, CrawlResult>(deps, {
      what: `Glue crawl of ${layer} by ${crawler} for ${w.label}`,
      async start() {
        const landed = await latestLanding(deps, layer, window);
        const before = await snapshot(deps, layer, window);
        const started = await startCrawler(deps, crawler);
        return { crawler, ...(landed && { landedAt: landed.toISOString() }), started, before };
      },
      async poll(handle) {
        const c = await getCrawler(deps, crawler);
        if (c.State !== 'READY') return { done: false, progress: { state: c.State } };
        const last = c.LastCrawl;
        const began = last?.StartTime;
        const late = handle.landedAt !== undefined && (!began || began < new Date(handle.landedAt));
        // A crawl that began before the window's data landed, or that someone stopped, does not
        // cover the window: crawl again (a crawl started meanwhile by another run is joined).
        if (!last || !began || late || last.Status === 'CANCELLED') {
          await startCrawler(deps, crawler);
          return { done: false, progress: { state: 'restarted', lastCrawlStart: began?.toISOString() } };
        }
        if (last.Status === 'FAILED') throw crawlFailure(crawler, c);
        const after = await snapshot(deps, layer, window);
        const tables = Object.keys(after.columns).sort();
        const schemaChanges = tables.flatMap((t) =>
          handle.before.columns[t] ? diffColumns(handle.before.columns[t], after.columns[t]!).map((change) => describeChange(t, change)) : [],
        );
        const partitionsAdded = tables.reduce((n, t) => n + Math.max(0, after.partitions[t]! - (handle.before.partitions[t] ?? 0)), 0);
        return { done: true, result: { layer, tables, partitionsAdded, schemaChanges, startedAt: began.toISOString() } };
      },
      async cancel(handle) {
        // A joined crawl belongs to whoever started it; only our own crawl is stopped.
        if (!handle.started) return;
        await awsCall(`glue:StopCrawler on crawler ${crawler}`, () => deps.clients.glue.send(new StopCrawlerCommand({ Name: crawler })));
      },
    });
  };
}

// ---- the curate job -----------------------------------------------------------------------------

const ACTIVE_RUN_STATES = new Set(['STARTING', 'RUNNING', 'WAITING']);
const FAILED_RUN_STATES = new Set(['FAILED', 'ERROR', 'TIMEOUT', 'STOPPED', 'EXPIRED']);

/**
 * The curate job's arguments, in Glue's `--name_with_underscores` form that getResolvedOptions
 * reads: the curated tables are <database>.<source> in the Glue catalog, at <curated root>/<source>.
 */
function curateArguments(deps: AwsDeps, window: TimeWindow): Record<string, string> {
  const w = parseWindow(window);
  return {
    '--from': w.from,
    '--to': w.to,
    '--raw_root': layerRoot(deps.aws, 'raw'),
    '--curated_root': curatedRoot(deps.aws),
    '--catalog_type': 'glue',
    '--namespace': deps.aws.glue.database,
    '--schemas_dir': scriptUri(deps.aws, 'schemasDir'),
    '--summary_path': s3Uri(deps.aws.buckets.artifacts, curateSummaryKey(window)),
  };
}

/** How long after its start a run may still be active: Glue stops it at its timeout (minutes), plus slack for the state to settle. */
const activeUntil = (run: JobRun): number => (run.StartedOn?.getTime() ?? 0) + ((run.Timeout ?? 2880) + 10) * 60_000;

async function activeRunFor(deps: AwsDeps, job: string, args: Record<string, string>): Promise<string | undefined> {
  return awsCall(`glue:GetJobRuns on job ${job}`, async () => {
    // Newest first. A page whose runs are all past their timeout ends the search: older runs
    // cannot be active either, and the job's history may hold months of runs.
    for await (const page of paginateGetJobRuns({ client: deps.clients.glue }, { JobName: job, MaxResults: 200 })) {
      const runs = page.JobRuns ?? [];
      const run = runs.find((r) => ACTIVE_RUN_STATES.has(r.JobRunState ?? '') && r.Arguments?.['--from'] === args['--from'] && r.Arguments?.['--to'] === args['--to']);
      if (run) return run.Id;
      if (runs.every((r) => activeUntil(r) < Date.now())) return undefined;
    }
    return undefined;
  });
}

async function getJobRun(deps: AwsDeps, job: string, runId: string): Promise<JobRun> {
  const res = await awsCall(`glue:GetJobRun on job ${job}`, () => deps.clients.glue.send(new GetJobRunCommand({ JobName: job, RunId: runId })));
  if (!res.JobRun) throw ApplicationFailure.nonRetryable(`glue:GetJobRun returned no run ${runId} of job ${job}`, 'Aws.EntityNotFoundException');
  return res.JobRun;
}

async function runFailure(deps: AwsDeps, job: string, run: JobRun, what: string): Promise<ApplicationFailure> {
  const group = run.LogGroupName ?? '/aws-glue/jobs';
  const errorGroup = `${group}/error`;
  const tail = await logTail(deps, errorGroup, run.Id!);
  return ApplicationFailure.nonRetryable(
    `${what} ${run.JobRunState}: ${run.ErrorMessage ?? 'no error message'}. Logs: CloudWatch ${errorGroup} stream ${run.Id}. Last lines of the error log:\n${tail}`,
    'Glue.JobRunFailed',
    { jobRunId: run.Id, state: run.JobRunState, errorMessage: run.ErrorMessage, logGroup: errorGroup, logStream: run.Id, logTail: tail },
  );
}

async function curateResult(deps: AwsDeps, window: TimeWindow, runId: string, what: string): Promise<CurateResult> {
  const bucket = deps.aws.buckets.artifacts;
  const key = curateSummaryKey(window);
  const raw = await readJson(deps, bucket, key);
  const parsed = curateSummarySchema.safeParse(raw);
  if (raw === undefined || !parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `${what} succeeded but ${s3Uri(bucket, key)} ${raw === undefined ? 'does not exist' : `is not a curate summary (${parsed.error?.message})`}: is the job's script the current spark/jobs/curate.py?`,
      'Glue.NoRunSummary',
    );
  }
  return {
    ...curateResultOf(parsed.data),
    remoteId: runId,
  };
}

function curateActivity(deps: AwsDeps) {
  return async (input: { window: TimeWindow }): Promise<CurateResult> => {
    const job = deps.aws.glue.curateJob;
    const args = curateArguments(deps, input.window);
    const what = `Glue job run of ${job} for ${args['--from']}/${args['--to']}`;
    return runRemoteOperation<string, CurateResult>(deps, {
      what,
      find: () => activeRunFor(deps, job, args),
      async start() {
        const res = await awsCall(`glue:StartJobRun on job ${job}`, () => deps.clients.glue.send(new StartJobRunCommand({ JobName: job, Arguments: args })));
        if (!res.JobRunId) throw ApplicationFailure.retryable(`glue:StartJobRun on job ${job} returned no JobRunId`, 'Aws.NoJobRunId');
        return res.JobRunId;
      },
      async poll(runId) {
        const run = await getJobRun(deps, job, runId);
        const state = run.JobRunState ?? 'UNKNOWN';
        if (state === 'SUCCEEDED') return { done: true, result: await curateResult(deps, input.window, runId, what) };
        if (FAILED_RUN_STATES.has(state)) throw await runFailure(deps, job, run, `${what} (run ${runId})`);
        return { done: false, progress: { state, executionTime: run.ExecutionTime } };
      },
      async cancel(runId) {
        const res = await awsCall(`glue:BatchStopJobRun on job ${job}`, () => deps.clients.glue.send(new BatchStopJobRunCommand({ JobName: job, JobRunIds: [runId] })));
        const refused = res.Errors?.[0];
        if (refused) throw new Error(`glue:BatchStopJobRun refused run ${runId}: ${refused.ErrorDetail?.ErrorCode ?? ''} ${refused.ErrorDetail?.ErrorMessage ?? ''}`);
      },
    });
  };
}

export function glueActivities(deps: AwsDeps): Pick<PipelineActivities, 'crawlLayer' | 'curateWindow'> {
  return { crawlLayer: crawlActivity(deps), curateWindow: curateActivity(deps) };
}
