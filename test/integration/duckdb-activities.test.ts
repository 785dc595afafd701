// The DuckDB activities (catalog, warehouse, queries) against a real lake: raw Parquet files laid
// out and typed as spark/jobs/stream_ingest.py writes them, and curated Iceberg tables as
// spark/jobs/curate.py commits them (written here without Spark, test/helpers/iceberg_write.py).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { catalogActivities, catalogPath } from '../../activities/catalog';
import { parseWindow, queryRows, toText, withDatabase } from '../../activities/duckdb';
import { catalogFile, curatedFiles } from '../../activities/iceberg';
import { queryActivities } from '../../activities/queries';
import type { QualityResult, Snapshots, TimeWindow } from '../../activities/types';
import { warehouseActivities, warehousePath } from '../../activities/warehouse';
import { loadConfig, PROJECT_ROOT, type Config } from '../../config';
import { SOURCES, type Source } from '../../schemas';
import { appendCurated, deleteCurated, replaceCuratedWindow, type WriteMode } from '../helpers/iceberg-write';
import { lakeIds } from '../helpers/lake';

// ---- the lake as the Spark jobs write it ---------------------------------------------------

type Value = string | number | null;
type Row = Record<string, Value>;
type Columns = [name: string, type: string][];

const ENVELOPE = (eventTime: string): Columns => [
  ['event_id', 'VARCHAR'],
  ['source', 'VARCHAR'],
  ['vehicle_id', 'VARCHAR'],
  ['device_id', 'VARCHAR'],
  ['seq', 'BIGINT'],
  ['event_time', eventTime],
  ['schema_version', 'BIGINT'],
];
const LOCATION: Columns = [
  ['lat', 'DOUBLE'],
  ['lon', 'DOUBLE'],
];
// Contract fields in schema order, the location flattened where it is declared (schemas.py leaves()).
const PAYLOAD: Record<Source, Columns> = {
  vehicle: [...LOCATION, ['speed_kmh', 'DOUBLE'], ['heading_deg', 'DOUBLE'], ['direction', 'VARCHAR'], ['make', 'VARCHAR'], ['model', 'VARCHAR'], ['year', 'BIGINT'], ['fuel_type', 'VARCHAR'], ['journey_status', 'VARCHAR']],
  gps: [...LOCATION, ['speed_kmh', 'DOUBLE'], ['heading_deg', 'DOUBLE'], ['accuracy_m', 'DOUBLE'], ['vehicle_type', 'VARCHAR']],
  traffic: [['camera_id', 'VARCHAR'], ...LOCATION, ['observed_speed_kmh', 'DOUBLE'], ['congestion', 'VARCHAR'], ['snapshot_ref', 'VARCHAR']],
  weather: [...LOCATION, ['temperature_c', 'DOUBLE'], ['condition', 'VARCHAR'], ['precipitation_mm', 'DOUBLE'], ['wind_speed_kmh', 'DOUBLE'], ['humidity_pct', 'DOUBLE'], ['air_quality_index', 'BIGINT']],
  emergency: [['incident_id', 'VARCHAR'], ['incident_type', 'VARCHAR'], ...LOCATION, ['status', 'VARCHAR'], ['description', 'VARCHAR']],
};
// stream_ingest.py: RAW_METADATA beside the event's columns (Spark int → INTEGER, timestamps UTC).
const RAW_METADATA: Columns = [
  ['kafka_topic', 'VARCHAR'],
  ['kafka_partition', 'INTEGER'],
  ['kafka_offset', 'BIGINT'],
  ['kafka_timestamp', 'TIMESTAMPTZ'],
  ['ingest_time', 'TIMESTAMPTZ'],
];
// curate.py: the vehicle's nearest weather reading and the emergencies around it.
const VEHICLE_ENRICHMENT: Columns = [
  ['weather_event_id', 'VARCHAR'],
  ['weather_event_time', 'TIMESTAMPTZ'],
  ['weather_temperature_c', 'DOUBLE'],
  ['weather_condition', 'VARCHAR'],
  ['weather_precipitation_mm', 'DOUBLE'],
  ['weather_wind_speed_kmh', 'DOUBLE'],
  ['weather_humidity_pct', 'DOUBLE'],
  ['weather_air_quality_index', 'BIGINT'],
  ['emergency_count', 'INTEGER'],
  ['nearest_incident_id', 'VARCHAR'],
  ['nearest_incident_type', 'VARCHAR'],
  ['nearest_incident_distance_km', 'DOUBLE'],
];

const rawColumns = (source: Source): Columns => [...ENVELOPE('VARCHAR'), ...PAYLOAD[source], ...RAW_METADATA];
// Curated columns by the DuckDB names of curate's Spark types, which its Iceberg tables hold as
// string, double, long (JSON integers), int (emergency_count) and timestamptz (date-times).
const curatedColumns = (source: Source): Columns => [...ENVELOPE('TIMESTAMPTZ'), ...PAYLOAD[source], ...(source === 'vehicle' ? VEHICLE_ENRICHMENT : [])];

const PAYLOAD_VALUES: Record<Source, Row> = {
  vehicle: { speed_kmh: 48.5, heading_deg: 312.5, direction: 'NW', make: 'Volvo', model: 'XC40', year: 2022, fuel_type: 'electric', journey_status: 'en_route' },
  gps: { speed_kmh: 48.5, heading_deg: 312.5, accuracy_m: 4.2, vehicle_type: 'private' },
  traffic: { camera_id: 'cam-7', observed_speed_kmh: 51, congestion: 'moderate', snapshot_ref: 's3://snapshots/cam-7/1.jpg' },
  weather: { temperature_c: 11.5, condition: 'rain', precipitation_mm: 1.2, wind_speed_kmh: 14, humidity_pct: 81, air_quality_index: 42 },
  emergency: { incident_type: 'accident', status: 'active', description: 'two cars, one lane blocked' },
};

