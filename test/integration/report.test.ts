// smartcity report over a data dir laid out as the pipeline leaves it: raw and quarantine as the
// streaming job lands them, a curated window, a catalog crawled and a warehouse loaded by the real
// DuckDB activities. The events come from the fleet simulation itself. The HTML report is rendered
// in headless Chromium, which must draw the map and the charts without fetching anything.
import assert from 'node:assert/strict';
import { appendCurated } from '../helpers/iceberg-write';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { catalogActivities } from '../../activities/catalog';
import { withDatabase } from '../../activities/duckdb';
import type { TimeWindow } from '../../activities/types';
import { warehouseActivities } from '../../activities/warehouse';
import { loadConfig, type Config } from '../../config';
import { fleetEvents } from '../../producers/fleet';
import { renderHtml } from '../../report/html';
import { gatherReport, windowStatuses } from '../../report/model';
import { readTemporalState } from '../../report/temporal';
import { renderTerminal } from '../../report/terminal';
import { SOURCES, type SmartCityEvent, type Source } from '../../schemas';
import { runCli } from '../helpers/cli';

const START = Date.parse('2026-03-10T06:00:00Z');
const DRIVEN_MS = 90 * 60_000;
const WINDOW: TimeWindow = { from: '2026-03-10T06:30:00.000Z', to: '2026-03-10T06:35:00.000Z' };
/** Nothing listens here: the report must carry on without Temporal. */
const NO_TEMPORAL = '127.0.0.1:1';

// Runs in the page. A string, not a function: tsx would wrap a function's inner helpers in its own
// __name(), which the page does not have.
const MEASURE_DRAWING = `(() => {
  const sized = (selector) => [...document.querySelectorAll(selector)].map((el) => {
    const box = el.getBBox();
    return box.width > 0 || box.height > 0;
  });
  return {
    routes: sized('#map path.route'),
    incidents: sized('#map circle.incident'),
    cameras: sized('#map rect.camera'),
    speed: sized('#speed path.series'),
    temperature: sized('#temperature path.series'),
    bars: sized('#window-status rect.bar'),
    mapSize: document.querySelector('#map').getBoundingClientRect().width,
  };
})()`;

const scratch: string[] = [];
after(() => scratch.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'smartcity-report-'));
  scratch.push(dir);
  return dir;
}

const configFor = (dir: string): Config => loadConfig({ ...process.env, SMARTCITY_DATA_DIR: dir, SMARTCITY_TEMPORAL_ADDRESS: NO_TEMPORAL });

/** An event as a lake row: snake_case columns, the location flattened (spark/smartcity_spark/schemas.py). */
function lakeRow(event: SmartCityEvent): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (key === 'location') Object.assign(row, value);
    else row[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return row;
}

/** Writes rows as one Parquet file through DuckDB's JSON reader; `select` may retype columns. */
async function writeParquet(path: string, rows: Record<string, unknown>[], select = '*'): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const json = `${path}.ndjson`;
  writeFileSync(json, rows.map((r) => JSON.stringify(r)).join('\n'));
  await withDatabase(undefined, (conn) => conn.run(`COPY (SELECT ${select} FROM read_json_auto('${json}')) TO '${path}' (FORMAT PARQUET)`));
  rmSync(json);
}

const hourOf = (time: string) => `date=${time.slice(0, 10)}/hour=${time.slice(11, 13)}`;

interface Fixture {
  config: Config;
  produced: Record<Source, number>;
  inWindow: Record<Source, number>;
}

/**
 * Three vehicles drive 90 minutes; raw holds every event (one micro-batch per hour partition),
 * quarantine two rejected GPS records, curated and the warehouse the window WINDOW.
 */
