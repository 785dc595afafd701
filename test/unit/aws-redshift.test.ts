// loadWarehouse on the aws target (Redshift Data API), with aws-sdk-client-mock clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  GetStatementResultCommand,
  type BatchExecuteStatementCommandInput,
} from '@aws-sdk/client-redshift-data';
import { GetTablesCommand } from '@aws-sdk/client-glue';
import { ListObjectsV2Command, type ListObjectsV2CommandInput } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { CatalogColumn } from '../../activities/aws/glue';
import { loadStatements, redshiftActivities, redshiftType } from '../../activities/aws/redshift';
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

function glueTable(name: string, columns: CatalogColumn[]) {
  return { Name: name, StorageDescriptor: { Columns: columns.map((c) => ({ Name: c.name, Type: c.type })) }, PartitionKeys: [{ Name: 'date', Type: 'string' }, { Name: 'hour', Type: 'string' }] };
}

/** gps landed in both hours of the window, vehicle only in 13h; the others have nothing curated. */
function stubLake(mocks: AwsMocks): void {
  mocks.glue.on(GetTablesCommand).resolves({ TableList: [glueTable('curated_gps', GPS_COLUMNS), glueTable('curated_vehicle', GPS_COLUMNS.slice(0, 4)), glueTable('raw_gps', GPS_COLUMNS)] });
  const landed = new Set(['curated/gps/date=2026-03-02/hour=12/', 'curated/gps/date=2026-03-02/hour=13/', 'curated/vehicle/date=2026-03-02/hour=13/']);
  mocks.s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) => ({ KeyCount: landed.has(input.Prefix ?? '') ? 1 : 0 }));
}

/** Batches get ids stmt-<source>; they finish after `pollsUntilDone` describes; counts per source. */
function stubStatements(mocks: AwsMocks, opts: { pollsUntilDone?: number; rows?: Record<string, number> } = {}) {
  const polls = new Map<string, number>();
  mocks.redshiftData.on(BatchExecuteStatementCommand).callsFake((input: BatchExecuteStatementCommandInput) => {
    const source = /"public"\."(\w+)"/.exec(input.Sqls?.[0] ?? '')?.[1];
    return { Id: `stmt-${source}` };
  });
  mocks.redshiftData.on(DescribeStatementCommand).callsFake((input: { Id: string }) => {
    const n = (polls.get(input.Id) ?? 0) + 1;
    polls.set(input.Id, n);
    return { Id: input.Id, Status: n >= (opts.pollsUntilDone ?? 1) ? 'FINISHED' : 'STARTED' };
  });
  mocks.redshiftData.on(GetStatementResultCommand).callsFake((input: { Id: string }) => {
    const source = /^stmt-(\w+):\d+$/.exec(input.Id)?.[1] ?? '';
    return { ColumnMetadata: [{ name: 'row_count' }], Records: [[{ longValue: opts.rows?.[source] ?? 0 }]] };
  });
}

const batches = (mocks: AwsMocks) => mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input);

