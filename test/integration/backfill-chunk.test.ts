// A backfill of consecutive windows on the real local activities: past driving landed by the real
// ingest job, then requestBackfill on a controller run by a real worker. The windows run as one
// chunk (one curate), each window loaded and checked by its own batchRun through local
// activities, several at once on the shared warehouse file. Checked against the generator's
// events, not against what the pipeline reports.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../config';
import { queryRows, withDatabase } from '../../activities/duckdb';
import { warehousePath } from '../../activities/warehouse';
import { ingestFleetHistory, type FleetHistory } from '../../bench/history';
import { SOURCES, type Source } from '../../schemas';
import { connectClient } from '../../temporal/connection';
import { startWorker, type RunningWorker } from '../../workers/worker';
import { pipelineStatusQuery, requestBackfillUpdate, smartCityPipeline, type PipelineStatus } from '../../workflows';
import { until } from '../helpers/until';

const WINDOW_MS = 5 * 60_000;
const START = Date.parse('2026-02-04T06:00:00Z');
const WINDOWS = 4;

describe('a backfill of four windows on the real activities', () => {
  const base = loadConfig();
  const dataDir = mkdtempSync(join(tmpdir(), 'smartcity-chunk-'));
  const config: Config = { ...base, dataDir, lakeRoot: join(dataDir, 'lake'), temporal: { ...base.temporal, taskQueue: `chunk-${randomUUID()}` } };
  let history: FleetHistory;
  let worker: RunningWorker;
  let connection: Awaited<ReturnType<typeof connectClient>>;

  before(async () => {
    history = await ingestFleetHistory(config, { run: randomUUID().slice(0, 8), vehicles: 2, seed: 21, start: new Date(START), until: new Date(START + WINDOWS * WINDOW_MS) });
    worker = await startWorker(config);
    connection = await connectClient(config);
  });

  after(async () => {
    worker?.worker.shutdown();
    await worker?.done;
    await connection?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('one curate for the chunk; every window loaded and checked on its own, holding exactly the generated events', { timeout: 10 * 60_000 }, async () => {
    const pipeline = await connection.client.workflow.start(smartCityPipeline, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `chunk-pipeline-${randomUUID()}`,
      args: [{ windowMinutes: 5, streaming: false, startAt: new Date(Date.now() + 86_400_000).toISOString() }],
    });
    try {
      const range = { from: new Date(START).toISOString(), to: new Date(START + WINDOWS * WINDOW_MS).toISOString() };
      const outcome = await pipeline.executeUpdate(requestBackfillUpdate, { args: [range] });
      assert.equal(outcome.accepted.length, WINDOWS);
      const status = await until(
        'every window loaded',
        async () => {
          const s: PipelineStatus = await pipeline.query(pipelineStatusQuery);
          const failed = s.windows.find((w) => w.status === 'failed');
          if (failed) throw new Error(`window ${failed.window.from} failed: ${failed.lastError?.message}`);
          return s.windows.filter((w) => w.status === 'loaded').length === WINDOWS && s.running.length === 0 ? s : undefined;
        },
        { timeoutMs: 8 * 60_000, everyMs: 1_000 },
      );

      const chunks = new Set(status.windows.map((w) => w.chunk));
      assert.equal(chunks.size, 1, 'the four windows ran as one chunk');

      // The generator's events per window and source (an event sent twice is one event).
      const expected = new Map<string, Record<Source, Set<string>>>();
      for (const e of history.events) {
        const from = new Date(Math.floor(Date.parse(e.eventTime) / WINDOW_MS) * WINDOW_MS).toISOString();
        const bySource = expected.get(from) ?? (Object.fromEntries(SOURCES.map((s) => [s, new Set<string>()])) as Record<Source, Set<string>>);
        bySource[e.source].add(e.eventId);
        expected.set(from, bySource);
      }
      for (const record of status.windows) {
        const want = expected.get(record.window.from);
        assert.ok(want, `no generated events for ${record.window.from}`);
        for (const source of SOURCES) {
          const rows = await withDatabase(
            warehousePath(config),
            (conn) =>
              queryRows(conn, `SELECT event_id FROM ${source} WHERE event_time >= $from::TIMESTAMPTZ AND event_time < $to::TIMESTAMPTZ ORDER BY event_id`, {
                from: record.window.from,
                to: record.window.to,
              }),
            { readOnly: true },
          );
          assert.deepEqual(rows.map((r) => r.event_id), [...want[source]].sort(), `${source} in ${record.window.from}`);
        }
        // Loaded and checked by local activities: no activity task in the window's own run.
        const events = (await connection.client.workflow.getHandle(record.workflowId).fetchHistory()).events ?? [];
        assert.equal(events.filter((e) => e.activityTaskScheduledEventAttributes).length, 0, record.workflowId);
      }
    } finally {
      await pipeline.cancel();
    }
  });
});
