// The SQL of the aws target checked by real engines, not by regular expressions: every statement
// the activities send to Athena and Redshift is produced by the real activity code (SDK clients
// mocked, the statements captured as sent) and parsed by sqlglot in the engine's dialect; the
// warehouse load's statements also run on PostgreSQL, with the types Redshift uses, against real
// rows. PostgreSQL is where Redshift comes from, but three things of these statements are
// Redshift's own, and the test stands in for them:
// - COPY … FROM 's3://…' IAM_ROLE … FORMAT AS PARQUET: Redshift's S3 loader (PostgreSQL's COPY
//   reads a server file or the client's stream). Each COPY of an hour partition becomes an INSERT
//   of that partition's rows into the staging table; COPY itself stays mocked (and parsed).
// - GETDATE(): Redshift's name for the statement's timestamp; defined here as PostgreSQL's
//   localtimestamp.
// - strtol(text, base) in the warehouse quality check: Redshift's text-to-integer in a base;
//   defined here for base 16 through PostgreSQL's bit strings.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { GetPartitionsCommand, GetTablesCommand } from '@aws-sdk/client-glue';
import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
  type BatchExecuteStatementCommandInput,
} from '@aws-sdk/client-redshift-data';
import { ListObjectsV2Command, type ListObjectsV2CommandInput } from '@aws-sdk/client-s3';
import { athenaActivities } from '../../activities/aws/athena';
import type { CatalogColumn } from '../../activities/aws/glue';
import { qualityActivities, warehouseQualitySql } from '../../activities/aws/quality';
import { redshiftActivities } from '../../activities/aws/redshift';
import { parseWindow } from '../../activities/lake';
import { sqlString, timestampLiteral } from '../../activities/sql';
import { readAwsStoredState } from '../../report/aws';
import { mockedAwsDeps, runActivity, type AwsMocks } from '../helpers/aws-mock';
import { startPostgres, type PgDatabase, type Postgres } from '../helpers/postgres';
import { unparsable, type Statement } from '../helpers/sqlglot';

const TIMEOUT = { timeout: 120_000 };
const info = { workflowExecution: { workflowId: 'batch-sql', runId: 'run-1' }, activityId: '4' };
/** Spans two hour partitions, so the load COPYs twice and the lake queries filter two partitions. */
const window = { from: '2026-03-02T12:55:00.000Z', to: '2026-03-02T13:05:00.000Z' };
const later = { from: '2026-03-02T13:05:00.000Z', to: '2026-03-02T13:10:00.000Z' };

/** gps as the crawler catalogues the curated files (Hive types), in file order. */
const GPS: CatalogColumn[] = [
  { name: 'event_id', type: 'string' },
  { name: 'source', type: 'string' },
  { name: 'vehicle_id', type: 'string' },
  { name: 'device_id', type: 'string' },
  { name: 'seq', type: 'bigint' },
  { name: 'event_time', type: 'timestamp' },
  { name: 'schema_version', type: 'int' },
  { name: 'lat', type: 'double' },
  { name: 'lon', type: 'double' },
  { name: 'speed_kmh', type: 'double' },
  { name: 'heading_deg', type: 'double' },
  { name: 'accuracy_m', type: 'decimal(7,2)' },
  { name: 'vehicle_type', type: 'string' },
];
const RAW_GPS = GPS.map((c) => (c.name === 'event_time' ? { ...c, type: 'string' } : c));

function glueTable(name: string, columns: CatalogColumn[], hourType = 'string') {
  return {
    Name: name,
    StorageDescriptor: { Columns: columns.map((c) => ({ Name: c.name, Type: c.type })) },
    PartitionKeys: [
      { Name: 'date', Type: 'string' },
      { Name: 'hour', Type: hourType },
    ],
  };
}

/**
 * A lake with every shape the SQL builders handle: raw and curated gps; vehicle with an integer
 * hour partition; weather raw only (its curated side is the empty id set); curated landed in both
 * hours for gps, in one for vehicle. Athena and Redshift answer every statement at once.
 */
