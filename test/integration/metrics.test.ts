// The worker's Prometheus endpoint, scraped from a real `smartcity worker` process against the
// test stack (Kafka, Temporal; run by scripts/test.sh): the exposition passes `promtool check
// metrics`, holds the SDK's runtime metrics and every pipeline family, and the families move when
// a fleet produces, the streaming job lands (and quarantines) records and a backfill runs a batch.
// The worker gets its own namespace and data folder, so its controller, streaming job, lake and
// progress file are this test's alone; the numbers are checked against what the fleet reports
// having produced and what the progress file says, not against the metrics themselves.
// Meanwhile `smartcity stack up --metrics` runs Debian's Prometheus scraping this worker; at the
// end the Grafana dashboard's panels are drawn from its data in headless Chromium (the README's
// screenshot, .data/test/reports/dashboard.png).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { chromium } from 'playwright-core';
import { loadConfig, PROJECT_ROOT, type Config } from '../../config';
import { stopProcess } from '../../stack/processes';
import { prometheusUrl } from '../../stack/prometheus';
import { createKafka, KEY_PARTITIONER } from '../../kafka/client';
import { progressFilePath } from '../../metrics/progress';
import { SOURCES, TOPICS } from '../../schemas';
import { connectClient } from '../../temporal/connection';
import {
  DEFAULT_STREAMING_JOB,
  fleetSimulation,
  PIPELINE_WORKFLOW_ID,
  requestBackfillUpdate,
  smartCityPipeline,
  type FleetSimulationResult,
} from '../../workflows';
import { runCli } from '../helpers/cli';
import { renderDashboard, type Panel } from '../helpers/dashboard';
import { has, parseExposition, promtoolProblems, scrape, total, type Sample } from '../helpers/prometheus';
import { NotYet, until } from '../helpers/until';
import { startWorkerProcess, type WorkerProcess } from '../helpers/worker-process';

const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
const METRICS_PORT = 29465 + offset;
const NAMESPACE = 'smartcity-metrics-test';
const base = loadConfig({ ...process.env, SMARTCITY_METRICS_PORT: String(METRICS_PORT) });
const dataDir = join(base.dataDir, `metrics-${randomUUID()}`);
const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake'), temporal: { ...base.temporal, namespace: NAMESPACE } };
const url = `http://127.0.0.1:${METRICS_PORT}/metrics`;
// A past window no other test uses: the batch run selects this fleet's events by event time.
const FLEET_START = '2026-05-05T10:00:00Z';
const WINDOW = { from: '2026-05-05T10:00:00.000Z', to: '2026-05-05T10:05:00.000Z' };
// crawlCurated: only runs recorded before the lake was Iceberg (workflows/batch-stages.ts ICEBERG_CURATED_PATCH).
const STAGES = ['crawlRaw', 'countRaw', 'curate', 'load', 'quality'];

async function samples(): Promise<Sample[]> {
  return parseExposition(await scrape(url));
}

/** A probe for `until`: the endpoint's samples once `check` returns nothing (all is there); until then its complaint, which a timeout shows. */
function scraped(check: (s: Sample[]) => string | undefined): () => Promise<Sample[]> {
  return async () => {
    const s = await samples();
    const problem = check(s);
    if (problem !== undefined) throw new NotYet(problem);
    return s;
  };
}

/** How often the waits below scrape. */
const SCRAPE_EVERY_MS = 2_000;

