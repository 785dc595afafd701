// checkQuality and countRawWindows on the aws target (Athena over the lake, Redshift for the
// warehouse side), with aws-sdk-client-mock clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  type GetQueryResultsCommandInput,
} from '@aws-sdk/client-athena';
import { GetTablesCommand } from '@aws-sdk/client-glue';
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
} from '@aws-sdk/client-redshift-data';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { athenaActivities } from '../../activities/aws/athena';
import { qualityActivities } from '../../activities/aws/quality';
import { SOURCES, type Source } from '../../schemas';
import { rulesOf } from '../../schemas/column-rules';
import { mockedAwsDeps, runActivity, sdkError, type AwsMocks } from '../helpers/aws-mock';

const window = { from: '2026-03-02T12:00:00.000Z', to: '2026-03-02T12:05:00.000Z' };
const info = { workflowExecution: { workflowId: 'batch-w', runId: 'run-1' }, activityId: '6' };

const table = (name: string, columns: string[], hourType = 'string') => ({
  Name: name,
  StorageDescriptor: { Columns: columns.map((c) => ({ Name: c, Type: c === 'seq' ? 'bigint' : c === 'lat' ? 'double' : 'string' })) },
  PartitionKeys: [
    { Name: 'date', Type: 'string' },
    { Name: 'hour', Type: hourType },
  ],
});
/** A curated table as Iceberg's Glue catalog registers it: table_type ICEBERG, no Glue partitions. */
const iceberg = (name: string, columns: string[]) => ({ ...table(name, columns), PartitionKeys: [], Parameters: { table_type: 'ICEBERG' } });
/** The contract's columns, as the crawler catalogues the curated files. */
const columnsOf = (source: Source) => rulesOf(source).map((r) => r.column);
const GPS = columnsOf('gps');
const LAT = GPS.indexOf('lat');

/** An Athena result page as GetQueryResults returns it; `header` on the first page only. */
function page(columns: string[], rows: (string | null)[][], opts: { header?: boolean; next?: string } = {}) {
  const cells = (values: (string | null)[]) => ({ Data: values.map((v) => (v === null ? {} : { VarCharValue: v })) });
  return {
    ResultSet: { ResultSetMetadata: { ColumnInfo: columns.map((Name) => ({ Name, Type: 'varchar' })) }, Rows: [...(opts.header === false ? [] : [cells(columns)]), ...rows.map(cells)] },
    ...(opts.next !== undefined && { NextToken: opts.next }),
  };
}

function stubQuery(mocks: AwsMocks, pages: ReturnType<typeof page>[], state: 'SUCCEEDED' | 'RUNNING' = 'SUCCEEDED') {
  mocks.athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  mocks.athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { QueryExecutionId: 'q-1', Status: { State: state } } });
  mocks.athena.on(GetQueryResultsCommand).callsFake((input: GetQueryResultsCommandInput) => pages[Number(input.NextToken ?? 0)]);
}

const LAKE = ['source', 'raw', 'curated', 'curated_distinct', 'not_curated', 'not_curated_examples', 'not_raw', 'not_raw_examples', 'curated_fingerprint'];

function stubWarehouse(mocks: AwsMocks, rows: Record<string, { longValue?: number; stringValue?: string; isNull?: boolean }>[]) {
  mocks.redshiftData.on(BatchExecuteStatementCommand).resolves({ Id: 'wh-1' });
  mocks.redshiftData.on(ExecuteStatementCommand).resolves({ Id: 'wh-1' });
  mocks.redshiftData.on(DescribeStatementCommand).resolves({ Id: 'wh-1', Status: 'FINISHED' });
  mocks.redshiftData.on(GetStatementResultCommand).callsFake((input: { Id: string }) => {
    const i = Number(/:(\d+)$/.exec(input.Id)?.[1] ?? 1) - 1;
    const row = rows[i] ?? {};
    return { ColumnMetadata: Object.keys(row).map((name) => ({ name })), Records: [Object.values(row)] };
  });
}

const startedSql = (mocks: AwsMocks) => mocks.athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input);