function stubAws(mocks: AwsMocks): void {
  mocks.glue.on(GetTablesCommand).resolves({
    TableList: [
      glueTable('raw_gps', RAW_GPS),
      glueTable('curated_gps', GPS),
      glueTable('raw_vehicle', RAW_GPS, 'int'),
      glueTable('curated_vehicle', GPS.slice(0, 7), 'int'),
      glueTable('raw_weather', RAW_GPS.slice(0, 7)),
    ],
  });
  const landed = new Set(['curated/gps/date=2026-03-02/hour=12/', 'curated/gps/date=2026-03-02/hour=13/', 'curated/vehicle/date=2026-03-02/hour=13/']);
  mocks.s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) => ({ KeyCount: landed.has(input.Prefix ?? '') ? 1 : 0 }));
  mocks.athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  mocks.athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { QueryExecutionId: 'q-1', Status: { State: 'SUCCEEDED' } } });
  mocks.athena.on(GetQueryResultsCommand).resolves({ ResultSet: { ResultSetMetadata: { ColumnInfo: [] }, Rows: [] } });
  mocks.redshiftData.on(BatchExecuteStatementCommand).callsFake((input: BatchExecuteStatementCommandInput) => ({ Id: `batch-${/"public"\."(\w+)"/.exec(input.Sqls?.[0] ?? '')?.[1] ?? 'x'}` }));
  mocks.redshiftData.on(ExecuteStatementCommand).resolves({ Id: 'one' });
  mocks.redshiftData.on(DescribeStatementCommand).resolves({ Status: 'FINISHED' });
  mocks.redshiftData.on(GetStatementResultCommand).resolves({ ColumnMetadata: [], Records: [] });
}

const athenaSent = (mocks: AwsMocks): string[] => mocks.athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input.QueryString ?? '');
const redshiftSent = (mocks: AwsMocks): string[] => [
  ...mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).flatMap((c) => c.args[0].input.Sqls ?? []),
  ...mocks.redshiftData.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input.Sql ?? ''),
];

async function activity<R>(fn: () => Promise<R>): Promise<R> {
  const run = await runActivity(fn, { info });
  assert.equal(run.error, undefined, String(run.error));
  return run.result!;
}

/** What the activities send for a window: raw counts, the quality checks, the load. */
async function sentByActivities(): Promise<{ athena: string[]; redshift: string[] }> {
  const { deps, mocks } = mockedAwsDeps();
  stubAws(mocks);
  await activity(() => athenaActivities(deps).countRawWindows({ windows: [window, later] }));
  await activity(() => qualityActivities(deps).checkQuality({ window }));
  await activity(() => redshiftActivities(deps).loadWarehouse({ window }));
  return { athena: athenaSent(mocks), redshift: redshiftSent(mocks) };
}

/** What `smartcity report` sends on the aws target, every warehouse table existing. */
async function sentByReport(): Promise<{ athena: string[]; redshift: string[] }> {
  const { deps, mocks } = mockedAwsDeps();
  stubAws(mocks);
  const tables = ['vehicle', 'gps', 'traffic', 'weather', 'emergency', 'loaded_windows'];
  mocks.glue.on(GetPartitionsCommand).resolves({ Partitions: [] });
  mocks.s3.on(ListObjectsV2Command).resolves({ Contents: [] });
  mocks.redshiftData.on(GetStatementResultCommand, { Id: 'one' }).resolves({ ColumnMetadata: [{ name: 'table_name' }], Records: tables.map((t) => [{ stringValue: t }]) });
  await readAwsStoredState(deps.config, { clients: deps.clients, pollIntervalMs: 2 });
  return { athena: athenaSent(mocks), redshift: redshiftSent(mocks) };
}

const forAthena = (sqls: string[]): Statement[] => sqls.flatMap((sql) => [{ dialect: 'athena' as const, sql }, { dialect: 'trino' as const, sql }]);
const forRedshift = (sqls: string[]): Statement[] => sqls.map((sql) => ({ dialect: 'redshift' as const, sql }));

describe('the aws SQL, parsed by sqlglot in each engine\'s dialect', () => {
  test('every statement the aws activities send to Athena and Redshift parses', TIMEOUT, async () => {
    const sent = await sentByActivities();
    // Raw counts and the lake checks on Athena; on Redshift the loads of gps and vehicle and the warehouse checks.
    assert.equal(sent.athena.length, 2);
    const kinds = new Set(sent.redshift.map((s) => /^(CREATE TEMP TABLE|CREATE TABLE|COPY|DELETE|INSERT|SELECT)/.exec(s)?.[1]));
    assert.deepEqual([...kinds].sort(), ['COPY', 'CREATE TABLE', 'CREATE TEMP TABLE', 'DELETE', 'INSERT', 'SELECT']);
    assert.equal(sent.redshift.filter((s) => s.startsWith('COPY')).length, 3, 'gps in two hours, vehicle in one');
    assert.deepEqual(await unparsable([...forAthena(sent.athena), ...forRedshift(sent.redshift)]), []);
  });

  test('every statement smartcity report sends on the aws target parses', TIMEOUT, async () => {
    const sent = await sentByReport();
    assert.equal(sent.athena.length, 1, 'the lake counts');
    assert.equal(sent.redshift.length, 3, 'the warehouse tables, then the counts and the loaded windows');
    assert.deepEqual(await unparsable([...forAthena(sent.athena), ...forRedshift(sent.redshift)]), []);
  });

  test('a statement with a syntax error fails the check', TIMEOUT, async () => {
    const sent = await sentByActivities();
    const lakeChecks = sent.athena[1]!;
    const insert = sent.redshift.find((s) => s.startsWith('INSERT'))!;
    const problems = await unparsable([
      { dialect: 'athena', sql: lakeChecks.slice(0, lakeChecks.lastIndexOf(')')) },
      { dialect: 'redshift', sql: insert.replace(' SELECT ', ' SELECT FROM ') },
      // Parsed only as an opaque command: nothing in it would be checked.
      { dialect: 'redshift', sql: 'VACUUM "public"."gps"' },
    ]);
    assert.equal(problems.length, 3, problems.join('\n'));
  });
});