describe('worker metrics', { timeout: 20 * 60_000 }, () => {
  let worker: WorkerProcess;
  let connection: Awaited<ReturnType<typeof connectClient>>;
  let controller: WorkflowHandle<typeof smartCityPipeline> | undefined;
  let produced: FleetSimulationResult;
  const startedAt = Date.now();

  before(async () => {
    mkdirSync(dataDir, { recursive: true });
    connection = await connectClient(config);
    await connection.client.workflowService.registerNamespace({ namespace: NAMESPACE, workflowExecutionRetentionPeriod: msToTs('1 day') }).catch((err: Error) => {
      if (!/already/i.test(err.message)) throw err;
    });
    const prometheus = runCli(['stack', 'up', '--metrics'], { SMARTCITY_METRICS_PORT: String(METRICS_PORT) });
    assert.equal(prometheus.status, 0, prometheus.stderr);
    worker = await startWorkerProcess({
      SMARTCITY_DATA_DIR: dataDir,
      SMARTCITY_TEMPORAL_NAMESPACE: NAMESPACE,
      SMARTCITY_METRICS_PORT: String(METRICS_PORT),
    });
  });

  after(async () => {
    if (controller) {
      await controller.cancel().catch(() => undefined);
      await controller.result().catch(() => undefined);
    }
    const code = await worker?.stop();
    await connection?.close();
    await stopProcess(base.dataDir, 'prometheus');
    assert.equal(code, 0, worker?.stderr());
  });

  test('the exposition passes promtool and carries the SDK runtime metrics', async () => {
    const text = await scrape(url);
    assert.equal(promtoolProblems(text), '');
    const s = parseExposition(text);
    for (const name of ['temporal_worker_task_slots_available', 'temporal_num_pollers', 'temporal_request_total']) {
      assert.ok(has(s, name), `${name} is exported`);
    }
    assert.equal(total(s, 'smartcity_pipeline_controller_up'), 0, 'no controller runs yet');
  });

  test('a fleet run moves the producer counters by exactly what it produced, and the ingest lag with them', async () => {
    // The namespace may take a moment to reach every frontend cache after registration.
    const handle = await (async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await connection.client.workflow.start(fleetSimulation, {
            taskQueue: config.temporal.taskQueue,
            workflowId: `metrics-fleet-${randomUUID()}`,
            args: [{ vehicles: 1, seed: 13, start: FLEET_START, asFastAsPossible: true, durationMinutes: 2 }],
          });
        } catch (err) {
          if (attempt >= 20 || !/namespace/i.test((err as Error).message)) throw err;
          await sleep(500);
        }
      }
    })();
    produced = await handle.result();
    const s = await until(
      'the producer counters to reach the fleet totals',
      scraped((s) => {
        for (const source of SOURCES) {
          const topic = TOPICS[source];
          const acked = total(s, 'smartcity_events_acked_total', { topic });
          if (acked !== produced.totals[source]) return `${topic}: acked ${acked}, fleet produced ${produced.totals[source]}`;
        }
        return undefined;
      }),
      { timeoutMs: 30_000, everyMs: SCRAPE_EVERY_MS },
    );
    for (const source of SOURCES) {
      const topic = TOPICS[source];
      assert.equal(total(s, 'smartcity_events_produced_total', { topic }), produced.totals[source]);
      assert.ok(has(s, 'smartcity_events_failed_total', { topic }));
      assert.equal(total(s, 'smartcity_events_failed_total', { topic }), 0);
    }
    assert.equal(total(s, 'smartcity_events_pending'), 0);
    // No streaming job has consumed anything yet: the lag holds at least what the fleet produced.
    await until(
      'the lag to count the new events',
      scraped((s) => {
        const lag = total(s, 'smartcity_ingest_lag_records', { topic: TOPICS.gps });
        return lag >= produced.totals.gps ? undefined : `gps_data lag ${lag} < ${produced.totals.gps}`;
      }),
      { timeoutMs: 30_000, everyMs: SCRAPE_EVERY_MS },
    );
  });

  test('the streaming job and a backfill move the ingest, window, stage and streaming families', async () => {
    // A record that is not JSON: the job quarantines it with its reason class.
    const kafka = createKafka(config).producer({ createPartitioner: KEY_PARTITIONER });
    await kafka.connect();
    await kafka.send({ topic: TOPICS.gps, messages: [{ key: 'metrics-test', value: 'this is not an event' }] });
    await kafka.disconnect();

    controller = await connection.client.workflow.start(smartCityPipeline, {
      taskQueue: config.temporal.taskQueue,
      workflowId: PIPELINE_WORKFLOW_ID,
      // Live windows start tomorrow: only the backfill below runs a batch during the test.
      args: [{ windowMinutes: 5, tickSeconds: 5, startAt: new Date(Date.now() + 86_400_000).toISOString() }],
    });
    let s = await until(
      'the streaming job to land the fleet and quarantine the bad record',
      scraped((s) => {
        for (const source of SOURCES) {
          const landed = total(s, 'smartcity_ingest_landed_records_total', { source });
          if (landed < produced.totals[source]) return `${source}: landed ${landed} < produced ${produced.totals[source]}`;
        }
        if (total(s, 'smartcity_ingest_quarantined_records_total', { source: 'gps' }) < 1) return 'nothing quarantined for gps';
        if (total(s, 'smartcity_ingest_lag_records') !== 0) return `lag ${total(s, 'smartcity_ingest_lag_records')} left`;
        return undefined;
      }),
      { timeoutMs: 8 * 60_000, everyMs: SCRAPE_EVERY_MS },
    );
    assert.ok(s.some((x) => x.name === 'smartcity_ingest_quarantined_records_total' && x.labels.source === 'gps' && x.labels.reason), 'quarantined records carry a reason class');
    assert.ok(total(s, 'smartcity_ingest_batch_duration_seconds_count') >= 1);
    assert.ok(total(s, 'smartcity_ingest_consumed_records_total') >= Object.values(produced.totals).reduce((a, b) => a + b, 0) + 1);
    assert.ok(total(s, 'smartcity_ingest_last_batch_timestamp_seconds') * 1000 >= startedAt - 1000);
    assert.equal(total(s, 'smartcity_streaming_job_state', { state: 'running' }), 1);
    assert.equal(total(s, 'smartcity_streaming_job_state', { state: 'restarting' }), 0);
    assert.ok(has(s, 'smartcity_streaming_job_restarts_total'));
    assert.equal(total(s, 'smartcity_pipeline_controller_up'), 1);

    // Freshness needs the newest event time per source in the progress lines; without it the
    // family stays away rather than showing a made-up number.
    const progress = readFileSync(progressFilePath(config, DEFAULT_STREAMING_JOB), 'utf8').trim().split('\n');
    const newest = (JSON.parse(progress[progress.length - 1]!) as { newest_event_time?: Record<string, string> }).newest_event_time;
    if (newest) {
      const age = total(s, 'smartcity_ingest_freshness_seconds', { source: 'gps' });
      assert.ok(age >= (Date.now() - Date.parse(newest.gps!)) / 1000 - 30, `gps freshness ${age} s`);
    } else {
      assert.ok(!has(s, 'smartcity_ingest_freshness_seconds'), 'no freshness without newest_event_time');
    }

    const outcome = await controller.executeUpdate(requestBackfillUpdate, { args: [WINDOW] });
    assert.deepEqual(outcome.accepted, [WINDOW]);
    s = await until(
      'the backfilled window to be loaded and every stage timed',
      scraped((s) => {
        if (total(s, 'smartcity_pipeline_windows', { state: 'failed' }) > 0) return 'a window failed';
        if (total(s, 'smartcity_pipeline_windows', { state: 'loaded' }) < 1) return 'no window loaded yet';
        const missing = STAGES.filter((stage) => total(s, 'smartcity_batch_stage_duration_seconds_count', { stage, outcome: 'ok' }) < 1);
        return missing.length ? `stages not timed yet: ${missing.join(', ')}` : undefined;
      }),
      { timeoutMs: 8 * 60_000, everyMs: SCRAPE_EVERY_MS },
    );
    for (const state of ['queued', 'running']) assert.ok(has(s, 'smartcity_pipeline_windows', { state }));
    assert.equal(total(s, 'smartcity_pipeline_paused'), 0);
    assert.ok(total(s, 'smartcity_batch_stage_duration_seconds_sum', { stage: 'curate' }) > 0);
    assert.equal(promtoolProblems(await scrape(url)), '');
  });

  test("the dashboard's panels draw this run from Prometheus's scrapes", async () => {
    const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, 'ops', 'grafana', 'dashboards', 'smartcity.json'), 'utf8')) as { title: string; panels: Panel[] };
    const prometheus = prometheusUrl(base);
    // Micro-batch duration is a rate over a minute: it draws once two of Prometheus's scrapes (10 s
    // apart) saw micro-batches between them. On a quick machine the earlier ones may all have
    // fallen between the same two scrapes, so a second short fleet gives the ingest job more.
    const more = await connection.client.workflow.start(fleetSimulation, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `metrics-fleet-${randomUUID()}`,
      args: [{ vehicles: 1, seed: 14, start: '2026-05-05T11:00:00Z', asFastAsPossible: true, durationMinutes: 2 }],
    });
    // A histogram's rate needs a second observation after the series appeared: a second window
    // (no events in it) runs every batch stage once more.
    assert.ok(controller, 'the controller of the test before runs');
    await controller.executeUpdate(requestBackfillUpdate, { args: [{ from: '2026-05-05T10:05:00.000Z', to: '2026-05-05T10:10:00.000Z' }] });
    await more.result();
    const targets = (await (await fetch(`${prometheus}/api/v1/targets`)).json()) as { data: { activeTargets: { scrapeUrl: string; health: string }[] } };
    assert.deepEqual(targets.data.activeTargets.map((t) => [t.scrapeUrl, t.health]), [[url, 'up']]);
    // Nothing failed, so no failure rate has a point (rate() of a flat zero still draws one);
    // freshness needs newest_event_time in the progress lines. Every other panel draws once
    // Prometheus has scraped the run: drawn again (every 5 s, up to 3 min) until it does.
    const mayBeEmpty = ['Freshness per source', 'Temporal request failures'];
    const { html, panels } = await until(
      'every panel to draw the fleet run',
      async () => {
        const rendered = await renderDashboard(dashboard, prometheus, { start: startedAt, end: Date.now() });
        const empty = rendered.panels.filter((p) => p.series === 0 && !mayBeEmpty.includes(p.title)).map((p) => p.title);
        if (empty.length > 0) throw new NotYet(`empty panels: ${empty.join(', ')}`);
        return rendered;
      },
      { timeoutMs: 3 * 60_000, everyMs: 5_000 },
    );
    assert.equal(panels.length, dashboard.panels.filter((p) => p.type !== 'row').length);
    const reports = join(base.dataDir, 'reports');
    mkdirSync(reports, { recursive: true });
    const page = join(reports, 'dashboard.html');
    writeFileSync(page, html);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
      const tab = await browser.newPage({ viewport: { width: 1600, height: 900 } });
      await tab.goto(`file://${page}`);
      assert.equal(await tab.locator('section.panel').count(), panels.length);
      await tab.screenshot({ path: join(reports, 'dashboard.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  test('the streaming job stops with the controller', async () => {
    await controller!.cancel();
    await assert.rejects(controller!.result());
    controller = undefined;
    const s = await until(
      'the controller and the supervisor to be gone',
      scraped((s) => (total(s, 'smartcity_streaming_job_state', { state: 'stopped' }) === 1 && total(s, 'smartcity_pipeline_controller_up') === 0 ? undefined : 'still running')),
      { timeoutMs: 60_000, everyMs: SCRAPE_EVERY_MS },
    );
    assert.equal(total(s, 'smartcity_streaming_job_state', { state: 'running' }), 0);
  });
});