describe('countRawWindows (aws)', () => {
  test('counts every raw copy per source and window in one Athena query over the crawled raw tables, reading all result pages', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), table('raw_vehicle', GPS, 'int'), iceberg('gps', GPS)] });
    const columns = ['source', 'w0', 'w1'];
    stubQuery(mocks, [page(columns, [['vehicle', '4', '0']], { next: '1' }), page(columns, [['gps', '12', '3']], { header: false })]);
    const later = { from: '2026-03-02T12:05:00.000Z', to: '2026-03-02T12:10:00.000Z' };
    const run = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window, later] }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.result, [
      { vehicle: 4, gps: 12, traffic: 0, weather: 0, emergency: 0 },
      { vehicle: 0, gps: 3, traffic: 0, weather: 0, emergency: 0 },
    ]);
    const [start] = startedSql(mocks);
    assert.equal(start?.WorkGroup, 'primary');
    assert.equal(start?.QueryExecutionContext?.Database, 'smartcity');
    assert.equal(start?.ResultConfiguration?.OutputLocation, 's3://sc-athena/results/');
    assert.match(start?.ClientRequestToken ?? '', /^[0-9a-f]{64}$/);
    const sql = start?.QueryString ?? '';
    assert.match(sql, /FROM "raw_vehicle" WHERE \(\("date" = '2026-03-02' AND "hour" = 12\)\)/, 'an int partition key compares with a number');
    assert.match(sql, /FROM "raw_gps" WHERE \(\("date" = '2026-03-02' AND "hour" = '12'\)\)/);
    assert.match(sql, /count_if\(from_iso8601_timestamp\("event_time"\) >= from_iso8601_timestamp\('2026-03-02T12:05:00.000Z'\)/);
    assert.doesNotMatch(sql, /"gps"/, 'the curated table is not counted');
    assert.equal(mocks.athena.commandCalls(GetQueryResultsCommand).length, 2);
  });

  test('no window or no raw table yet: zeros without a query', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    assert.deepEqual((await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [] }), { info })).result, []);
    const run = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window] }), { info });
    assert.deepEqual(run.result, [{ vehicle: 0, gps: 0, traffic: 0, weather: 0, emergency: 0 }]);
    assert.equal(startedSql(mocks).length, 0);
  });

  test('a failed query fails for good with its StateChangeReason', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS)] });
    stubQuery(mocks, []);
    mocks.athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: {
        QueryExecutionId: 'q-1',
        Status: { State: 'FAILED', StateChangeReason: "HIVE_BAD_DATA: Field event_time's type INT64 in parquet is incompatible with type string", AthenaError: { ErrorCategory: 2, ErrorType: 1301 } },
      },
    });
    const run = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window] }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.type, 'Athena.QueryFailed');
    assert.equal(run.error.nonRetryable, true);
    assert.match(run.error.message, /raw counts of 1 window\(s\): Athena query q-1 FAILED: HIVE_BAD_DATA: Field event_time's type INT64/);
    assert.match(run.error.message, /re-run the crawler/);
  });

  test('a throttled GetQueryExecution fails the attempt retryably; the next attempt resumes the query from its heartbeat', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS)] });
    stubQuery(mocks, [page(['source', 'w0'], [['gps', '5']])]);
    mocks.athena.on(GetQueryExecutionCommand).rejectsOnce(sdkError('TooManyRequestsException'));
    const first = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window] }), { info });
    assert.ok(first.error instanceof ApplicationFailure, String(first.error));
    assert.equal(first.error.nonRetryable, false);
    assert.match(first.error.message, /athena:GetQueryExecution on query q-1/);
    assert.deepEqual(first.heartbeats.at(-1), { handle: 'q-1' });
    stubQuery(mocks, [page(['source', 'w0'], [['gps', '5']])]);
    const second = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window] }), { info, heartbeatDetails: first.heartbeats.at(-1) });
    assert.equal(second.result?.[0]?.gps, 5);
    assert.equal(startedSql(mocks).length, 1, 'the query was not started again');
  });

  test('AccessDenied on the catalog fails fast, naming the action and the database', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).rejects(sdkError('AccessDeniedException'));
    const run = await runActivity(() => athenaActivities(deps).countRawWindows({ windows: [window] }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.nonRetryable, true);
    assert.match(run.error.message, /glue:GetTables on database smartcity/);
  });
});

