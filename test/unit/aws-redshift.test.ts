// loadWarehouse on the aws target (Redshift Data API), with aws-sdk-client-mock clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
  type BatchExecuteStatementCommandInput,
} from '@aws-sdk/client-redshift-data';
import { GetTablesCommand } from '@aws-sdk/client-glue';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { CatalogColumn } from '../../activities/aws/glue';
import { lakeSchemaStatement, loadStatements, redshiftActivities, redshiftType } from '../../activities/aws/redshift';
import { parseWindow } from '../../activities/duckdb';
import { mockedAwsDeps, runActivity, sdkError, type AwsMocks, type CancelHow } from '../helpers/aws-mock';

const window = { from: '2026-03-02T12:55:00.000Z', to: '2026-03-02T13:05:00.000Z' };
const GPS_COLUMNS: CatalogColumn[] = [
  { name: 'event_id', type: 'string' },
  { name: 'source', type: 'string' },
  { name: 'seq', type: 'bigint' },
  { name: 'event_time', type: 'timestamp' },
  { name: 'lat', type: 'double' },
  { name: 'speed', type: 'decimal(6, 2)' },
];
const info = { workflowExecution: { workflowId: 'batch-2026-03-02T12:55', runId: 'run-1' }, activityId: '5' };

/** A curated table as Iceberg's Glue catalog registers it: table_type ICEBERG, no Glue partitions. */
function icebergTable(name: string, columns: CatalogColumn[], dropped: CatalogColumn[] = []) {
  const column = (c: CatalogColumn, current: boolean) => ({ Name: c.name, Type: c.type, Parameters: { 'iceberg.field.current': String(current) } });
  return {
    Name: name,
    Parameters: { table_type: 'ICEBERG', metadata_location: `s3://sc-curated/${name}/metadata/00003-x.metadata.json` },
    StorageDescriptor: { Location: `s3://sc-curated/${name}`, Columns: [...columns.map((c) => column(c, true)), ...dropped.map((c) => column(c, false))] },
  };
}

/** gps and vehicle have curated tables (vehicle's lists a column an earlier schema had); the others have nothing curated. */
function stubLake(mocks: AwsMocks): void {
  mocks.glue.on(GetTablesCommand).resolves({
    TableList: [
      icebergTable('gps', GPS_COLUMNS),
      icebergTable('vehicle', GPS_COLUMNS.slice(0, 4), [{ name: 'old_speed', type: 'float' }]),
      { Name: 'raw_gps', StorageDescriptor: { Columns: GPS_COLUMNS.map((c) => ({ Name: c.name, Type: c.type })) }, PartitionKeys: [{ Name: 'date', Type: 'string' }] },
    ],
  });
}

/**
 * The external schema's statement gets the id `schema` and finishes at once; batches get ids
 * stmt-<source> and finish after `pollsUntilDone` describes; counts per source.
 */
function stubStatements(mocks: AwsMocks, opts: { pollsUntilDone?: number; rows?: Record<string, number> } = {}) {
  const polls = new Map<string, number>();
  mocks.redshiftData.on(ExecuteStatementCommand).resolves({ Id: 'schema' });
  mocks.redshiftData.on(BatchExecuteStatementCommand).callsFake((input: BatchExecuteStatementCommandInput) => {
    const source = /"public"\."(\w+)"/.exec(input.Sqls?.[0] ?? '')?.[1];
    return { Id: `stmt-${source}` };
  });
  mocks.redshiftData.on(DescribeStatementCommand).callsFake((input: { Id: string }) => {
    const n = (polls.get(input.Id) ?? 0) + 1;
    polls.set(input.Id, n);
    return { Id: input.Id, Status: input.Id === 'schema' || n >= (opts.pollsUntilDone ?? 1) ? 'FINISHED' : 'STARTED' };
  });
  mocks.redshiftData.on(GetStatementResultCommand).callsFake((input: { Id: string }) => {
    const source = /^stmt-(\w+):\d+$/.exec(input.Id)?.[1] ?? '';
    return { ColumnMetadata: [{ name: 'row_count' }], Records: [[{ longValue: opts.rows?.[source] ?? 0 }]] };
  });
}

const batches = (mocks: AwsMocks) => mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input);
const singles = (mocks: AwsMocks) => mocks.redshiftData.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input);
const LAKE_SCHEMA = `CREATE EXTERNAL SCHEMA IF NOT EXISTS "smartcity_lake" FROM DATA CATALOG DATABASE 'smartcity' IAM_ROLE 'arn:aws:iam::123456789012:role/smartcity-copy'`;