// ---- the load on PostgreSQL ------------------------------------------------------------------------

interface GpsRow {
  id: string;
  /** ISO instant, ms precision. */
  at: string;
  lat?: number;
  vehicleType?: string | null;
}

/** A curated gps row as SQL values, in GPS column order. */
function values(r: GpsRow): string {
  const cells = [
    sqlString(r.id),
    sqlString('gps'),
    sqlString('v-1'),
    sqlString('d-1'),
    String(Date.parse(r.at)),
    timestampLiteral(r.at),
    '1',
    String(r.lat ?? 51.5),
    '-0.12',
    '48.5',
    '90',
    '4.25',
    r.vehicleType === null ? 'NULL' : sqlString(r.vehicleType ?? 'taxi'),
  ];
  return `(${cells.join(', ')})`;
}

/** The statements loadWarehouse sends to load gps over `window`. */
async function gpsLoadStatements(): Promise<string[]> {
  const { deps, mocks } = mockedAwsDeps();
  stubAws(mocks);
  await activity(() => redshiftActivities(deps).loadWarehouse({ window }));
  const batches = mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input.Sqls ?? []);
  return batches.find((sqls) => sqls[0]?.startsWith('CREATE TABLE IF NOT EXISTS "public"."gps"'))!;
}

/**
 * Runs a load's statements as Redshift would (one transaction, a new session with its own temp
 * table), each COPY of an hour partition replaced by an INSERT of the rows `curated` holds there.
 */
async function loadOnPostgres(db: PgDatabase, sqls: string[], curated: Record<'12' | '13', GpsRow[]>): Promise<void> {
  const statements = sqls.map((sql) => {
    const copy = /^COPY ("[^"]+") FROM '[^']*\/hour=(\d\d)\/'/.exec(sql);
    if (!copy) return sql;
    const rows = curated[copy[2] as '12' | '13'];
    return rows.length ? `INSERT INTO ${copy[1]} VALUES ${rows.map(values).join(', ')}` : 'SELECT 1';
  });
  await db.run(statements, { transaction: true });
}

const windowRows = (db: PgDatabase) => db.query(`SELECT event_id, event_time, lat, vehicle_type FROM "public"."gps" ORDER BY event_time, event_id`);
const ids = async (db: PgDatabase) => (await windowRows(db)).map((r) => r.event_id);

/** Curated files of both hours: the window's rows and rows of the windows either side of it. */
const CURATED: Record<'12' | '13', GpsRow[]> = {
  '12': [
    { id: 'before', at: '2026-03-02T12:54:59.999Z' },
    { id: 'first', at: '2026-03-02T12:55:00.000Z' },
    { id: 'mid', at: '2026-03-02T12:59:59.999Z' },
  ],
  '13': [
    { id: 'hour', at: '2026-03-02T13:00:00.000Z' },
    { id: 'last', at: '2026-03-02T13:04:59.999Z' },
    { id: 'end', at: '2026-03-02T13:05:00.000Z' },
    { id: 'after', at: '2026-03-02T13:10:00.000Z' },
  ],
};