/** A valid event of the source at `time` (ISO UTC), its id derived from the source and `n`. */
function event(source: Source, n: number, time: string, fields: Row = {}): Row {
  return {
    event_id: `${source}-${String(n).padStart(4, '0')}`,
    source,
    vehicle_id: 'vehicle-001',
    device_id: `${source}-device`,
    seq: n,
    event_time: time,
    schema_version: 1,
    lat: 51.5 + n / 1000,
    lon: -0.12,
    ...PAYLOAD_VALUES[source],
    ...(source === 'emergency' ? { incident_id: `incident-${n}` } : {}),
    ...(source === 'vehicle' ? { emergency_count: 0 } : {}),
    ...fields,
  };
}

const quoted = (path: string) => `'${path.replaceAll("'", "''")}'`;

// One in-memory DuckDB writes every fixture file; the activities under test open their own.
let writer: Promise<DuckDBConnection> | undefined;
const fixtureWriter = () => (writer ??= DuckDBInstance.create(':memory:').then((db) => db.connect()));

async function writeParquet(path: string, columns: Columns, rows: Row[]): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const conn = await fixtureWriter();
  await conn.run(`CREATE OR REPLACE TABLE fixture (${columns.map(([name, type]) => `"${name}" ${type}`).join(', ')})`);
  const placeholders = columns.map((_, i) => `$${i + 1}`).join(', ');
  for (const row of rows) await conn.run(`INSERT INTO fixture VALUES (${placeholders})`, columns.map(([name]) => (row[name] ?? null) as DuckDBValue));
  await conn.run(`COPY fixture TO ${quoted(path)} (FORMAT PARQUET)`);
}

/** `date=…/hour=…` of an event time, as the ingest job partitions raw by it (UTC). */
const hourOf = (time: string) => `date=${time.slice(0, 10)}/hour=${time.slice(11, 13)}`;

function byHour(rows: Row[]): Map<string, Row[]> {
  const hours = new Map<string, Row[]>();
  for (const row of rows) {
    const hour = hourOf(String(row.event_time));
    hours.set(hour, [...(hours.get(hour) ?? []), row]);
  }
  return hours;
}

const sparkFile = () => `part-00000-${randomUUID()}.c000.snappy.parquet`;

/** One micro-batch of the ingest job: raw/<source>/date=…/hour=…/batch_id=N/part-….parquet. */
async function landRaw(lake: string, source: Source, batchId: number, rows: Row[], columns = rawColumns(source)): Promise<void> {
  let offset = batchId * 1000;
  for (const [hour, events] of byHour(rows)) {
    const dir = join(lake, 'raw', source, hour, `batch_id=${batchId}`);
    const file = sparkFile();
    const withMetadata = events.map((e) => ({
      ...e,
      kafka_topic: `${source}_data`,
      kafka_partition: 0,
      kafka_offset: offset++,
      kafka_timestamp: String(e.event_time),
      ingest_time: '2026-03-02T12:00:00Z',
    }));
    await writeParquet(join(dir, file), columns, withMetadata);
    await writeFile(join(dir, `.${file}.crc`), 'not parquet');
  }
  await writeFile(join(lake, 'raw', source, '_SUCCESS'), '');
}

/**
 * A curate of `window` as it commits: the source's Iceberg table holds exactly `rows` for the
 * window (merge-on-read: the old rows as position deletes) and its other rows as they were.
 * Resolves to the snapshot the commit made.
 */
function recurate(config: Config, source: Source, window: TimeWindow, rows: Row[], columns = curatedColumns(source), mode?: WriteMode): Promise<string> {
  return replaceCuratedWindow(config, source, window, columns, rows, mode);
}

const W1: TimeWindow = { from: '2026-03-02T09:00:00Z', to: '2026-03-02T09:05:00Z' };
const W2: TimeWindow = { from: '2026-03-02T09:05:00Z', to: '2026-03-02T09:10:00Z' };
const at = (minute: number, second = 0) => `2026-03-02T09:${String(minute).padStart(2, '0')}:${String(second).padStart(2, '0')}.000Z`;

interface Scenario {
  config: Config;
  lake: string;
  /** Distinct events per source and window, as curated holds them. */
  events: Record<Source, { w1: Row[]; w2: Row[] }>;
  /** The curated tables' snapshots holding those events (their current ones). */
  snapshots: Record<Source, string>;
}

