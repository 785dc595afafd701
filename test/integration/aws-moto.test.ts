// The aws activities over the wire: real SDK clients speaking HTTP to a moto server, through our
// activity code (crawls, Glue job runs, EMR steps, Redshift statements, Athena queries). Where moto
// 5.2.5 cannot emulate AWS, the test says so and drives the state through moto's state manager or
// canned results; the unit tests (aws-sdk-client-mock) cover those paths in full.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GetQueryExecutionCommand, ListQueryExecutionsCommand } from '@aws-sdk/client-athena';
import { DescribeStatementCommand } from '@aws-sdk/client-redshift-data';
import { GetJobRunsCommand, StartJobRunCommand } from '@aws-sdk/client-glue';
import { ListStepsCommand } from '@aws-sdk/client-emr';
import { CancelledFailure } from '@temporalio/common';
import { athenaActivities, queryOperation } from '../../activities/aws/athena';
import type { AwsDeps } from '../../activities/aws/clients';
import { emrActivities } from '../../activities/aws/emr';
import { glueActivities, type CatalogColumn } from '../../activities/aws/glue';
import { runRemoteOperation } from '../../activities/aws/operation';
import { curateSummaryKey } from '../../activities/aws/s3';
import { qualityActivities, warehouseQualityOperation } from '../../activities/aws/quality';
import { redshiftActivities, statementRows } from '../../activities/aws/redshift';
import { parseWindow } from '../../activities/duckdb';
import { gatherReport } from '../../report/model';
import { renderTerminal } from '../../report/terminal';
import { rulesOf } from '../../schemas/column-rules';
import { runActivity } from '../helpers/aws-mock';
import { quarantineParquet } from '../helpers/parquet';
import {
  athenaResults,
  createBuckets,
  createCrawlers,
  createCurateJob,
  createDatabase,
  createEmrCluster,
  createIcebergTable,
  createLakeTable,
  motoWorld,
  putObject,
  setTransition,
  startMoto,
  unsetTransition,
  type MotoServer,
  type MotoWorld,
} from '../helpers/moto';

const window = { from: '2026-03-02T12:00:00.000Z', to: '2026-03-02T12:05:00.000Z' };
const info = { workflowExecution: { workflowId: 'moto-batch', runId: 'run-1' }, activityId: '1' };
const TIMEOUT = { timeout: 60_000 };
const GPS_COLUMNS = rulesOf('gps').length;
const contractColumns = (source: 'gps' | 'vehicle'): CatalogColumn[] =>
  rulesOf(source).map((r) => ({ name: r.column, type: r.column === 'event_time' ? 'timestamp' : ['seq', 'schema_version'].includes(r.column) ? 'bigint' : 'string' }));

let moto: MotoServer;
before(async () => {
  moto = await startMoto();
});
after(() => moto?.stop());

const depsOf = (world: MotoWorld): AwsDeps => ({ config: world.config, aws: world.config.aws!, clients: world.clients, pollIntervalMs: 5 });

/** A world with the lake's buckets and Glue database. */
async function lakeWorld(extra: Record<string, string> = {}): Promise<MotoWorld> {
  const world = motoWorld(moto.endpoint, extra);
  await createBuckets(world);
  await createDatabase(world);
  return world;
}