async function pipelineDataDir(): Promise<Fixture> {
  const config = configFor(dataDir());
  const events = [...takeWhile(fleetEvents({ vehicles: 3, seed: 7, start: new Date(START) }), (e) => Date.parse(e.eventTime) < START + DRIVEN_MS)];
  const produced = Object.fromEntries(SOURCES.map((s) => [s, 0])) as Record<Source, number>;
  const inWindow = { ...produced };
  for (const source of SOURCES) {
    const rows = events.filter((e) => e.source === source).map(lakeRow);
    produced[source] = rows.length;
    const hours = new Map<string, Record<string, unknown>[]>();
    for (const row of rows) hours.set(hourOf(String(row.event_time)), [...(hours.get(hourOf(String(row.event_time))) ?? []), row]);
    for (const [hour, hourRows] of hours) await writeParquet(join(config.lakeRoot, 'raw', source, hour, 'batch_id=0', 'part-00000.snappy.parquet'), hourRows);
    const curated = rows.filter((r) => String(r.event_time) >= WINDOW.from && String(r.event_time) < WINDOW.to);
    inWindow[source] = curated.length;
    if (curated.length > 0) {
      // Curated is an Iceberg table (activities/iceberg.ts reads it), written here without Spark.
      const columns = Object.entries(curated[0]!).map(([name, value]) => [name, name === 'event_time' ? 'TIMESTAMPTZ' : typeof value === 'number' ? 'DOUBLE' : 'VARCHAR'] as const);
      const values = curated.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' || v === null ? v : typeof v === 'string' ? v : JSON.stringify(v)])));
      await appendCurated(config, source, columns, values);
    }
  }
  const rejected = [1, 2].map((n) => ({ value: `{"broken": ${n}`, reason: 'invalid JSON', kafka_topic: 'gps_data', kafka_partition: 0, kafka_offset: n }));
  await writeParquet(join(config.lakeRoot, 'quarantine', 'gps', hourOf(WINDOW.from), 'batch_id=0', 'part-00000.snappy.parquet'), rejected);
  await catalogActivities(config).crawlLayer({ layer: 'raw', window: WINDOW });
  await warehouseActivities(config).loadWarehouse({ window: WINDOW });
  return { config, produced, inWindow };
}

function* takeWhile<T>(items: Iterable<T>, keep: (item: T) => boolean): Generator<T> {
  for (const item of items) {
    if (!keep(item)) return;
    yield item;
  }
}