const scratch: string[] = [];
after(async () => {
  if (writer) (await writer).closeSync();
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/**
 * Every source with 3 events in W1 and 2 in W2 (one exactly at W2's start), landed in two batches
 * with one event re-sent in the second; curated holds each event once, in one snapshot per table.
 * The data dir's name has a quote and a space, which every query (and the catalog's URI) must
 * survive.
 */
async function scenario(): Promise<Scenario> {
  const dataDir = await mkdtemp(join(tmpdir(), "smartcity duck'db-"));
  scratch.push(dataDir);
  const config = loadConfig({ ...process.env, SMARTCITY_DATA_DIR: dataDir });
  const lake = join(dataDir, 'lake');
  const events = {} as Scenario['events'];
  const snapshots = {} as Scenario['snapshots'];
  for (const source of SOURCES) {
    const w1 = [event(source, 1, at(0, 10)), event(source, 2, at(2)), event(source, 3, at(4, 59))];
    const w2 = [event(source, 4, at(5)), event(source, 5, at(9, 30))];
    events[source] = { w1, w2 };
    await landRaw(lake, source, 0, w1);
    await landRaw(lake, source, 1, [...w2, w1[1]!]);
    snapshots[source] = await appendCurated(config, source, curatedColumns(source), [...w1, ...w2]);
  }
  // What a killed batch and Spark's bookkeeping leave beside the data: none of it may be read.
  await mkdir(join(lake, 'raw', 'gps', '.spark-staging-0b1c', 'date=2026-03-02', 'hour=09', 'batch_id=2'), { recursive: true });
  await writeFile(join(lake, 'raw', 'gps', '.spark-staging-0b1c', 'date=2026-03-02', 'hour=09', 'batch_id=2', sparkFile()), 'half written');
  // A killed curate leaves data files no snapshot names, in the table's own partition folder: a
  // valid file with an event of W1 that only a reader listing folders would find.
  const orphan = join(lake, 'curated', 'gps', 'data', 'event_time_hour=2026-03-02-09', `00000-7-${randomUUID()}.parquet`);
  await writeParquet(orphan, curatedColumns('gps'), [event('gps', 666, at(1))]);
  await mkdir(join(lake, '_progress'), { recursive: true });
  await writeFile(join(lake, '_progress', 'ingest.jsonl'), '{}\n');
  return { config, lake, events, snapshots };
}

const activities = (config: Config) => ({ ...catalogActivities(config), ...warehouseActivities(config), ...queryActivities(config) });

/** The warehouse's rows of a source in the window, sorted, as JSON. */
async function warehouseRows(config: Config, source: Source, window: TimeWindow): Promise<Row[]> {
  return withDatabase(warehousePath(config), (conn) =>
    queryRows(conn, `SELECT * EXCLUDE (event_time), event_time::VARCHAR AS event_time FROM "${source}" WHERE event_time >= $from::TIMESTAMPTZ AND event_time < $to::TIMESTAMPTZ ORDER BY event_id`, { ...window }),
  ) as Promise<Row[]>;
}

const check = (result: QualityResult, name: string) => {
  const found = result.checks.find((c) => c.name === name);
  assert.ok(found, `no check ${name} among ${result.checks.map((c) => c.name).join(', ')}`);
  return found;
};
const failed = (result: QualityResult) => result.checks.filter((c) => !c.passed).map((c) => c.name);
const counts = (n: number) => Object.fromEntries(SOURCES.map((s) => [s, n]));

/** The event ids (with the column `column`) of a source's warehouse rows in the window. */
const warehouseIds = async (config: Config, source: Source, window: TimeWindow, column?: string) =>
  (await warehouseRows(config, source, window)).map((r) => (column ? [r.event_id, r[column]] : r.event_id));

/** What the reader plans for a window of a curated table (its data and position-delete files). */
const planned = (config: Config, source: Source, window: TimeWindow, snapshot?: string) => curatedFiles(config, source, parseWindow(window), snapshot);

// ---- crawler -------------------------------------------------------------------------------

describe('crawlLayer', () => {
  test('one raw table per source, its partitions, and schema changes as files change; curated has nothing to crawl', async () => {
    const { config, lake, events } = await scenario();
    const act = activities(config);

    const first = await act.crawlLayer({ layer: 'raw', window: W1 });
    assert.deepEqual(first.tables, ['raw_emergency', 'raw_gps', 'raw_traffic', 'raw_vehicle', 'raw_weather']);
    assert.equal(first.partitionsAdded, 10, 'two batch partitions per source');
    assert.deepEqual(first.schemaChanges, []);
    assert.ok(Date.parse(first.startedAt) <= Date.now());

    const catalog = (sql: string, params: Record<string, DuckDBValue> = {}) => withDatabase(catalogPath(config), (conn) => queryRows(conn, sql, params));
    const [gps] = await catalog("SELECT location, partition_keys FROM tables WHERE name = 'raw_gps'");
    assert.deepEqual(gps, { location: join(lake, 'raw', 'gps'), partition_keys: ['date', 'hour', 'batch_id'] });
    const columns = await catalog("SELECT name, type FROM table_columns WHERE table_name = 'raw_gps' ORDER BY position");
    assert.deepEqual(
      columns.map((c) => `${toText(c.name)} ${toText(c.type)}`),
      rawColumns('gps').map(([name, type]) => `${name} ${type === 'TIMESTAMPTZ' ? 'TIMESTAMP WITH TIME ZONE' : type}`),
    );
    const partitions = await catalog("SELECT location, partition_values, file_count, first_seen FROM partitions WHERE table_name = 'raw_gps' ORDER BY location");
    assert.deepEqual(
      partitions.map((p) => [p.partition_values, p.file_count]),
      [
        [['2026-03-02', '09', '0'], 1],
        [['2026-03-02', '09', '1'], 1],
      ],
    );
    assert.equal(partitions[0]!.location, join(lake, 'raw', 'gps', 'date=2026-03-02', 'hour=09', 'batch_id=0'));

    const again = await act.crawlLayer({ layer: 'raw', window: W1 });
    assert.equal(again.partitionsAdded, 0);
    assert.deepEqual(again.schemaChanges, []);

    // A producer starts sending an optional field: a new batch carries the new column.
    await landRaw(lake, 'gps', 2, [{ ...event('gps', 6, '2026-03-02T10:01:00.000Z'), satellites: 9 }], [...rawColumns('gps'), ['satellites', 'BIGINT']]);
    const grown = await act.crawlLayer({ layer: 'raw', window: W1 });
    assert.equal(grown.partitionsAdded, 1);
    assert.deepEqual(grown.schemaChanges, ['raw_gps: new column satellites BIGINT']);
    const lastColumn = await catalog("SELECT name, type FROM table_columns WHERE table_name = 'raw_gps' ORDER BY position DESC LIMIT 1");
    assert.deepEqual(lastColumn, [{ name: 'satellites', type: 'BIGINT' }]);
    const firstSeen = await catalog("SELECT first_seen FROM partitions WHERE table_name = 'raw_gps' ORDER BY location LIMIT 1");
    assert.deepEqual(firstSeen[0], { first_seen: partitions[0]!.first_seen }, 'a known partition keeps its first_seen');

    // A column whose values no longer fit its type: the table takes the type both fit in.
    const textAccuracy = rawColumns('gps').map(([name, type]): [string, string] => [name, name === 'accuracy_m' ? 'VARCHAR' : type]);
    await landRaw(lake, 'gps', 3, [{ ...event('gps', 7, '2026-03-02T10:02:00.000Z'), accuracy_m: 'about 4 m' }], textAccuracy);
    const retyped = await act.crawlLayer({ layer: 'raw', window: W1 });
    assert.deepEqual(retyped.schemaChanges, ['raw_gps: type change accuracy_m DOUBLE → VARCHAR']);
    const history = await catalog("SELECT change, column_name, old_type, new_type FROM schema_changes WHERE table_name = 'raw_gps' ORDER BY changed_at, column_name");
    assert.deepEqual(history, [
      { change: 'new column', column_name: 'satellites', old_type: null, new_type: 'BIGINT' },
      { change: 'type change', column_name: 'accuracy_m', old_type: 'DOUBLE', new_type: 'VARCHAR' },
    ]);

    // Curated tables are Iceberg tables, registered (schema and all) by their commits: a crawl of
    // curated finds nothing to do and records nothing, whatever the tables hold or become.
    const curated = await act.crawlLayer({ layer: 'curated', window: W1 });
    assert.deepEqual([curated.layer, curated.tables, curated.partitionsAdded, curated.schemaChanges], ['curated', [], 0, []]);
    assert.ok(Date.parse(curated.startedAt) <= Date.now());
    await recurate(config, 'weather', W2, events.weather.w2.map((e) => ({ ...e, visibility_km: 8.5 })), [...curatedColumns('weather'), ['visibility_km', 'DOUBLE']]);
    const afterNewColumn = await act.crawlLayer({ layer: 'curated', window: W2 });
    assert.deepEqual([afterNewColumn.tables, afterNewColumn.partitionsAdded, afterNewColumn.schemaChanges], [[], 0, []]);
    const recorded = await catalog("SELECT (SELECT count(*) FROM tables WHERE layer = 'curated')::INTEGER AS tables, (SELECT count(*) FROM crawls WHERE layer = 'curated')::INTEGER AS crawls");
    assert.deepEqual(recorded, [{ tables: 0, crawls: 0 }]);
  });

  test('crawls of one catalog from concurrent activities wait for each other', async () => {
    const { config } = await scenario();
    const act = activities(config);
    const [raw, again, curated] = await Promise.all([
      act.crawlLayer({ layer: 'raw', window: W1 }),
      act.crawlLayer({ layer: 'raw', window: W1 }),
      act.crawlLayer({ layer: 'curated', window: W1 }),
    ]);
    assert.deepEqual([raw.tables.length, again.tables.length, curated.tables.length], [5, 5, 0]);
    assert.deepEqual([raw.partitionsAdded, again.partitionsAdded].sort((a, b) => a - b), [0, 10], 'the later crawl finds the partitions the earlier one added');
  });

  test('an empty lake has no tables yet', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'smartcity-empty-'));
    scratch.push(dataDir);
    const act = activities(loadConfig({ ...process.env, SMARTCITY_DATA_DIR: dataDir }));
    for (const layer of ['raw', 'curated'] as const) {
      const result = await act.crawlLayer({ layer, window: W1 });
      assert.deepEqual([result.tables, result.partitionsAdded, result.schemaChanges], [[], 0, []], layer);
    }
  });
});