describe('the warehouse load on PostgreSQL, with the types Redshift uses', () => {
  let pg: Postgres;
  let sqls: string[];
  before(async () => {
    pg = await startPostgres();
    sqls = await gpsLoadStatements();
  });
  after(() => pg?.stop());

  async function database(): Promise<PgDatabase> {
    const db = await pg.database();
    await db.run([
      `CREATE FUNCTION getdate() RETURNS timestamp LANGUAGE sql AS 'SELECT localtimestamp'`,
      `CREATE FUNCTION strtol(hex text, base int) RETURNS bigint LANGUAGE sql AS $$ SELECT CASE WHEN base = 16 THEN ('x' || lpad(hex, 16, '0'))::bit(64)::bigint END $$`,
    ]);
    return db;
  }

  test('a load keeps exactly the window\'s rows of the staged partitions, and loading twice gives the same rows', TIMEOUT, async () => {
    const db = await database();
    await loadOnPostgres(db, sqls, CURATED);
    const once = await windowRows(db);
    assert.deepEqual(once.map((r) => r.event_id), ['first', 'mid', 'hour', 'last'], 'from inclusive, to exclusive, neighbours not loaded');
    assert.equal(once[0]!.event_time, '2026-03-02 12:55:00');
    await loadOnPostgres(db, sqls, CURATED);
    assert.deepEqual(await windowRows(db), once);
    const loaded = await db.query(`SELECT window_from, window_to, source, row_count FROM "public".loaded_windows`);
    assert.deepEqual(loaded, [{ window_from: '2026-03-02 12:55:00', window_to: '2026-03-02 13:05:00', source: 'gps', row_count: '4' }]);
    const [count] = await db.query(sqls.at(-1)!);
    assert.deepEqual(count, { row_count: '4' }, 'the statement whose result the activity returns');
  });

  test('a re-run replaces the window and leaves the neighbouring windows\' rows alone', TIMEOUT, async () => {
    const db = await database();
    await loadOnPostgres(db, sqls, CURATED);
    // Other windows' loads, and a row of this window that a re-curate no longer has.
    await db.run([`INSERT INTO "public"."gps" VALUES ${[{ id: 'prev', at: '2026-03-02T12:54:00.000Z' }, { id: 'next', at: '2026-03-02T13:05:00.000Z' }, { id: 'stale', at: '2026-03-02T12:58:00.000Z' }].map(values).join(', ')}`]);
    const recurated = { '12': CURATED['12'].filter((r) => r.id !== 'mid'), '13': [...CURATED['13'], { id: 'late', at: '2026-03-02T13:01:00.000Z' }] };
    await loadOnPostgres(db, sqls, recurated);
    assert.deepEqual(await ids(db), ['prev', 'first', 'hour', 'late', 'last', 'next']);
    const loaded = await db.query(`SELECT row_count FROM "public".loaded_windows`);
    assert.deepEqual(loaded, [{ row_count: '4' }]);
  });

  test('a failing statement rolls the whole load back', TIMEOUT, async () => {
    const db = await database();
    await loadOnPostgres(db, sqls, CURATED);
    const before = await windowRows(db);
    const broken = sqls.map((s) => (s.startsWith('INSERT INTO "public"."gps"') ? s.replace('"lat"', '"no_such_column"') : s));
    await assert.rejects(loadOnPostgres(db, broken, { '12': [], '13': [{ id: 'new', at: '2026-03-02T13:02:00.000Z' }] }), /no_such_column/);
    assert.deepEqual(await windowRows(db), before, 'the delete of the window was rolled back with the failed insert');
  });

  test('the warehouse quality query counts, fingerprints and checks the contract on the loaded rows', TIMEOUT, async () => {
    const db = await database();
    const bad = { '12': [...CURATED['12'], { id: 'far-north', at: '2026-03-02T12:56:00.000Z', lat: 95 }], '13': [...CURATED['13'], { id: 'unknown-type', at: '2026-03-02T13:03:00.000Z', vehicleType: null }] };
    await loadOnPostgres(db, sqls, bad);
    const { deps } = mockedAwsDeps();
    const check = warehouseQualitySql(deps, 'gps', GPS.map((c) => c.name), parseWindow(window));
    const [row] = await db.query(check.sql);
    const quality = check.read(row);
    const loadedIds = ['first', 'mid', 'hour', 'last', 'far-north', 'unknown-type'];
    const fingerprint = loadedIds.reduce((sum, id) => sum + BigInt(parseInt(createHash('md5').update(id).digest('hex').slice(0, 8), 16)), 0n);
    assert.equal(quality.rows, 6);
    assert.equal(quality.distinctIds, 6);
    assert.equal(quality.fingerprint, fingerprint, 'the same recipe as the lake side computes');
    assert.deepEqual(quality.nulls, ['vehicle_type: 1 rows (e.g. event_id unknown-type)']);
    assert.deepEqual(quality.outside, ['lat: 1 rows not within [-90, 90], seen 95 (e.g. event_id far-north)']);
  });
});