describe('Athena over the wire (moto)', () => {
  test('countRawWindows starts one query on the configured workgroup and database and maps the result rows per window', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createLakeTable(world, 'raw_gps', contractColumns('gps').map((c) => (c.name === 'event_time' ? { ...c, type: 'string' } : c)));
    await athenaResults(world, [{ columns: ['source', 'w0'], rows: [['gps', 42]] }]);
    const run = await runActivity(() => athenaActivities(depsOf(world)).countRawWindows({ windows: [window] }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.result, [{ vehicle: 0, gps: 42, traffic: 0, weather: 0, emergency: 0 }]);
    const ids = (await world.clients.athena.send(new ListQueryExecutionsCommand({ WorkGroup: 'primary' }))).QueryExecutionIds ?? [];
    assert.equal(ids.length, 1);
    const execution = (await world.clients.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: ids[0] }))).QueryExecution;
    assert.equal(execution?.QueryExecutionContext?.Database, 'smartcity');
    assert.match(execution?.ResultConfiguration?.OutputLocation ?? '', new RegExp(`^s3://${world.config.aws!.buckets.athenaResults}/results/`));
    assert.match(execution?.Query ?? '', /FROM "raw_gps" WHERE \(\("date" = '2026-03-02' AND "hour" = '12'\)\)/);
  });

  test('checkQuality reads the lake counts from Athena; raw rows without curated ones fail reconcile_raw_curated', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createLakeTable(world, 'raw_gps', contractColumns('gps'));
    await athenaResults(world, [
      {
        columns: ['source', 'raw', 'curated', 'curated_distinct', 'not_curated', 'not_curated_examples', 'not_raw', 'not_raw_examples', 'curated_fingerprint'],
        rows: [['gps', 3, 0, 0, 3, 'id-1, id-2, id-3', 0, null, null]],
      },
    ]);
    const run = await runActivity(() => qualityActivities(depsOf(world)).checkQuality({ window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.result?.passed, false);
    assert.equal(run.result?.counts.raw.gps, 3);
    const failed = run.result.checks.filter((c) => !c.passed);
    assert.deepEqual(failed.map((c) => c.name), ['reconcile_raw_curated.gps']);
    assert.match(failed[0]!.detail, /3 raw event_ids missing from curated \(e\.g\. id-1, id-2, id-3\)/);
  });

  test('a workflow cancel stops the running query with StopQueryExecution', TIMEOUT, async () => {
    const world = await lakeWorld();
    // Queries finish at once by default; this keeps them RUNNING (a server-wide setting, undone below).
    await setTransition(moto.endpoint, 'athena::execution', { progression: 'manual', times: 1_000_000 });
    try {
      const op = queryOperation(depsOf(world), { what: 'a long query', sql: 'SELECT 1', token: 'a-long-query-of-the-cancel-test-0001' });
      const run = await runActivity(() => runRemoteOperation(depsOf(world), op), { info, cancel: { afterHeartbeats: 2, how: 'workflow' } });
      assert.ok(run.error instanceof CancelledFailure, String(run.error));
      const id = (run.heartbeats[0] as { handle: string }).handle;
      const execution = await world.clients.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
      assert.equal(execution.QueryExecution?.Status?.State, 'CANCELLED');
    } finally {
      await unsetTransition(moto.endpoint, 'athena::execution');
    }
  });
});