describe('loadWarehouse (aws)', () => {
  test('loads each source with curated data in one batch: staging table, COPY per landed hour, delete + insert of the window, row count', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks, { pollsUntilDone: 2, rows: { gps: 7, vehicle: 3 } });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual(run.result, { rows: { vehicle: 3, gps: 7, traffic: 0, weather: 0, emergency: 0 } });
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
    assert.match(sqls[1]!, /^CREATE TEMP TABLE "stage_gps" \("event_id" VARCHAR\(65535\), "source" VARCHAR\(65535\), "seq" BIGINT, "event_time" TIMESTAMP, "lat" DOUBLE PRECISION, "speed" DECIMAL\(6,2\)\)$/);
    assert.deepEqual(
      sqls.filter((s) => s.startsWith('COPY')),
      ['12', '13'].map(
        (h) => `COPY "stage_gps" FROM 's3://sc-curated/curated/gps/date=2026-03-02/hour=${h}/' IAM_ROLE 'arn:aws:iam::123456789012:role/smartcity-copy' FORMAT AS PARQUET`,
      ),
    );
    const inWindow = `"event_time" >= TIMESTAMP '2026-03-02 12:55:00.000' AND "event_time" < TIMESTAMP '2026-03-02 13:05:00.000'`;
    assert.ok(sqls.includes(`DELETE FROM "public"."gps" WHERE ${inWindow}`), sqls.join('\n'));
    const insert = sqls.findIndex((s) => s.startsWith('INSERT INTO "public"."gps"'));
    assert.ok(insert > sqls.indexOf(`DELETE FROM "public"."gps" WHERE ${inWindow}`), 'delete, then insert, in the same batch');
    assert.equal(sqls[insert], `INSERT INTO "public"."gps" ("event_id", "source", "seq", "event_time", "lat", "speed") SELECT "event_id", "source", "seq", "event_time", "lat", "speed" FROM "stage_gps" WHERE ${inWindow}`);
    assert.equal(sqls.at(-1), `SELECT count(*) AS row_count FROM "public"."gps" WHERE ${inWindow}`);
    assert.equal(sent[0]!.Sqls!.filter((s) => s.startsWith('COPY')).length, 1, 'vehicle landed in one hour only');
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

  test('a failed statement fails for good with its Error and the failing statement', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks);
    mocks.redshiftData.on(DescribeStatementCommand, { Id: 'stmt-gps' }).resolves({
      Id: 'stmt-gps',
      Status: 'FAILED',
      Error: 'ERROR: Spectrum Scan Error: S3 access denied for s3://sc-curated/curated/gps/',
      SubStatements: [
        { Id: 'stmt-gps:1', Status: 'FINISHED', QueryString: 'CREATE TABLE IF NOT EXISTS …' },
        { Id: 'stmt-gps:2', Status: 'FINISHED', QueryString: 'CREATE TEMP TABLE …' },
        { Id: 'stmt-gps:3', Status: 'FAILED', QueryString: `COPY "stage_gps" FROM 's3://sc-curated/curated/gps/date=2026-03-02/hour=12/'`, Error: 'S3 access denied' },
        { Id: 'stmt-gps:4', Status: 'ABORTED', QueryString: 'COPY …' },
      ],
    });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    const err = run.error;
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'Redshift.StatementFailed');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /warehouse load of gps for 2026-03-02T12:55:00.000Z\/2026-03-02T13:05:00.000Z: Redshift statement stmt-gps FAILED: ERROR: Spectrum Scan Error/);
    assert.match(err.message, /at statement 3 of 4: COPY "stage_gps" FROM 's3:\/\/sc-curated\/curated\/gps\/date=2026-03-02\/hour=12\/'/);
    assert.match(err.message, /rolled back/);
    const [details] = err.details as [{ statementId: string; failedStatement: { index: number } }];
    assert.equal(details.statementId, 'stmt-gps');
    assert.equal(details.failedStatement.index, 3);
  });

  test('a throttled DescribeStatement fails the attempt retryably; the next attempt resumes the statements from its heartbeat', async () => {
    const { deps, mocks } = mockedAwsDeps();
    stubLake(mocks);
    stubStatements(mocks, { rows: { gps: 7, vehicle: 3 } });
    mocks.redshiftData.on(DescribeStatementCommand).rejectsOnce(sdkError('ThrottlingException', { status: 400 }));
    const first = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.ok(first.error instanceof ApplicationFailure, String(first.error));
    assert.equal(first.error.nonRetryable, false);
    assert.equal(first.error.type, 'Aws.ThrottlingException');
    assert.match(first.error.message, /redshift-data:DescribeStatement/);
    const heartbeat = first.heartbeats.at(-1);
    assert.deepEqual(heartbeat, { handle: { vehicle: 'stmt-vehicle', gps: 'stmt-gps' } });

    stubStatements(mocks, { rows: { gps: 7, vehicle: 3 } });
    const started = batches(mocks).length;
    const second = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info, heartbeatDetails: heartbeat });
    assert.equal(second.error, undefined, String(second.error));
    assert.equal(second.result?.rows.gps, 7);
    assert.equal(batches(mocks).length, started, 'no statement started again');
  });

  test('ActiveStatementsExceededException on start is retried; AccessDenied fails fast naming the action', async () => {
    for (const [code, retryable] of [
      ['ActiveStatementsExceededException', true],
      ['AccessDeniedException', false],
    ] as const) {
      const { deps, mocks } = mockedAwsDeps();
      stubLake(mocks);
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
      const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info, cancel: { afterHeartbeats: 3, how } });
      assert.ok(run.error instanceof CancelledFailure, String(run.error));
      const cancelled = mocks.redshiftData.commandCalls(CancelStatementCommand).map((c) => c.args[0].input.Id).sort();
      assert.deepEqual(cancelled, how === 'workflow' ? ['stmt-gps', 'stmt-vehicle'] : []);
    });
  }

  test('curated files without a catalogued curated table fail for good, asking for the curated crawl', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    mocks.s3.on(ListObjectsV2Command).resolves({ KeyCount: 1 });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.ok(run.error instanceof ApplicationFailure, String(run.error));
    assert.equal(run.error.nonRetryable, true);
    assert.match(run.error.message, /no table curated_vehicle: run the curated crawler \(smartcity-curated\) first/);
    assert.equal(batches(mocks).length, 0);
  });

  test('nothing curated anywhere loads nothing and sends no statement', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    mocks.s3.on(ListObjectsV2Command).resolves({ KeyCount: 0 });
    const run = await runActivity(() => redshiftActivities(deps).loadWarehouse({ window }), { info });
    assert.deepEqual(run.result, { rows: { vehicle: 0, gps: 0, traffic: 0, weather: 0, emergency: 0 } });
    assert.equal(batches(mocks).length, 0);
  });
});

describe('warehouse DDL', () => {
  test('maps the crawler types and refuses nested ones with a message naming the column', () => {
    assert.equal(redshiftType({ name: 'a', type: 'int' }), 'INTEGER');
    assert.equal(redshiftType({ name: 'a', type: 'varchar(64)' }), 'VARCHAR(64)');
    assert.equal(redshiftType({ name: 'a', type: 'boolean' }), 'BOOLEAN');
    assert.throws(() => redshiftType({ name: 'location', type: 'struct<lat:double,lon:double>' }), /curated column location has type struct<lat:double,lon:double>/);
  });

  test('target and staging tables take the curated columns in file order (COPY maps Parquet by position)', () => {
    const { deps } = mockedAwsDeps({ SMARTCITY_REDSHIFT_SCHEMA: 'smartcity' });
    const reversed = [...GPS_COLUMNS].reverse();
    const sqls = loadStatements(deps, 'gps', reversed, [], parseWindow(window));
    const order = reversed.map((c) => `"${c.name}"`).join('.*');
    assert.match(sqls[0]!, new RegExp(`^CREATE TABLE IF NOT EXISTS "smartcity"\\."gps" \\(${order}.*\\)$`));
    assert.match(sqls[1]!, new RegExp(`^CREATE TEMP TABLE "stage_gps" \\(${order}.*\\)$`));
    assert.ok(!sqls.some((s) => s.startsWith('COPY')), 'no COPY from a prefix with nothing in it');
  });
});