// ---- warehouse -------------------------------------------------------------------------------

describe('loadWarehouse', () => {
  test('loading a window twice gives the same rows and replaces only that window', async () => {
    const { config, events } = await scenario();
    const act = activities(config);

    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows, counts(3));
    const once = await warehouseRows(config, 'vehicle', W1);
    assert.deepEqual(
      once.map((r) => r.event_id),
      events.vehicle.w1.map((e) => e.event_id),
    );
    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows, counts(3));
    assert.deepEqual(await warehouseRows(config, 'vehicle', W1), once);
    assert.deepEqual(await warehouseIds(config, 'gps', W1), ['gps-0001', 'gps-0002', 'gps-0003'], 'a data file no snapshot names is not read');

    assert.deepEqual((await act.loadWarehouse({ window: W2 })).rows, counts(2));
    const w2 = await warehouseRows(config, 'gps', W2);
    assert.deepEqual(
      w2.map((r) => r.event_id),
      ['gps-0004', 'gps-0005'],
      'the event at 09:05:00 belongs to W2',
    );

    // The warehouse tables take curate's types.
    const types = await withDatabase(warehousePath(config), (conn) =>
      queryRows(
        conn,
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE (table_name, column_name) IN (('gps', 'event_time'), ('vehicle', 'emergency_count'), ('vehicle', 'year'), ('traffic', 'observed_speed_kmh')) ORDER BY ALL",
      ),
    );
    assert.deepEqual(types, [
      { table_name: 'gps', column_name: 'event_time', data_type: 'TIMESTAMP WITH TIME ZONE' },
      { table_name: 'traffic', column_name: 'observed_speed_kmh', data_type: 'DOUBLE' },
      { table_name: 'vehicle', column_name: 'emergency_count', data_type: 'INTEGER' },
      { table_name: 'vehicle', column_name: 'year', data_type: 'BIGINT' },
    ]);

    // Curate re-ran W1 (late data): one event more, one corrected, in one commit that leaves the
    // old rows' positions deleted in the hour's data file, which W2's rows share.
    const corrected = events.gps.w1.map((e) => (e.event_id === 'gps-0002' ? { ...e, speed_kmh: 12 } : e));
    await recurate(config, 'gps', W1, [...corrected, event('gps', 9, at(3))]);
    assert.ok((await planned(config, 'gps', W1)).deletes.length > 0, 'the re-run is read through position deletes');
    assert.equal((await act.loadWarehouse({ window: W1 })).rows.gps, 4);
    assert.deepEqual(await warehouseIds(config, 'gps', W1, 'speed_kmh'), [
      ['gps-0001', 48.5],
      ['gps-0002', 12],
      ['gps-0003', 48.5],
      ['gps-0009', 48.5],
    ]);
    assert.deepEqual(await warehouseRows(config, 'gps', W2), w2, 'W2 is untouched');
    assert.deepEqual((await act.loadWarehouse({ window: W2 })).rows.gps, 2, 'W2 still reads its rows from the shared file');
    assert.deepEqual(await warehouseRows(config, 'gps', W2), w2);

    const loads = await withDatabase(warehousePath(config), (conn) =>
      queryRows(conn, "SELECT window_from::VARCHAR AS w, row_count FROM loaded_windows WHERE source = 'gps' ORDER BY window_from"),
    );
    assert.deepEqual(loads, [
      { w: '2026-03-02 09:00:00+00', row_count: '4' },
      { w: '2026-03-02 09:05:00+00', row_count: '2' },
    ]);
  });

  test('loads and checks the snapshot they are given, not the table as it is now', async () => {
    const { config, events, snapshots } = await scenario();
    const act = activities(config);
    const a = snapshots.gps;

    // A later curate of W1: gps-0002 gone, gps-0001 corrected, gps-0009 new (snapshot B).
    const w1 = events.gps.w1.filter((e) => e.event_id !== 'gps-0002').map((e) => (e.event_id === 'gps-0001' ? { ...e, speed_kmh: 12 } : e));
    const b = await recurate(config, 'gps', W1, [...w1, event('gps', 9, at(3))]);
    assert.notEqual(b, a);
    assert.equal((await planned(config, 'gps', W1, a)).snapshot, a);
    assert.deepEqual((await planned(config, 'gps', W1, a)).deletes, [], 'A predates the delete files');
    assert.equal((await planned(config, 'gps', W1)).snapshot, b, 'without a snapshot, the current one');

    // What curate reported for the window, A for gps: the load reads A's rows.
    const asOfA: Snapshots = { ...snapshots, gps: a };
    assert.deepEqual((await act.loadWarehouse({ window: W1, snapshots: asOfA })).rows, counts(3));
    assert.deepEqual(await warehouseIds(config, 'gps', W1, 'speed_kmh'), [
      ['gps-0001', 48.5],
      ['gps-0002', 48.5],
      ['gps-0003', 48.5],
    ]);
    const checkedA = await act.checkQuality({ window: W1, snapshots: asOfA });
    assert.deepEqual(failed(checkedA), [], 'the checks read A too');
    assert.deepEqual(checkedA.counts.curated, counts(3));

    // Against the current snapshot the same warehouse is out of date, and the checks say so.
    const checkedB = await act.checkQuality({ window: W1 });
    assert.deepEqual(failed(checkedB), ['reconcile_raw_curated.gps', 'warehouse_matches_curated.gps']);
    assert.match(check(checkedB, 'warehouse_matches_curated.gps').detail, /1 curated event_ids missing from the warehouse \(e\.g\. gps-0009\); 1 warehouse event_ids not in curated \(e\.g\. gps-0002\)/);

    // Without snapshots the load reads the current rows, and the same with B named.
    assert.equal((await act.loadWarehouse({ window: W1 })).rows.gps, 3);
    const current = [
      ['gps-0001', 12],
      ['gps-0003', 48.5],
      ['gps-0009', 48.5],
    ];
    assert.deepEqual(await warehouseIds(config, 'gps', W1, 'speed_kmh'), current);
    assert.equal((await act.loadWarehouse({ window: W1, snapshots: { gps: b } })).rows.gps, 3);
    assert.deepEqual(await warehouseIds(config, 'gps', W1, 'speed_kmh'), current);
    assert.deepEqual(failed(await act.checkQuality({ window: W1, snapshots: { gps: b } })), ['reconcile_raw_curated.gps'], 'raw still has gps-0002');

    // A copy-on-write delete (gps-0005, of W2) replaces the data file A reads by a copy without the
    // row: A still names the old file, which stays until maintenance expires A.
    const [original] = (await planned(config, 'gps', W2, a)).data;
    const c = await deleteCurated(config, 'gps', ['gps-0005'], 'copy-on-write');
    assert.deepEqual((await planned(config, 'gps', W2, c)).deletes, []);
    assert.ok(!(await planned(config, 'gps', W2, c)).data.includes(original!), 'C reads a copy of the file');
    assert.deepEqual((await act.loadWarehouse({ window: W2, snapshots: { gps: a } })).rows.gps, 2);
    assert.deepEqual(await warehouseIds(config, 'gps', W2), ['gps-0004', 'gps-0005']);
    assert.deepEqual((await act.loadWarehouse({ window: W2, snapshots: { gps: c } })).rows.gps, 1);
    assert.deepEqual(await warehouseIds(config, 'gps', W2), ['gps-0004']);
    assert.deepEqual((await act.loadWarehouse({ window: W1, snapshots: { gps: a } })).rows.gps, 3);
    assert.deepEqual(await warehouseIds(config, 'gps', W1), ['gps-0001', 'gps-0002', 'gps-0003']);
    assert.deepEqual((await act.loadWarehouse({ window: W1, snapshots: { gps: c } })).rows.gps, 3, "W1's rows of B, in C");
    assert.deepEqual(await warehouseIds(config, 'gps', W1, 'speed_kmh'), current);
  });

  test('rows a merge-on-read delete removed are not loaded', async () => {
    const { config, lake, snapshots } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });
    await act.loadWarehouse({ window: W2 });

    // What Spark's merge-on-read DELETE commits: a position-delete file beside the data file.
    const deleted = await deleteCurated(config, 'traffic', ['traffic-0002', 'traffic-0005']);
    const files = await planned(config, 'traffic', W1);
    assert.equal(files.snapshot, deleted);
    assert.equal(files.deletes.length, 1);
    assert.deepEqual(files.data, (await planned(config, 'traffic', W1, snapshots.traffic)).data, 'the data file stays as it was');
    assert.ok((await stat(files.deletes[0]!)).isFile());
    // Iceberg's own reader (pyiceberg, test/helpers/lake.ts) agrees the rows are gone.
    assert.deepEqual([...(await lakeIds(lake, 'curated', 'traffic')).counts.keys()].sort(), ['traffic-0001', 'traffic-0003', 'traffic-0004']);

    // The warehouse still has them until the windows are reloaded; the checks see the difference.
    const stale = await act.checkQuality({ window: W1 });
    assert.match(check(stale, 'warehouse_matches_curated.traffic').detail, /has 3 rows for the window, curated 2; 1 warehouse event_ids not in curated \(e\.g\. traffic-0002\)/);
    assert.match(check(stale, 'reconcile_raw_curated.traffic').detail, /1 raw event_ids missing from curated \(e\.g\. traffic-0002\)/);

    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows, { ...counts(3), traffic: 2 });
    assert.deepEqual(await warehouseIds(config, 'traffic', W1), ['traffic-0001', 'traffic-0003']);
    assert.deepEqual((await act.loadWarehouse({ window: W2 })).rows, { ...counts(2), traffic: 1 });
    assert.deepEqual(await warehouseIds(config, 'traffic', W2), ['traffic-0004']);
    const checked = await act.checkQuality({ window: W1 });
    assert.deepEqual(failed(checked), ['reconcile_raw_curated.traffic'], 'only raw still has traffic-0002');
    assert.deepEqual(checked.counts.curated, { ...counts(3), traffic: 2 });

    // A second delete of the same hour adds its own file; both apply.
    await deleteCurated(config, 'traffic', ['traffic-0001']);
    assert.equal((await planned(config, 'traffic', W1)).deletes.length, 2);
    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows.traffic, 1);
    assert.deepEqual(await warehouseIds(config, 'traffic', W1), ['traffic-0003']);
  });

  test('a snapshot the table does not have fails the load and the checks, naming the table and the snapshot', async () => {
    const { config } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });
    const before = await Promise.all(SOURCES.map((s) => warehouseRows(config, s, W1)));

    const unknown = '1234567890123456789';
    const named = new RegExp(`curated table curated\\.gps has no snapshot ${unknown}`);
    await assert.rejects(act.loadWarehouse({ window: W1, snapshots: { gps: unknown } }), named);
    await assert.rejects(act.checkQuality({ window: W1, snapshots: { gps: unknown } }), named);
    assert.deepEqual(await Promise.all(SOURCES.map((s) => warehouseRows(config, s, W1))), before, 'nothing was loaded');

    // Before the first curate there is no catalog at all: a snapshot cannot be read either.
    const dataDir = await mkdtemp(join(tmpdir(), 'smartcity-no-catalog-'));
    scratch.push(dataDir);
    const emptyConfig = loadConfig({ ...process.env, SMARTCITY_DATA_DIR: dataDir });
    const empty = activities(emptyConfig);
    await assert.rejects(empty.loadWarehouse({ window: W1, snapshots: { weather: '42' } }), /curated table curated\.weather does not exist, so it has no snapshot 42/);
    assert.deepEqual((await empty.loadWarehouse({ window: W1 })).rows, counts(0), 'without snapshots an empty lake loads nothing');
    assert.equal(existsSync(catalogFile(emptyConfig)), false, "a reader never creates the catalog (Spark's first commit does)");
  });

  test('a new curated column is added to the warehouse table', async () => {
    const { config, events } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });
    await act.loadWarehouse({ window: W2 });

    // A contract's new optional field: curate adds the column to the table, then merges W2.
    const w2 = events.weather.w2.map((e) => ({ ...e, visibility_km: 8.5 }));
    await recurate(config, 'weather', W2, w2, [...curatedColumns('weather'), ['visibility_km', 'DOUBLE']]);
    assert.equal((await act.loadWarehouse({ window: W2 })).rows.weather, 2);
    // W1's rows are in a file written before the column: they read it as NULL.
    assert.equal((await act.loadWarehouse({ window: W1 })).rows.weather, 3);
    const rows = await withDatabase(warehousePath(config), (conn) => queryRows(conn, 'SELECT event_id, visibility_km FROM weather ORDER BY event_id'));
    assert.deepEqual(
      rows.map((r) => [r.event_id, r.visibility_km]),
      [
        ['weather-0001', null],
        ['weather-0002', null],
        ['weather-0003', null],
        ['weather-0004', 8.5],
        ['weather-0005', 8.5],
      ],
    );
    assert.deepEqual(failed(await act.checkQuality({ window: W2 })), []);
  });

  test('a failure part-way through a load rolls it all back', async () => {
    const { config, events } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });
    const before = await Promise.all(SOURCES.map((s) => warehouseRows(config, s, W1)));

    // gps (loaded before emergency) now has one event less; emergency's data file is damaged.
    await recurate(config, 'gps', W1, [events.gps.w1[0]!]);
    const [damaged] = (await planned(config, 'emergency', W1)).data;
    await writeFile(damaged!, 'PAR1 this is not a parquet file');
    await assert.rejects(act.loadWarehouse({ window: W1 }), /loading emergency for 2026-03-02T09:00:00\.000Z\/2026-03-02T09:05:00\.000Z from curated failed, nothing was changed/);

    assert.deepEqual(await Promise.all(SOURCES.map((s) => warehouseRows(config, s, W1))), before);
    const loads = await withDatabase(warehousePath(config), (conn) => queryRows(conn, 'SELECT count(*)::INTEGER AS n FROM loaded_windows'));
    assert.deepEqual(loads, [{ n: SOURCES.length }]);
  });

  test('another process reads the warehouse between calls; a call waits while it holds the file', async () => {
    const { config } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });
    // What `smartcity report` does from its own process: open read-only (waiting while the worker
    // still holds the file after its burst of calls), query, hold it a moment.
    const report = `
      const { DuckDBInstance } = require('@duckdb/node-api');
      const open = async (tries) => {
        try {
          return await DuckDBInstance.create(process.argv[1], { access_mode: 'READ_ONLY' });
        } catch (err) {
          if (tries === 0 || !/lock/i.test(err.message)) throw err;
          await new Promise((resolve) => setTimeout(resolve, 20));
          return open(tries - 1);
        }
      };
      (async () => {
        const db = await open(250);
        const conn = await db.connect();
        console.log(String((await conn.runAndReadAll('SELECT count(*) FROM gps')).getRows()[0][0]));
        await new Promise((resolve) => setTimeout(resolve, 800));
        conn.disconnectSync();
        db.closeSync();
      })();`;
    const reader = spawn(process.execPath, ['-e', report, warehousePath(config)], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(reader, 'exit');
    const [line] = (await once(reader.stdout, 'data')) as [Buffer];
    assert.equal(line.toString().trim(), '3');

    const started = Date.now();
    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows, counts(3));
    assert.ok(Date.now() - started >= 400, 'the load waited for the reader to close the file');
    assert.deepEqual(await exited, [0, null]);
  });

  test('a window before any curated data loads nothing', async () => {
    const { config } = await scenario();
    const act = activities(config);
    assert.deepEqual((await act.loadWarehouse({ window: { from: '2026-03-01T00:00:00Z', to: '2026-03-01T00:05:00Z' } })).rows, counts(0));
    await assert.rejects(act.loadWarehouse({ window: { from: W1.to, to: W1.from } }), /invalid window/);
  });
});