describe('Redshift Data over the wire (moto)', () => {
  test('a warehouse statement runs with ExecuteStatement on the workgroup; a workflow cancel aborts it with CancelStatement', TIMEOUT, async () => {
    const world = await lakeWorld();
    const deps = depsOf(world);
    // moto's statements never finish (always STARTED): the activity waits until the cancel arrives.
    const op = warehouseQualityOperation(deps, parseWindow(window), [{ source: 'gps', columns: contractColumns('gps').map((c) => c.name) }], () => 'cancel-test');
    const run = await runActivity(() => runRemoteOperation(deps, op), { info, cancel: { afterHeartbeats: 3, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
    const id = (run.heartbeats[0] as { handle: string }).handle;
    const statement = await world.clients.redshiftData.send(new DescribeStatementCommand({ Id: id }));
    assert.equal(statement.Status, 'ABORTED');
    assert.equal(statement.Database, 'dev');
    assert.match(statement.QueryString ?? '', /FROM "public"\."gps" WHERE "event_time" >= TIMESTAMP '2026-03-02 12:00:00.000'/);
  });

  test('statement results are read by column name from GetStatementResult', TIMEOUT, async () => {
    const world = await lakeWorld();
    const deps = depsOf(world);
    const op = warehouseQualityOperation(deps, parseWindow(window), [{ source: 'gps', columns: ['event_id', 'event_time'] }], () => 'rows-test');
    const id = await runActivity(() => op.start());
    // moto answers every statement with the same three rows, whatever the SQL.
    const rows = await statementRows(deps, id.result!);
    assert.deepEqual(rows, [
      { Number: 10, Street: 'Alpha st', City: 'Vancouver' },
      { Number: 50, Street: 'Beta st', City: 'Toronto' },
      { Number: 100, Street: 'Gamma av', City: 'Seattle' },
    ]);
  });

  test('loadWarehouse finds the curated Iceberg table in the Glue catalog and first makes the external schema on the Glue database; a workflow cancel aborts it', TIMEOUT, async () => {
    const world = await lakeWorld();
    const aws = world.config.aws!;
    await createIcebergTable(world, 'gps', contractColumns('gps'));
    // A raw table only: nothing to load for vehicle.
    await createLakeTable(world, 'raw_vehicle', contractColumns('vehicle'));
    // moto's statements never finish (always STARTED): the load waits on its first statement until the cancel.
    const run = await runActivity(() => redshiftActivities(depsOf(world)).loadWarehouse({ window, snapshots: { gps: '4312' } }), { info, cancel: { afterHeartbeats: 2, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
    const { handle } = run.heartbeats[0] as { handle: { phase: string; handle: string } };
    assert.equal(handle.phase, 'first');
    const statement = await world.clients.redshiftData.send(new DescribeStatementCommand({ Id: handle.handle }));
    assert.equal(statement.Status, 'ABORTED');
    assert.equal(statement.QueryString, `CREATE EXTERNAL SCHEMA IF NOT EXISTS "smartcity_lake" FROM DATA CATALOG DATABASE 'smartcity' IAM_ROLE '${aws.redshift.copyRoleArn}'`);
    assert.ok(
      run.heartbeats.every((h) => (h as { handle: { phase: string } }).handle.phase === 'first'),
      'no load started before the external schema exists',
    );
  });
});

describe('Glue and EMR over the wire (moto)', () => {
  test('crawlLayer starts the raw crawler and reports the catalogued tables once the crawl completed after the data landed', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createCrawlers(world);
    await putObject(world, world.config.aws!.buckets.raw, 'raw/gps/date=2026-03-02/hour=12/batch_id=1/part-0.parquet', 'PAR1');
    // moto's crawl only completes when ListCrawls is called; "immediate" completes it on the next look.
    await setTransition(moto.endpoint, 'glue::crawl', { progression: 'immediate' });
    try {
      // The crawler makes no tables in moto: the table it would make is created here.
      await createLakeTable(world, 'raw_gps', contractColumns('gps'));
      const run = await runActivity(() => glueActivities(depsOf(world)).crawlLayer({ layer: 'raw', window }), { info });
      assert.equal(run.error, undefined, String(run.error));
      assert.deepEqual(run.result?.tables, ['raw_gps']);
      assert.ok(Date.parse(run.result.startedAt) > 0);
    } finally {
      await unsetTransition(moto.endpoint, 'glue::crawl');
    }
  });

  test('curateWindow runs the Glue job for the window on the Glue catalog and returns the counts and snapshots of its run summary', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createCurateJob(world);
    const aws = world.config.aws!;
    const summary = {
      from: window.from,
      to: window.to,
      sources: { gps: { rows_read: 12, duplicates_dropped: 2, rows_written: 10, snapshot_id: '5938571126648105127' }, traffic: { rows_read: 0, duplicates_dropped: 0, rows_written: 0, snapshot_id: null } },
    };
    await putObject(world, aws.buckets.artifacts, curateSummaryKey(window), JSON.stringify(summary));
    const run = await runActivity(() => glueActivities(depsOf(world)).curateWindow({ window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.result?.rowsRead, 12);
    assert.equal(run.result?.duplicatesDropped, 2);
    assert.equal(run.result?.rowsWritten.gps, 10);
    assert.deepEqual(run.result?.snapshots, { gps: '5938571126648105127' });
    const runs = (await world.clients.glue.send(new GetJobRunsCommand({ JobName: aws.glue.curateJob }))).JobRuns ?? [];
    assert.equal(runs.length, 1);
    assert.equal(runs[0]?.Arguments?.['--from'], window.from);
    assert.equal(runs[0]?.Arguments?.['--catalog_type'], 'glue');
    assert.equal(runs[0]?.Arguments?.['--namespace'], aws.glue.database);
    assert.equal(runs[0]?.Arguments?.['--curated_root'], `s3://${aws.buckets.curated}`);
  });

  test('crawlLayer curated starts no crawl: it lists the curated Iceberg tables the catalog holds', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createIcebergTable(world, 'gps', contractColumns('gps'));
    await createLakeTable(world, 'raw_gps', contractColumns('gps'));
    const run = await runActivity(() => glueActivities(depsOf(world)).crawlLayer({ layer: 'curated', window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.result?.tables, ['gps']);
    assert.equal(run.result?.partitionsAdded, 0);
  });

  test('curateWindow joins the run already active for the same window instead of starting another', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createCurateJob(world);
    const aws = world.config.aws!;
    await putObject(world, aws.buckets.artifacts, curateSummaryKey(window), JSON.stringify({ sources: {} }));
    // A state change every third look at the run (STARTING → RUNNING → SUCCEEDED; GetJobRun and
    // GetJobRuns both look): the first attempt's run is still active when the retry looks for it.
    await setTransition(moto.endpoint, 'glue::job_run', { progression: 'manual', times: 3 });
    try {
      const first = await runActivity(() => glueActivities(depsOf(world)).curateWindow({ window }), { info, cancel: { afterHeartbeats: 1, how: 'worker-shutdown' } });
      assert.ok(first.error instanceof CancelledFailure, String(first.error));
      const second = await runActivity(() => glueActivities(depsOf(world)).curateWindow({ window }), { info });
      assert.equal(second.error, undefined, String(second.error));
      const runs = (await world.clients.glue.send(new GetJobRunsCommand({ JobName: aws.glue.curateJob }))).JobRuns ?? [];
      assert.equal(runs.length, 1, 'the retry joined the first run');
    } finally {
      await unsetTransition(moto.endpoint, 'glue::job_run');
    }
  });

  test('startStreamingJob adds one named step to the cluster; a second start finds it instead of adding another', TIMEOUT, async () => {
    const base = await lakeWorld();
    const clusterId = await createEmrCluster(base);
    const world = { ...base, config: { ...base.config, aws: { ...base.config.aws!, emr: { clusterId } } } };
    const spec = { jobName: 'smartcity-ingest', triggerSeconds: 10 };
    const first = await runActivity(() => emrActivities(depsOf(world)).startStreamingJob(spec), { info });
    assert.equal(first.error, undefined, String(first.error));
    assert.equal(first.result?.state, 'running');
    const second = await runActivity(() => emrActivities(depsOf(world)).startStreamingJob(spec), { info });
    assert.equal(second.error, undefined, String(second.error));
    const steps = (await world.clients.emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? [];
    assert.equal(steps.length, 1);
    const args = steps[0]?.Config?.Args ?? [];
    assert.ok(args.some((a) => a.includes('stream_ingest')), args.join(' '));
    assert.ok(!args.some((a) => /password/i.test(a)), 'no Kafka password in step arguments');
  });

  test('a Glue job run started outside the activity is found by GetJobRuns through the wire', TIMEOUT, async () => {
    const world = await lakeWorld();
    await createCurateJob(world);
    const aws = world.config.aws!;
    await world.clients.glue.send(new StartJobRunCommand({ JobName: aws.glue.curateJob, Arguments: { '--from': window.from, '--to': window.to } }));
    const runs = (await world.clients.glue.send(new GetJobRunsCommand({ JobName: aws.glue.curateJob }))).JobRuns ?? [];
    assert.equal(runs[0]?.Arguments?.['--to'], window.to);
  });
});

describe('smartcity report on the aws target, over the wire (moto)', () => {
  test('raw and curated rows from Athena over the Glue tables, quarantine from ranged reads of the Parquet files in S3', TIMEOUT, async () => {
    // Temporal is not there: the report says so and carries on.
    const world = await lakeWorld({ SMARTCITY_TEMPORAL_ADDRESS: '127.0.0.1:1' });
    const aws = world.config.aws!;
    await createLakeTable(world, 'raw_gps', contractColumns('gps'));
    await createIcebergTable(world, 'gps', contractColumns('gps'));
    await athenaResults(world, [{ columns: ['layer', 'source', 'row_count'], rows: [['raw', 'gps', 12], ['curated', 'gps', 10]] }]);
    await putObject(world, aws.buckets.quarantine, 'quarantine/gps/date=2026-03-02/batch_id=3/part-00000-a.c000.snappy.parquet', await quarantineParquet(4));
    await putObject(world, aws.buckets.quarantine, 'quarantine/emergency/date=2026-03-02/batch_id=7/part-00000-b.c000.snappy.parquet', await quarantineParquet(1));
    await putObject(world, aws.buckets.quarantine, 'quarantine/gps/_SUCCESS', '');
    const report = await gatherReport(world.config, { aws: { clients: world.clients, pollIntervalMs: 5, deadlineMs: 1_000 } });
    assert.deepEqual(report.sources.gps, { raw: 12, quarantine: 4, curated: 10, warehouse: 0 });
    assert.equal(report.sources.emergency.quarantine, 1);
    // (report/aws.ts tells layer and source from a `<layer>_` prefix, which the curated Iceberg table has not.)
    assert.deepEqual(report.catalog.filter((t) => t.layer === 'raw').map((t) => `${t.layer}/${t.source}: ${t.columns} columns`), [`raw/gps: ${GPS_COLUMNS} columns`]);
    assert.deepEqual(report.catalog.map((t) => t.name).sort(), ['gps', 'raw_gps']);
    // moto's Redshift statements never finish: the report stops its statement at the deadline and
    // says the warehouse is missing (the mocked unit test covers reading it).
    assert.match(report.notes.join('\n'), /the warehouse \(Redshift, dev\.public\) could not be read[\s\S]*did not finish within 1 s, so it was stopped/);
    const started = await world.clients.athena.send(new ListQueryExecutionsCommand({}));
    assert.equal(started.QueryExecutionIds?.length, 1, 'one Athena query for every count');
    assert.match(renderTerminal(report).join('\n'), /gps\s+12\s+4\s+10\s+0/);
  });
});