describe('loadWarehouse (aws)', () => {
  test('makes the external schema first, then loads each source with a curated table in one batch: delete + insert of the window from the Iceberg table, row count', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks, { pollsUntilDone: 2, rows: { gps: 7, vehicle: 3 } });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window, snapshots: { gps: '4312', vehicle: '77' } }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.result, { rows: { vehicle: 3, gps: 7, traffic: 0, weather: 0, emergency: 0 } });
    // The external schema on the Glue database, with the COPY role, in its own statement, finished before any load began.
    const [schema, ...more] = singles(mocks);
    assert.equal(more.length, 0);
    assert.equal(schema?.Sql, LAKE_SCHEMA);
    assert.equal(schema?.WorkgroupName, 'smartcity');
    assert.match(schema?.ClientToken ?? '', /^[0-9a-f]{64}$/);
    const calls = mocks.redshiftData.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    assert.ok(calls.indexOf('DescribeStatementCommand') < calls.indexOf('BatchExecuteStatementCommand'), calls.join(' '));
    assert.deepEqual(run.heartbeats[0], { handle: { phase: 'first', handle: 'schema' } });
    assert.deepEqual((run.heartbeats[1] as { handle: unknown }).handle, { phase: 'then', handle: { vehicle: 'stmt-vehicle', gps: 'stmt-gps' } });
    const sent = batches(mocks);
    assert.deepEqual(
      sent.map((b) => /^CREATE TABLE IF NOT EXISTS "public"\."(\w+)"/.exec(b.Sqls?.[0] ?? '')?.[1]),
      ['vehicle', 'gps'],
    );
    const gps = sent[1]!;
    assert.equal(gps.WorkgroupName, 'smartcity');
    assert.equal(gps.Database, 'dev');
    assert.equal(gps.ClusterIdentifier, undefined);
    assert.match(gps.ClientToken ?? '', /^[0-9a-f]{64}$/);
    const sqls = gps.Sqls!;
    assert.equal(sqls[0], `CREATE TABLE IF NOT EXISTS "public"."gps" ("event_id" VARCHAR(65535), "source" VARCHAR(65535), "seq" BIGINT, "event_time" TIMESTAMP, "lat" DOUBLE PRECISION, "speed" DECIMAL(6,2))`);
    assert.ok(!sqls.some((s) => /^COPY|TEMP TABLE|VERSION AS OF/.test(s)), 'no staging: the Iceberg table is read as it is now');
    const inWindow = `"event_time" >= TIMESTAMP '2026-03-02 12:55:00.000' AND "event_time" < TIMESTAMP '2026-03-02 13:05:00.000'`;
    assert.equal(sqls[1], `DELETE FROM "public"."gps" WHERE ${inWindow}`);
    assert.equal(sqls[2], `INSERT INTO "public"."gps" ("event_id", "source", "seq", "event_time", "lat", "speed") SELECT "event_id", "source", "seq", "event_time", "lat", "speed" FROM "smartcity_lake"."gps" WHERE ${inWindow}`);
    assert.equal(sqls.at(-1), `SELECT count(*) AS row_count FROM "public"."gps" WHERE ${inWindow}`);
    assert.doesNotMatch(sent[0]!.Sqls![0]!, /old_speed/, 'a column of an earlier schema is not the table\'s');
    assert.deepEqual(
      mocks.redshiftData.commandCalls(GetStatementResultCommand).map((c) => c.args[0].input.Id).sort(),
      [`stmt-gps:${sqls.length}`, `stmt-vehicle:${sent[0]!.Sqls!.length}`],
    );
  });

  test('a provisioned cluster gets ClusterIdentifier and the secret instead of the workgroup', async () => {
    const mocked = mockedAwsDeps();
    const { mocks } = mocked;
    const { workgroup: _serverless, ...redshift } = mocked.deps.aws.redshift;
    const aws = { ...mocked.deps.aws, redshift: { ...redshift, clusterId: 'smartcity-dw', secretArn: 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:dw-AbC' } };
    const deps = { ...mocked.deps, aws };
    stubLake(mocks);
    stubStatements(mocks);
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    const [first] = batches(mocks);
    assert.equal(first?.ClusterIdentifier, 'smartcity-dw');
    assert.equal(first?.SecretArn, 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:dw-AbC');
    assert.equal(first?.WorkgroupName, undefined);
  });

  test('a retried attempt sends the same ClientToken; another workflow run of the window sends another', async () => {
    const tokens = async (runId: string) => {
      const { deps, mocks } = mockedAwsDeps();
      stubLake(mocks);
      stubStatements(mocks);
      await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info: { ...info, workflowExecution: { ...info.workflowExecution, runId } } });
      return batches(mocks).map((b) => b.ClientToken);
    };
    const first = await tokens('run-1');
    assert.deepEqual(await tokens('run-1'), first);
    const other = await tokens('run-2');
    assert.notDeepEqual(other, first);
    assert.equal(new Set([...first, ...other]).size, 4, 'one token per source and run');
  });

  test('the external schema statement keeps its token on a retry too', async () => {
    const token = async () => {
      const { deps, mocks } = mockedAwsDeps();
      stubLake(mocks);
      stubStatements(mocks);
      await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
      return singles(mocks).map((s) => s.ClientToken);
    };
    const first = await token();
    assert.equal(first.length, 1);
    assert.deepEqual(await token(), first);
  });

  test('a failed statement fails for good with its Error and the failing statement', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks);
    mocks.redshiftData.on(DescribeStatementCommand, { Id: 'stmt-gps' }).resolves({
      Id: 'stmt-gps',
      Status: 'FAILED',
      Error: 'ERROR: Spectrum Scan Error: S3 access denied for s3://sc-curated/gps/data/',
      SubStatements: [
        { Id: 'stmt-gps:1', Status: 'FINISHED', QueryString: 'CREATE TABLE IF NOT EXISTS …' },
        { Id: 'stmt-gps:2', Status: 'FINISHED', QueryString: 'DELETE FROM …' },
        { Id: 'stmt-gps:3', Status: 'FAILED', QueryString: `INSERT INTO "public"."gps" ("event_id") SELECT "event_id" FROM "smartcity_lake"."gps"`, Error: 'S3 access denied' },
        { Id: 'stmt-gps:4', Status: 'ABORTED', QueryString: 'CREATE TABLE IF NOT EXISTS …' },
      ],
    });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    const err = run.error;
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'Redshift.StatementFailed');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /warehouse load of gps for 2026-03-02T12:55:00.000Z\/2026-03-02T13:05:00.000Z: Redshift statement stmt-gps FAILED: ERROR: Spectrum Scan Error/);
    assert.match(err.message, /at statement 3 of 4: INSERT INTO "public"\."gps" \("event_id"\) SELECT "event_id" FROM "smartcity_lake"\."gps"/);
    assert.match(err.message, /rolled back/);
    const [details] = err.details as [{ statementId: string; failedStatement: { index: number } }];
    assert.equal(details.statementId, 'stmt-gps');
    assert.equal(details.failedStatement.index, 3);
  });

  test('a throttled DescribeStatement fails the attempt retryably; the next attempt resumes the statements from its heartbeat', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks, { rows: { gps: 7, vehicle: 3 } });
    mocks.redshiftData.on(DescribeStatementCommand, { Id: 'stmt-gps' }).rejectsOnce(sdkError('ThrottlingException', { status: 400 }));
    const first = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.ok(first.error instanceof ApplicationFailure, String(first.error));
    assert.equal(first.error.nonRetryable, false);
    assert.equal(first.error.type, 'Aws.ThrottlingException');
    assert.match(first.error.message, /redshift-data:DescribeStatement/);
    const heartbeat = first.heartbeats.at(-1) as { handle: unknown };
    assert.deepEqual(heartbeat.handle, { phase: 'then', handle: { vehicle: 'stmt-vehicle', gps: 'stmt-gps' } });

    stubStatements(mocks, { rows: { gps: 7, vehicle: 3 } });
    const started = batches(mocks).length + singles(mocks).length;
    const second = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info, heartbeatDetails: heartbeat });
    assert.equal(second.error, undefined, String(second.error));
    assert.equal(second.result?.rows.gps, 7);
    assert.equal(batches(mocks).length + singles(mocks).length, started, 'no statement started again');
  });

  test('an attempt that stopped while the external schema was being made resumes it, then starts the loads', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks, { rows: { gps: 7 } });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info, heartbeatDetails: { handle: { phase: 'first', handle: 'schema' } } });
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.result?.rows.gps, 7);
    assert.equal(singles(mocks).length, 0, 'the schema statement was not sent again');
    assert.equal(batches(mocks).length, 2);
  });

  test('a failed external schema statement fails for good before any load starts', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks);
    mocks.redshiftData.on(DescribeStatementCommand, { Id: 'schema' }).resolves({ Id: 'schema', Status: 'FAILED', Error: 'ERROR: Not authorized to get credentials of role arn:aws:iam::123456789012:role/smartcity-copy' });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.type, 'Redshift.StatementFailed');
    assert.match(run.error.message, /external schema smartcity_lake for the warehouse load of .*: Redshift statement schema FAILED: ERROR: Not authorized/);
    assert.equal(batches(mocks).length, 0);
  });

  test('ActiveStatementsExceededException on start is retried; AccessDenied fails fast naming the action', async () => {
    for (const [code, retryable] of [
      ['ActiveStatementsExceededException', true],
      ['AccessDeniedException', false],
    ] as const) {
      const { deps, mocks } = mockedAwsDeps();
      stubLake(mocks);
      stubStatements(mocks);
      mocks.redshiftData.on(BatchExecuteStatementCommand).rejects(sdkError(code));
      const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
      assert.ok(run.error instanceof ApplicationFailure, String(run.error));
      assert.equal(run.error.type, `Aws.${code}`);
      assert.equal(run.error.nonRetryable, !retryable, code);
      assert.match(run.error.message, /redshift-data:BatchExecuteStatement on workgroup smartcity/);
    }
  });

  for (const how of ['workflow', 'worker-shutdown'] as CancelHow[]) {
    test(`a ${how} cancel ${how === 'workflow' ? 'stops every running statement with CancelStatement' : 'leaves the statements running'}`, async () => {
      const { deps, mocks } = mockedAwsDeps();
      stubLake(mocks);
      stubStatements(mocks, { pollsUntilDone: 1_000_000 });
      mocks.redshiftData.on(CancelStatementCommand).resolves({ Status: true });
      // Heartbeats: the schema statement, the loads started, a poll of the loads.
      const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info, cancel: { afterHeartbeats: 3, how } });
      assert.ok(run.error instanceof CancelledFailure, String(run.error));
      const cancelled = mocks.redshiftData.commandCalls(CancelStatementCommand).map((c) => c.args[0].input.Id).sort();
      assert.deepEqual(cancelled, how === 'workflow' ? ['stmt-gps', 'stmt-vehicle'] : []);
    });
  }

  test('a committed snapshot without its curated table fails for good, naming the table and the snapshot', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window, snapshots: { traffic: '981' } }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.type, 'Aws.CuratedTableMissing');
    assert.equal(run.error.nonRetryable, true);
    assert.match(run.error.message, /committed snapshot 981 of traffic, but the Glue database smartcity has no table traffic/);
    assert.equal(batches(mocks).length + singles(mocks).length, 0);
  });

  test('a curated table of the right name that is not Iceberg fails for good', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [{ Name: 'gps', StorageDescriptor: { Columns: [{ Name: 'event_id', Type: 'string' }] } }] });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.type, 'Aws.CuratedTableNotIceberg');
  });

  test('nothing curated anywhere loads nothing and sends no statement, not even the external schema', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.deepEqual(run.result, { rows: { vehicle: 0, gps: 0, traffic: 0, weather: 0, emergency: 0 } });
    assert.equal(batches(mocks).length + singles(mocks).length, 0);
  });
});