// ---- quality checks and raw counts --------------------------------------------------------

describe('checkQuality', () => {
  test('a window with no data in any layer passes with zero counts, before and after the first load', async () => {
    const { config } = await scenario();
    const act = activities(config);
    const empty = { from: '2026-03-01T00:00:00Z', to: '2026-03-01T00:05:00Z' };
    for (const stage of ['before any load', 'after a load of another window']) {
      const result = await act.checkQuality({ window: empty });
      assert.deepEqual(failed(result), [], stage);
      assert.deepEqual(result.counts, { raw: counts(0), curated: counts(0), warehouse: counts(0) }, stage);
      await act.loadWarehouse({ window: W1 });
    }
  });

  test('passes on a consistent window and names what is wrong when the warehouse drifts', async () => {
    const { config } = await scenario();
    const act = activities(config);
    await act.loadWarehouse({ window: W1 });

    const good = await act.checkQuality({ window: W1 });
    assert.deepEqual(failed(good), []);
    assert.equal(good.passed, true);
    assert.equal(good.checks.length, SOURCES.length * 5);
    assert.deepEqual(good.counts, { raw: counts(3), curated: counts(3), warehouse: counts(3) }, 'the re-sent event counts once in raw');

    const notLoaded = await act.checkQuality({ window: W2 });
    assert.equal(notLoaded.passed, false);
    assert.match(check(notLoaded, 'warehouse_matches_curated.gps').detail, /has 0 rows for the window, curated 2; 2 curated event_ids missing from the warehouse \(e\.g\. gps-0004, gps-0005\); re-run loadWarehouse/);

    await withDatabase(warehousePath(config), async (conn) => {
      await conn.run("DELETE FROM gps WHERE event_id = 'gps-0002'");
      await conn.run("INSERT INTO traffic SELECT * FROM traffic WHERE event_id = 'traffic-0001'");
    });
    const drifted = await act.checkQuality({ window: W1 });
    assert.deepEqual(failed(drifted), ['warehouse_matches_curated.gps', 'warehouse_matches_curated.traffic', 'unique_event_id.traffic']);
    assert.match(check(drifted, 'warehouse_matches_curated.gps').detail, /has 2 rows for the window, curated 3; 1 curated event_ids missing from the warehouse \(e\.g\. gps-0002\)/);
    assert.match(check(drifted, 'unique_event_id.traffic').detail, /1 event_ids occur more than once in warehouse table traffic \(e\.g\. traffic-0001 ×2\)/);
    assert.deepEqual(drifted.counts.warehouse, { ...counts(3), gps: 2, traffic: 4 });

    await act.loadWarehouse({ window: W1 });
    assert.equal((await act.checkQuality({ window: W1 })).passed, true, 'reloading the window repairs it');
  });

  test('fails on values outside the contract, NULLs in required columns and events curate lost', async () => {
    const { config, lake, events } = await scenario();
    const act = activities(config);
    const vehicle = events.vehicle.w1.map((e) => (e.event_id === 'vehicle-0002' ? { ...e, speed_kmh: 350 } : e));
    await recurate(config, 'vehicle', W1, vehicle);
    const weather = events.weather.w1.map((e) => (e.event_id === 'weather-0003' ? { ...e, humidity_pct: 120, condition: 'hail' } : e));
    await recurate(config, 'weather', W1, weather, curatedColumns('weather'), 'copy-on-write');
    const gps = events.gps.w1.map((e) => (e.event_id === 'gps-0001' ? { ...e, lat: null } : e));
    await recurate(config, 'gps', W1, gps);
    await landRaw(lake, 'emergency', 5, [event('emergency', 8, at(1))]);
    await act.loadWarehouse({ window: W1 });

    const result = await act.checkQuality({ window: W1 });
    assert.equal(result.passed, false);
    assert.deepEqual(failed(result), ['values_in_range.vehicle', 'required_not_null.gps', 'values_in_range.weather', 'reconcile_raw_curated.emergency']);
    assert.match(check(result, 'values_in_range.vehicle').detail, /speed_kmh: 1 rows not within \[0, 300\], seen 350\.0 \(e\.g\. event_id vehicle-0002\)/);
    const weatherDetail = check(result, 'values_in_range.weather').detail;
    assert.match(weatherDetail, /condition: 1 rows not one of "clear", "cloudy", "rain", "snow", "fog", seen hail/);
    assert.match(weatherDetail, /humidity_pct: 1 rows not within \[0, 100\], seen 120\.0/);
    assert.match(check(result, 'required_not_null.gps').detail, /NULL in required columns of warehouse table gps, .*: lat: 1 rows \(e\.g\. event_id gps-0001\)/);
    assert.match(
      check(result, 'reconcile_raw_curated.emergency').detail,
      /curated has 3 rows for 4 distinct raw event_ids; 1 raw event_ids missing from curated \(e\.g\. emergency-0008\); re-run curateWindow/,
    );
    assert.equal(result.counts.raw.emergency, 4);
  });

  test('names extra copies of an event in curated, and the duplicates they load', async () => {
    const { config, events } = await scenario();
    const act = activities(config);
    // A second copy of emergency-0001 committed to the table (no curate run does this: its MERGE
    // matches on event_id; a hand-made INSERT or a broken job could).
    await appendCurated(config, 'emergency', curatedColumns('emergency'), [events.emergency.w1[0]!]);
    assert.deepEqual((await act.loadWarehouse({ window: W1 })).rows, { ...counts(3), emergency: 4 });

    const result = await act.checkQuality({ window: W1 });
    assert.deepEqual(failed(result), ['reconcile_raw_curated.emergency', 'unique_event_id.emergency']);
    assert.match(check(result, 'reconcile_raw_curated.emergency').detail, /curated has 4 rows for 3 distinct raw event_ids; 1 extra copies of event_ids in curated; re-run curateWindow/);
    assert.match(check(result, 'unique_event_id.emergency').detail, /1 event_ids occur more than once in warehouse table emergency \(e\.g\. emergency-0001 ×2\)/);
    assert.ok(check(result, 'warehouse_matches_curated.emergency').passed, 'the warehouse holds what curated holds');
    assert.deepEqual(result.counts.curated, { ...counts(3), emergency: 4 });
  });
});

describe('countRawWindows', () => {
  test('counts raw rows per window and source, and grows when late data lands', async () => {
    const { config, lake } = await scenario();
    const act = activities(config);
    const empty = { from: '2026-03-03T00:00:00Z', to: '2026-03-03T00:05:00Z' };

    // Raw keeps every copy: the event re-sent in batch 1 counts twice.
    assert.deepEqual(await act.countRawWindows({ windows: [W1, W2, empty] }), [counts(4), counts(2), counts(0)]);
    assert.deepEqual(await act.countRawWindows({ windows: [] }), []);

    await landRaw(lake, 'weather', 7, [event('weather', 10, at(4, 30))]);
    const [w1, w2] = await act.countRawWindows({ windows: [W1, W2] });
    assert.deepEqual(w1, { ...counts(4), weather: 5 });
    assert.deepEqual(w2, counts(2));
  });
});
