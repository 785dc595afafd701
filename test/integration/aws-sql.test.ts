// The SQL of the aws target checked by real engines, not by regular expressions: every statement
// the activities send to Athena and Redshift is produced by the real activity code (SDK clients
// mocked, the statements captured as sent) and parsed by sqlglot in the engine's dialect (Redshift's
// CREATE EXTERNAL SCHEMA, which sqlglot has no grammar for, by test/helpers/sql_parse.py's check of
// the documented syntax); the warehouse load's statements also run on PostgreSQL, with the types
// Redshift uses, against real rows. PostgreSQL is where Redshift comes from, but three things of
// these statements are Redshift's own, and the test stands in for them:
// - CREATE EXTERNAL SCHEMA … FROM DATA CATALOG and the curated Iceberg table it shows: a plain
//   schema of that name with a table holding the rows of the table's current snapshot (what
//   Redshift reads: it cannot read another snapshot). A re-curate's commit replaces those rows.
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
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { athenaActivities } from '../../activities/aws/athena';
import type { CatalogColumn } from '../../activities/aws/glue';
import { qualityActivities, warehouseQualitySql } from '../../activities/aws/quality';
import { redshiftActivities, redshiftType } from '../../activities/aws/redshift';
import { parseWindow } from '../../activities/lake';
import { sqlString, timestampLiteral } from '../../activities/sql';
import { readAwsStoredState } from '../../report/aws';
import { mockedAwsDeps, runActivity, type AwsMocks } from '../helpers/aws-mock';
import { startPostgres, type PgDatabase, type Postgres } from '../helpers/postgres';
import { unparsable, type Statement } from '../helpers/sqlglot';

const TIMEOUT = { timeout: 120_000 };
const info = { workflowExecution: { workflowId: 'batch-sql', runId: 'run-1' }, activityId: '4' };
/** Spans two hour partitions: the raw queries filter two partitions, the curated rows of both hours hold neighbours. */
const window = { from: '2026-03-02T12:55:00.000Z', to: '2026-03-02T13:05:00.000Z' };
const later = { from: '2026-03-02T13:05:00.000Z', to: '2026-03-02T13:10:00.000Z' };

/** gps as Iceberg's Glue catalog lists the curated table's columns (Hive types), in table order. */
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

/** A raw table as the crawler makes it: the files' columns, date/hour partitions. */
function rawTable(name: string, columns: CatalogColumn[], hourType = 'string') {
  return {
    Name: name,
    StorageDescriptor: { Columns: columns.map((c) => ({ Name: c.name, Type: c.type })) },
    PartitionKeys: [
      { Name: 'date', Type: 'string' },
      { Name: 'hour', Type: hourType },
    ],
  };
}

/** A curated table as Iceberg's Glue catalog registers it: table_type ICEBERG, partitioned in Iceberg (hours(event_time)), not in Glue. */
function icebergTable(name: string, columns: CatalogColumn[]) {
  return {
    Name: name,
    Parameters: { table_type: 'ICEBERG', metadata_location: `s3://sc-curated/${name}/metadata/00001-a.metadata.json` },
    StorageDescriptor: { Location: `s3://sc-curated/${name}`, Columns: columns.map((c) => ({ Name: c.name, Type: c.type, Parameters: { 'iceberg.field.current': 'true' } })) },
  };
}

/** The curate's commits the checks read (gps as of its snapshot; vehicle without one, as it is now). */
const SNAPSHOTS = { gps: '9007199254740993' };

/**
 * A lake with every shape the SQL builders handle: raw and curated gps; vehicle with an integer
 * hour partition; weather raw only (its curated side is the empty id set). Athena and Redshift
 * answer every statement at once.
 */