describe('checkQuality (aws)', () => {
  const goodLake = ['gps', '10', '10', '10', '0', null, '0', null, '21474836470'];
  const goodWarehouse = { row_count: { longValue: 10 }, distinct_ids: { longValue: 10 }, fingerprint: { stringValue: '21474836470' } };

  test('all layers agreeing passes the same checks the local target runs, with counts per layer', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS)] });
    stubQuery(mocks, [page(LAKE, [goodLake])]);
    stubWarehouse(mocks, [goodWarehouse]);
    const run = await runActivity(() => qualityActivities(deps).checkQuality({ window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    const result = run.result!;
    assert.equal(result.passed, true, JSON.stringify(result.checks.filter((c) => !c.passed)));
    assert.deepEqual(
      result.checks.map((c) => c.name),
      SOURCES.flatMap((s) => ['reconcile_raw_curated', 'warehouse_matches_curated', 'unique_event_id', 'required_not_null', 'values_in_range'].map((n) => `${n}.${s}`)),
    );
    assert.deepEqual(result.counts, {
      raw: { vehicle: 0, gps: 10, traffic: 0, weather: 0, emergency: 0 },
      curated: { vehicle: 0, gps: 10, traffic: 0, weather: 0, emergency: 0 },
      warehouse: { vehicle: 0, gps: 10, traffic: 0, weather: 0, emergency: 0 },
    });
    // One warehouse source: a single statement; its SELECT checks the contract of gps.
    const [statement] = mocks.redshiftData.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input);
    assert.match(statement?.Sql ?? '', /FROM "public"."gps" WHERE "event_time" >= TIMESTAMP '2026-03-02 12:00:00.000'/);
    assert.match(statement?.Sql ?? '', /sum\(CASE WHEN "lat" IS NULL THEN 1 ELSE 0 END\)/);
    assert.match(statement?.Sql ?? '', /"lat" < -90 OR "lat" > 90/);
    const lakeSql = startedSql(mocks)[0]?.QueryString ?? '';
    assert.match(lakeSql, /r_gps AS \(SELECT DISTINCT "event_id" AS event_id FROM "raw_gps"/);
    // No snapshot given: the table as it is now; Iceberg prunes its hours(event_time) partitions itself.
    assert.match(lakeSql, /c_gps AS \(SELECT "event_id" AS event_id FROM "smartcity"\."gps" WHERE "event_time" >= TIMESTAMP '2026-03-02 12:00:00.000' AND "event_time" < TIMESTAMP '2026-03-02 12:05:00.000'\)/);
  });

  test('reads curated as of the curate\'s snapshot (FOR VERSION AS OF), per source; a source without one as the table is now', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS), iceberg('vehicle', columnsOf('vehicle'))] });
    stubQuery(mocks, [page(LAKE, [goodLake])]);
    stubWarehouse(mocks, [goodWarehouse, goodWarehouse]);
    const run = await runActivity(() => qualityActivities(deps).checkQuality({ window, snapshots: { gps: '9007199254740993' } }), { info });
    assert.equal(run.error, undefined, String(run.error));
    const lakeSql = startedSql(mocks)[0]?.QueryString ?? '';
    assert.match(lakeSql, /c_gps AS \(SELECT "event_id" AS event_id FROM "smartcity"\."gps" FOR VERSION AS OF 9007199254740993 WHERE "event_time" >= /);
    assert.match(lakeSql, /c_vehicle AS \(SELECT "event_id" AS event_id FROM "smartcity"\."vehicle" WHERE /);
  });

  test('a snapshot id that is not a decimal id, or one of a table that does not exist, fails for good before any query', async () => {
    for (const [snapshots, type, message] of [
      [{ gps: '1 OR 1=1' }, 'InvalidInput', /snapshot id of gps "1 OR 1=1" is not a decimal snapshot id/],
      [{ traffic: '42' }, 'Aws.CuratedTableMissing', /committed snapshot 42 of traffic, but the Glue database smartcity has no table traffic/],
    ] as const) {
      const { deps, mocks } = mockedAwsDeps();
      mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS)] });
      stubQuery(mocks, [page(LAKE, [goodLake])]);
      stubWarehouse(mocks, [goodWarehouse]);
      const run = await runActivity(() => qualityActivities(deps).checkQuality({ window, snapshots }), { info });
      assert.ok(run.error instanceof ApplicationFailure, String(run.error));
      assert.equal(run.error.type, type);
      assert.equal(run.error.nonRetryable, true);
      assert.match(run.error.message, message);
      assert.equal(startedSql(mocks).length, 0);
    }
  });

  test('names what is wrong: ids missing from curated, fewer or other warehouse rows, copies, NULLs and values outside the contract', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS), iceberg('vehicle', columnsOf('vehicle'))] });
    stubQuery(mocks, [page(LAKE, [['gps', '11', '10', '10', '1', 'id-9', '0', null, '21474836470'], ['vehicle', '2', '2', '2', '0', null, '0', null, '77']])]);
    // Statements in source order: vehicle first, then gps.
    stubWarehouse(mocks, [
      { row_count: { longValue: 2 }, distinct_ids: { longValue: 2 }, fingerprint: { stringValue: '78' } },
      {
        ...goodWarehouse,
        row_count: { longValue: 11 },
        distinct_ids: { longValue: 10 },
        fingerprint: { stringValue: '21474836999' },
        [`null_${LAT}`]: { longValue: 2 },
        [`null_id_${LAT}`]: { stringValue: 'id-3' },
        [`bad_${LAT}`]: { longValue: 1 },
        [`bad_id_${LAT}`]: { stringValue: 'id-4' },
        [`bad_min_${LAT}`]: { stringValue: '91.5' },
        [`bad_max_${LAT}`]: { stringValue: '91.5' },
      },
    ]);
    const run = await runActivity(() => qualityActivities(deps).checkQuality({ window }), { info });
    const result = run.result!;
    assert.equal(result.passed, false);
    const failed = Object.fromEntries(result.checks.filter((c) => !c.passed).map((c) => [c.name, c.detail]));
    assert.deepEqual(Object.keys(failed).sort(), [
      'reconcile_raw_curated.gps',
      'required_not_null.gps',
      'unique_event_id.gps',
      'values_in_range.gps',
      'warehouse_matches_curated.gps',
      'warehouse_matches_curated.vehicle',
    ]);
    assert.match(failed['reconcile_raw_curated.gps']!, /curated has 10 rows for 11 distinct raw event_ids; 1 raw event_ids missing from curated \(e\.g\. id-9\); re-run curateWindow/);
    assert.match(failed['warehouse_matches_curated.gps']!, /warehouse table gps has 11 rows for the window, curated 10/);
    assert.match(failed['warehouse_matches_curated.vehicle']!, /the event_ids differ/);
    assert.match(failed['unique_event_id.gps']!, /1 extra copies of event_ids in warehouse table gps/);
    assert.match(failed['required_not_null.gps']!, /lat: 2 rows \(e\.g\. event_id id-3\)/);
    assert.match(failed['values_in_range.gps']!, /lat: 1 rows not within \[-90, 90\], seen 91\.5 \(e\.g\. event_id id-4\)/);
    assert.equal(mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).length, 1, 'two sources: one batch');
  });

  test('a workflow cancel stops both the Athena query and the Redshift statement', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS)] });
    stubQuery(mocks, [], 'RUNNING');
    stubWarehouse(mocks, []);
    mocks.redshiftData.on(DescribeStatementCommand).resolves({ Id: 'wh-1', Status: 'STARTED' });
    const run = await runActivity(() => qualityActivities(deps).checkQuality({ window }), { info, cancel: { afterHeartbeats: 3, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
    assert.deepEqual(mocks.athena.commandCalls(StopQueryExecutionCommand).map((c) => c.args[0].input.QueryExecutionId), ['q-1']);
    assert.deepEqual(mocks.redshiftData.commandCalls(CancelStatementCommand).map((c) => c.args[0].input.Id), ['wh-1']);
    assert.deepEqual(run.heartbeats[0], { handle: { lake: 'q-1', warehouse: 'wh-1' } });
  });

  test('a heartbeat-timeout cancel leaves the query and the statement running', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [table('raw_gps', GPS), iceberg('gps', GPS)] });
    stubQuery(mocks, [], 'RUNNING');
    stubWarehouse(mocks, []);
    mocks.redshiftData.on(DescribeStatementCommand).resolves({ Id: 'wh-1', Status: 'STARTED' });
    const run = await runActivity(() => qualityActivities(deps).checkQuality({ window }), { info, cancel: { afterHeartbeats: 2, how: 'heartbeat-timeout' } });
    assert.ok(run.error instanceof CancelledFailure, String(run.error));
    assert.equal(mocks.athena.commandCalls(StopQueryExecutionCommand).length, 0);
    assert.equal(mocks.redshiftData.commandCalls(CancelStatementCommand).length, 0);
  });
});