describe('warehouse DDL', () => {
  test('maps the crawler types and refuses nested ones with a message naming the column', () => {
    assert.equal(redshiftType({ name: 'a', type: 'int' }), 'INTEGER');
    assert.equal(redshiftType({ name: 'a', type: 'varchar(64)' }), 'VARCHAR(64)');
    assert.equal(redshiftType({ name: 'a', type: 'boolean' }), 'BOOLEAN');
    assert.throws(() => redshiftType({ name: 'location', type: 'struct<lat:double,lon:double>' }), /curated column location has type struct<lat:double,lon:double>/);
  });

  test('the warehouse schema may share the Glue database\'s name: the lake is read through <database>_lake', () => {
    const { deps } = mockedAwsDeps({ SMARTCITY_REDSHIFT_SCHEMA: 'smartcity' });
    const sqls = loadStatements(deps, 'gps', GPS_COLUMNS, parseWindow(window));
    assert.match(sqls[0]!, /^CREATE TABLE IF NOT EXISTS "smartcity"\."gps" \(/);
    assert.match(sqls[2]!, /^INSERT INTO "smartcity"\."gps" \(.*\) SELECT .* FROM "smartcity_lake"\."gps" WHERE /);
    assert.equal(lakeSchemaStatement(deps), LAKE_SCHEMA);
  });
});