function stubAws(mocks: AwsMocks): void {
  mocks.glue.on(GetTablesCommand).resolves({
    TableList: [
      rawTable('raw_gps', RAW_GPS),
      icebergTable('gps', GPS),
      rawTable('raw_vehicle', RAW_GPS, 'int'),
      icebergTable('vehicle', GPS.slice(0, 7)),
      rawTable('raw_weather', RAW_GPS.slice(0, 7)),
    ],
  });
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
  await activity(() => qualityActivities(deps).checkQuality({ window, snapshots: SNAPSHOTS }));
  await activity(() => redshiftActivities(deps).loadWarehouse({ window, snapshots: SNAPSHOTS }));
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
    // Raw counts and the lake checks on Athena; on Redshift the external schema, the loads of gps and vehicle and the warehouse checks.
    assert.equal(sent.athena.length, 2);
    assert.match(sent.athena[1]!, /FROM "smartcity"\."gps" FOR VERSION AS OF 9007199254740993 WHERE /, 'curated gps as of its snapshot');
    assert.match(sent.athena[1]!, /FROM "smartcity"\."vehicle" WHERE /, 'curated vehicle as it is now');
    const kinds = new Set(sent.redshift.map((s) => /^(CREATE EXTERNAL SCHEMA|CREATE TABLE|DELETE|INSERT|SELECT)/.exec(s)?.[1]));
    assert.deepEqual([...kinds].sort(), ['CREATE EXTERNAL SCHEMA', 'CREATE TABLE', 'DELETE', 'INSERT', 'SELECT']);
    assert.equal(sent.redshift.filter((s) => / FROM "smartcity_lake"\."(gps|vehicle)" WHERE /.test(s)).length, 2, 'gps and vehicle read from the Iceberg tables');
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
    const schema = sent.redshift.find((s) => s.startsWith('CREATE EXTERNAL SCHEMA'))!;
    const problems = await unparsable([
      { dialect: 'athena', sql: lakeChecks.slice(0, lakeChecks.lastIndexOf(')')) },
      { dialect: 'redshift', sql: insert.replace(' SELECT ', ' SELECT FROM ') },
      // Parsed only as an opaque command: nothing in it would be checked.
      { dialect: 'redshift', sql: 'VACUUM "public"."gps"' },
      // The external schema's own check: the documented clauses, in order, and a role ARN.
      { dialect: 'redshift', sql: schema.replace(' DATABASE ', ' ') },
      { dialect: 'redshift', sql: schema.replace(/IAM_ROLE '[^']*'/, "IAM_ROLE 'smartcity-copy'") },
      { dialect: 'redshift', sql: `${schema}; DROP TABLE "public"."gps"` },
    ]);
    assert.equal(problems.length, 6, problems.join('\n'));
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

/** What loadWarehouse sends for `window`: the external schema's statement, then gps's batch. */
async function gpsLoadStatements(): Promise<{ schema: string; load: string[] }> {
  const { deps, mocks } = mockedAwsDeps();
  stubAws(mocks);
  await activity(() => redshiftActivities(deps).loadWarehouse({ window, snapshots: SNAPSHOTS }));
  const batches = mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input.Sqls ?? []);
  const [schema] = mocks.redshiftData.commandCalls(ExecuteStatementCommand).map((c) => c.args[0].input.Sql ?? '');
  return { schema: schema!, load: batches.find((sqls) => sqls[0]?.startsWith('CREATE TABLE IF NOT EXISTS "public"."gps"'))! };
}

/**
 * The external schema as PostgreSQL stands it in: a schema of that name (from the statement
 * itself) holding the curated gps table, with the columns Redshift shows for it.
 */
async function createLake(db: PgDatabase, schemaSql: string): Promise<string> {
  const name = /^CREATE EXTERNAL SCHEMA IF NOT EXISTS ("[^"]+") FROM DATA CATALOG DATABASE 'smartcity' IAM_ROLE '[^']+'$/.exec(schemaSql)?.[1];
  assert.ok(name, schemaSql);
  await db.run([`CREATE SCHEMA IF NOT EXISTS ${name}`, `CREATE TABLE ${name}."gps" (${GPS.map((c) => `"${c.name}" ${redshiftType(c)}`).join(', ')})`]);
  return `${name}."gps"`;
}

/** A curate's commit: the curated table's current snapshot becomes `rows`. */
async function commit(db: PgDatabase, lake: string, rows: GpsRow[]): Promise<void> {
  await db.run([`DELETE FROM ${lake}`, ...(rows.length ? [`INSERT INTO ${lake} VALUES ${rows.map(values).join(', ')}`] : [])], { transaction: true });
}

/** Runs a load's statements as Redshift would: one transaction. */
async function loadOnPostgres(db: PgDatabase, sqls: string[]): Promise<void> {
  await db.run(sqls, { transaction: true });
}

const windowRows = (db: PgDatabase) => db.query(`SELECT event_id, event_time, lat, vehicle_type FROM "public"."gps" ORDER BY event_time, event_id`);
const ids = async (db: PgDatabase) => (await windowRows(db)).map((r) => r.event_id);

/** Curated rows of both hours: the window's rows and rows of the windows either side of it. */
const CURATED: GpsRow[] = [
  { id: 'before', at: '2026-03-02T12:54:59.999Z' },
  { id: 'first', at: '2026-03-02T12:55:00.000Z' },
  { id: 'mid', at: '2026-03-02T12:59:59.999Z' },
  { id: 'hour', at: '2026-03-02T13:00:00.000Z' },
  { id: 'last', at: '2026-03-02T13:04:59.999Z' },
  { id: 'end', at: '2026-03-02T13:05:00.000Z' },
  { id: 'after', at: '2026-03-02T13:10:00.000Z' },
];

describe('the warehouse load on PostgreSQL, with the types Redshift uses', () => {
  let pg: Postgres;
  let sqls: string[];
  let schemaSql: string;
  before(async () => {
    pg = await startPostgres();
    ({ schema: schemaSql, load: sqls } = await gpsLoadStatements());
  });
  after(() => pg?.stop());

  /** A database with Redshift's functions and the lake holding `curated` as its current snapshot. */
  async function database(curated: GpsRow[] = CURATED): Promise<{ db: PgDatabase; lake: string }> {
    const db = await pg.database();
    await db.run([
      `CREATE FUNCTION getdate() RETURNS timestamp LANGUAGE sql AS 'SELECT localtimestamp'`,
      `CREATE FUNCTION strtol(hex text, base int) RETURNS bigint LANGUAGE sql AS $$ SELECT CASE WHEN base = 16 THEN ('x' || lpad(hex, 16, '0'))::bit(64)::bigint END $$`,
    ]);
    const lake = await createLake(db, schemaSql);
    await commit(db, lake, curated);
    return { db, lake };
  }

  test('a load keeps exactly the window\'s rows of the curated table, and loading twice gives the same rows', TIMEOUT, async () => {
    const { db } = await database();
    await loadOnPostgres(db, sqls);
    const once = await windowRows(db);
    assert.deepEqual(once.map((r) => r.event_id), ['first', 'mid', 'hour', 'last'], 'from inclusive, to exclusive, neighbours not loaded');
    assert.equal(once[0]!.event_time, '2026-03-02 12:55:00');
    await loadOnPostgres(db, sqls);
    assert.deepEqual(await windowRows(db), once);
    const loaded = await db.query(`SELECT window_from, window_to, source, row_count FROM "public".loaded_windows`);
    assert.deepEqual(loaded, [{ window_from: '2026-03-02 12:55:00', window_to: '2026-03-02 13:05:00', source: 'gps', row_count: '4' }]);
    const [count] = await db.query(sqls.at(-1)!);
    assert.deepEqual(count, { row_count: '4' }, 'the statement whose result the activity returns');
  });

  test('a re-run replaces the window and leaves the neighbouring windows\' rows alone', TIMEOUT, async () => {
    const { db, lake } = await database();
    await loadOnPostgres(db, sqls);
    // Other windows' loads, and a row of this window that a re-curate no longer has.
    await db.run([`INSERT INTO "public"."gps" VALUES ${[{ id: 'prev', at: '2026-03-02T12:54:00.000Z' }, { id: 'next', at: '2026-03-02T13:05:00.000Z' }, { id: 'stale', at: '2026-03-02T12:58:00.000Z' }].map(values).join(', ')}`]);
    await commit(db, lake, [...CURATED.filter((r) => r.id !== 'mid'), { id: 'late', at: '2026-03-02T13:01:00.000Z' }]);
    await loadOnPostgres(db, sqls);
    assert.deepEqual(await ids(db), ['prev', 'first', 'hour', 'late', 'last', 'next']);
    const loaded = await db.query(`SELECT row_count FROM "public".loaded_windows`);
    assert.deepEqual(loaded, [{ row_count: '4' }]);
  });

  test('a failing statement rolls the whole load back', TIMEOUT, async () => {
    const { db, lake } = await database();
    await loadOnPostgres(db, sqls);
    const before = await windowRows(db);
    const broken = sqls.map((s) => (s.startsWith('INSERT INTO "public"."gps"') ? s.replace('"lat"', '"no_such_column"') : s));
    await commit(db, lake, [{ id: 'new', at: '2026-03-02T13:02:00.000Z' }]);
    await assert.rejects(loadOnPostgres(db, broken), /no_such_column/);
    assert.deepEqual(await windowRows(db), before, 'the delete of the window was rolled back with the failed insert');
  });

  test('Redshift cannot pin a snapshot: a load reads the curated table as it is when its INSERT runs, so the last load of a window holds the last commit', TIMEOUT, async () => {
    // The statements name no snapshot: whichever commit is current when they run is read.
    assert.ok(!sqls.some((s) => /VERSION AS OF|TIMESTAMP AS OF|\bAT\s*\(/i.test(s)), sqls.join('\n'));
    const { db, lake } = await database();
    // Run 1 curated the window (commit A); a concurrent re-curate of the same window (run 2)
    // committed B before run 1's load ran: run 1 loads B, not the A its curate returned.
    const recurated = [...CURATED.filter((r) => r.id !== 'mid'), { id: 'late', at: '2026-03-02T13:01:00.000Z' }];
    await commit(db, lake, recurated);
    await loadOnPostgres(db, sqls);
    assert.deepEqual(await ids(db), ['first', 'hour', 'late', 'last']);
    // Run 2's load follows its own commit and replaces the window again: the same rows, B's.
    await loadOnPostgres(db, sqls);
    assert.deepEqual(await ids(db), ['first', 'hour', 'late', 'last']);
    // A third curate (C) whose load comes last: the window is C's, whatever loaded before.
    await commit(db, lake, CURATED);
    await loadOnPostgres(db, sqls);
    assert.deepEqual(await ids(db), ['first', 'mid', 'hour', 'last']);
    assert.deepEqual(await db.query(`SELECT row_count FROM "public".loaded_windows`), [{ row_count: '4' }], 'one record of the window, the last load\'s');
  });

  test('the warehouse quality query counts, fingerprints and checks the contract on the loaded rows', TIMEOUT, async () => {
    const { db } = await database([...CURATED, { id: 'far-north', at: '2026-03-02T12:56:00.000Z', lat: 95 }, { id: 'unknown-type', at: '2026-03-02T13:03:00.000Z', vehicleType: null }]);
    await loadOnPostgres(db, sqls);
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