describe('smartcity report', { timeout: 5 * 60_000 }, () => {
  let fixture: Fixture;
  before(async () => {
    fixture = await pipelineDataDir();
  });

  test('on an empty data dir it reports zero rows and says what is missing', async () => {
    const report = await gatherReport(configFor(dataDir()), { series: true });
    for (const source of SOURCES) assert.deepEqual(report.sources[source], { raw: 0, quarantine: 0, curated: 0, warehouse: 0 });
    assert.deepEqual(report.loadedWindows, []);
    assert.deepEqual(report.windows, []);
    assert.equal(report.temporal.reachable, false);
    assert.match(report.notes.join('\n'), /no events yet[\s\S]*no warehouse yet[\s\S]*no catalog yet[\s\S]*Temporal is not reachable/);
    assert.match(renderTerminal(report).join('\n'), /total\s+0\s+0\s+0\s+0/);
    assert.match(renderHtml(report), /no vehicle events in the lake yet/);
  });

  test('counts rows per source in raw, quarantine, curated and the warehouse, and lists the loaded window', async () => {
    const report = await gatherReport(fixture.config);
    for (const source of SOURCES) {
      assert.equal(report.sources[source].raw, fixture.produced[source], `raw ${source}`);
      assert.equal(report.sources[source].curated, fixture.inWindow[source], `curated ${source}`);
      assert.equal(report.sources[source].warehouse, fixture.inWindow[source], `warehouse ${source}`);
      assert.equal(report.sources[source].quarantine, source === 'gps' ? 2 : 0, `quarantine ${source}`);
    }
    assert.equal(report.loadedWindows.length, 1);
    assert.deepEqual({ from: report.loadedWindows[0]!.from, to: report.loadedWindows[0]!.to }, WINDOW);
    assert.deepEqual(report.loadedWindows[0]!.rows, fixture.inWindow);
    assert.deepEqual(report.windows.map((w) => [w.from, w.status]), [[WINDOW.from, 'loaded']]);
    assert.deepEqual(report.catalog.map((t) => t.name).sort(), SOURCES.map((s) => `raw_${s}`).sort());
  });

  test('--json prints per source the rows of each layer plus the loaded windows, and no chart data', () => {
    const result = runCli(['report', '--json'], { SMARTCITY_DATA_DIR: fixture.config.dataDir, SMARTCITY_TEMPORAL_ADDRESS: NO_TEMPORAL });
    assert.equal(result.status, 0, result.stderr);
    const json = JSON.parse(result.stdout) as Record<string, unknown> & { sources: Record<string, Record<string, number>>; loadedWindows: unknown[] };
    assert.deepEqual(Object.keys(json.sources).sort(), [...SOURCES].sort());
    assert.deepEqual(json.sources.vehicle, { raw: fixture.produced.vehicle, quarantine: 0, curated: fixture.inWindow.vehicle, warehouse: fixture.inWindow.vehicle });
    assert.equal(json.loadedWindows.length, 1);
    assert.equal(json.series, undefined);
  });

  test('the HTML report opens offline in Chromium and draws the map, the charts and the window status', async () => {
    const file = join(fixture.config.dataDir, 'report.html');
    const result = runCli(['report', '--html', file], { SMARTCITY_DATA_DIR: fixture.config.dataDir, SMARTCITY_TEMPORAL_ADDRESS: NO_TEMPORAL });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /rows per source and layer/);
    const report = await gatherReport(fixture.config, { series: true });
    const series = report.series!;
    assert.ok(series.routes.length >= 3 && series.incidents.length > 0 && series.cameras.length > 0, JSON.stringify({ routes: series.routes.length, incidents: series.incidents.length }));

    // A fresh profile per run: nothing cached or remembered from another run.
    const browser = await chromium.launchPersistentContext(dataDir(), {
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 900, height: 1200 },
    });
    try {
      const page = await browser.newPage();
      const fetched: string[] = [];
      page.on('request', (request) => {
        if (!request.url().startsWith('file://')) fetched.push(request.url());
      });
      await page.goto(`file://${file}`);
      const drawn = await page.evaluate<Record<'routes' | 'incidents' | 'cameras' | 'speed' | 'temperature' | 'bars', boolean[]> & { mapSize: number }>(MEASURE_DRAWING);
      assert.deepEqual(fetched, [], 'the page fetched nothing');
      assert.equal(drawn.routes.length, series.routes.length);
      assert.equal(drawn.incidents.length, series.incidents.length);
      assert.equal(drawn.cameras.length, series.cameras.length);
      assert.equal(drawn.speed.length, series.routes.length);
      assert.equal(drawn.temperature.length, series.weather.length);
      assert.equal(drawn.bars.length, 1);
      for (const [what, shown] of Object.entries(drawn)) if (Array.isArray(shown)) assert.ok(shown.every(Boolean), `every ${what} element has a size`);
      assert.ok(drawn.mapSize > 300, `map width ${drawn.mapSize}`);
      const screenshot = join(loadConfig().dataDir, 'reports', 'report.png');
      mkdirSync(join(screenshot, '..'), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      assert.ok(readFileSync(screenshot).length > 10_000);
    } finally {
      await browser.close();
    }
  });

  test('text from the data is escaped in the HTML', () => {
    const hostile = '<img src=x onerror=alert(1)>';
    const html = renderHtml({
      generatedAt: '2026-03-10T07:00:00.000Z',
      target: 'local',
      dataDir: '/tmp',
      sources: Object.fromEntries(SOURCES.map((s) => [s, { raw: 1, quarantine: 0, curated: 0, warehouse: 0 }])) as Record<Source, { raw: number; quarantine: number; curated: number; warehouse: number }>,
      loadedWindows: [],
      windows: [],
      catalog: [],
      temporal: { reachable: false, uiUrl: '', fleets: [], batchRuns: [] },
      notes: [],
      series: { routes: [{ vehicleId: hostile, points: [{ t: START, lat: 51.5, lon: -0.1, speedKmh: 50 }, { t: START + 5000, lat: 51.51, lon: -0.11, speedKmh: 55 }] }], weather: [], incidents: [], cameras: [] },
    });
    assert.ok(!html.includes(hostile));
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  });

  test("a window's status is its latest batch run's outcome; the warehouse's record stands without Temporal", () => {
    const rows = Object.fromEntries(SOURCES.map((s) => [s, 1])) as Record<Source, number>;
    const loaded = [{ ...WINDOW, rows, loadedAt: '2026-03-10T07:00:00.000Z' }];
    const run = (attempt: number, status: string, startedAt: string) => ({
      workflowId: `smartcity-batch-${WINDOW.from}-${attempt}`,
      runId: `run-${attempt}`,
      type: 'batchRun',
      status,
      startedAt,
      url: `http://ui/${attempt}`,
      windowFrom: WINDOW.from,
      ...(status === 'failed' && { error: 'quality checks failed' }),
    });
    const temporal = { reachable: true, uiUrl: 'http://ui', fleets: [], batchRuns: [run(2, 'failed', '2026-03-10T07:10:00Z'), run(1, 'completed', '2026-03-10T07:00:00Z')] };
    const [window] = windowStatuses(loaded, temporal);
    assert.equal(window!.status, 'failed');
    assert.equal(window!.runs, 2);
    assert.equal(window!.latestRun!.url, 'http://ui/2');
    assert.deepEqual(window!.rows, rows, 'the rows of the last successful load stay');
    assert.equal(windowStatuses(loaded, { ...temporal, reachable: false, batchRuns: [] })[0]!.status, 'loaded');
  });

  test('reads the runs of the configured Temporal server, or says why it cannot', async () => {
    const unreachable = await readTemporalState(configFor(dataDir()));
    assert.equal(unreachable.reachable, false);
    assert.match(unreachable.error ?? '', new RegExp(`cannot reach Temporal at ${NO_TEMPORAL.replaceAll('.', '\\.')}`));
    const state = await readTemporalState(loadConfig(), { since: new Date(Date.now() + 3_600_000) });
    assert.equal(state.reachable, true, state.error);
    assert.deepEqual(state.batchRuns, [], 'no batch run started in the future');
  });
});
