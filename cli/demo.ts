import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { loadConfig } from '../config';
import { queryActivities } from '../activities/queries';
import type { SourceCounts, TimeWindow } from '../activities/types';
import { renderTerminal, seconds } from '../report/terminal';
import { SOURCES } from '../schemas';
import { requestBackfillUpdate, type PipelineStatus, type smartCityPipeline, type WindowRecord } from '../workflows';
import { MINUTE_MS, windowAt } from '../workflows/windows';
import { parseCommandLine, UsageError } from './args';
import { LiveView } from './live-view';
import { LocalPipeline, onInterrupt, PipelineWatch } from './local-run';
import { writeHtmlReport } from './report';

export const DEMO_USAGE = `smartcity demo [--keep | --stop]

  The whole local pipeline in one command, in about three minutes: brings the stack up (Kafka,
  Temporal dev server and Web UI), starts a worker and the pipeline controller (1-minute windows)
  with its Spark streaming job, produces an hour-old minute of driving for three vehicles
  (London → Birmingham) and backfills it, streams the same fleet live at 30× real time, and waits
  until a live window and the backfilled window are loaded into the warehouse and checked. Then it
  prints the report (rows per source and layer, quality checks, stage timings, Web UI links), writes
  it as HTML to <data dir>/reports/demo.html and stops what it started.

  --keep   leave the stack, worker, controller and live fleet running for exploring
  --stop   stop what \`demo --keep\` left running (controller and streaming job, worker, stack)`;

const VEHICLES = 3;
const SPEEDUP = 30;
const PIPELINE = { windowMinutes: 1, allowedLatenessSeconds: 10, tickSeconds: 5, backfillConcurrency: 1 };
/**
 * How long the streaming job takes from the controller's start to landing its first micro-batch (a
 * JVM and Spark on 2 cores, warm: 15–25 s). The first live window is the one open then; it closes
 * no earlier than this plus the allowed lateness, and a straggler would be caught by the
 * controller's late-data re-count.
 */
const STREAMING_STARTUP_MS = 25_000;
/** Vehicles of a fleet depart within this many minutes of its start (producers/fleet.ts). */
const DEPARTURE_SPREAD_MIN = 10;
const WAIT_TIMEOUT_MS = 10 * MINUTE_MS;
const POLL_MS = 2_000;

const total = (counts: SourceCounts | undefined) => (counts ? SOURCES.reduce((n, s) => n + counts[s], 0) : 0);

/** Polls `probe` until it returns a value; throws after WAIT_TIMEOUT_MS saying what it waited for. */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_TIMEOUT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_TIMEOUT_MS / 60_000} min waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** The window's record once loaded with rows; an error once the controller gave up on it. */
function loadedRecord(status: PipelineStatus | undefined, match: (r: WindowRecord) => boolean): WindowRecord | undefined {
  const records = status?.windows.filter(match) ?? [];
  const gaveUp = records.find((r) => r.status === 'failed' && r.nextRetryAt === undefined);
  if (gaveUp) throw new Error(`the batch run of ${gaveUp.window.from} failed: ${gaveUp.lastError?.type}: ${gaveUp.lastError?.message}`);
  return records.find((r) => r.status === 'loaded' && total(r.rows) > 0);
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(
    argv,
    { keep: { type: 'boolean' }, stop: { type: 'boolean' } },
    z.object({ keep: z.boolean().optional(), stop: z.boolean().optional() }),
  );
  if (values.keep && values.stop) throw new UsageError('--keep and --stop exclude each other');
  const config = loadConfig();
  if (values.stop) {
    const stopped = await new LocalPipeline(config, (line) => console.log(line)).stopAll();
    console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing was running');
    return 0;
  }

  const startedAt = new Date();
  const view = new LiveView('smartcity demo');
  const pipeline = new LocalPipeline(config, view.log);
  let interrupted = false;
  const offInterrupt = onInterrupt(
    () => {
      interrupted = true;
      view.log('Ctrl-C: stopping what the demo started… (Ctrl-C again to exit at once)');
    },
    () => process.exit(130),
  );
  const checkInterrupt = () => {
    if (interrupted) throw new Error('interrupted');
  };

  let keep = values.keep ?? false;
  let code = 0;
  try {
    await view.step('local stack: Kafka, Temporal dev server + Web UI', () => pipeline.stackUp());
    checkInterrupt();
    await view.step('worker (workflows + activities)', () => pipeline.workerUp(), (w) => `pid ${w.pid}, log ${w.log}`);
    checkInterrupt();

    const watch = new PipelineWatch(config, pipeline.client, pipeline.fleets);
    let watching = true;
    const refresh = (async () => {
      while (watching) {
        view.setStatus(await watch.lines().catch(() => []));
        await sleep(POLL_MS);
      }
    })();

    try {
      // The controller first: its streaming job (a JVM) starts while the fleets produce. The first
      // live window is the one open when the job should be landing events; both fleets run ahead
      // of the clock, so that window's events are in Kafka long before it closes.
      const live = windowAt(Date.now() + STREAMING_STARTUP_MS, MINUTE_MS);
      const controller: WorkflowHandle<typeof smartCityPipeline> = await view.step('controller + streaming job started', () =>
        pipeline.startController({ ...PIPELINE, startAt: live.from }, { replace: true }),
      );
      checkInterrupt();

      // Historic data for the backfill: the fleet departs (over DEPARTURE_SPREAD_MIN) before the
      // window an hour ago, so every vehicle drives in it; produced as fast as possible. The live
      // fleet departs DEPARTURE_SPREAD_MIN before the live window, at SPEEDUP× real time.
      const historic: TimeWindow = windowAt(Date.now() - 60 * MINUTE_MS, MINUTE_MS);
      const produced: TimeWindow = { from: new Date(Date.parse(historic.from) - DEPARTURE_SPREAD_MIN * MINUTE_MS).toISOString(), to: historic.to };
      const seed = startedAt.getTime() % 1_000_000;
      const [history, liveFleet] = await Promise.all([
        view.step(
          'historic fleet → Kafka (an hour ago)',
          async () => {
            const fleet = await pipeline.startFleet({ vehicles: VEHICLES, seed, start: produced.from, asFastAsPossible: true, durationMinutes: DEPARTURE_SPREAD_MIN + 1 });
            return pipeline.fleetResult(fleet);
          },
          (r) => `${total(r.totals)} events`,
        ),
        view.step(
          `live fleet started (${SPEEDUP}× real time)`,
          () =>
            pipeline.startFleet({
              vehicles: VEHICLES,
              seed: seed + 1,
              start: new Date(Date.parse(live.from) - DEPARTURE_SPREAD_MIN * MINUTE_MS).toISOString(),
              speedup: SPEEDUP,
            }),
          (h) => h.workflowId,
        ),
      ]);
      checkInterrupt();

      const queries = queryActivities(config);
      await view.step('historic events landed in the raw lake', () =>
        until('the streaming job to land the historic events', async () => {
          checkInterrupt();
          const [raw] = await queries.countRawWindows({ windows: [produced] });
          return SOURCES.every((s) => raw![s] >= history.totals[s]) ? raw : undefined;
        }),
      );
      const backfill = await view.step(`backfill of ${historic.from.slice(11, 16)} requested`, () =>
        controller.executeUpdate(requestBackfillUpdate, { args: [{ from: historic.from, to: historic.to }] }),
      );
      if (backfill.accepted.length === 0) throw new Error(`the backfill was not accepted: ${backfill.skipped.map((s) => s.reason).join('; ')}`);

      const liveFrom = Date.parse(live.from);
      await view.step('a live and the backfilled window loaded + checked', () =>
        until('a live window and the backfilled window to be loaded', async () => {
          checkInterrupt();
          const fleetFailed = await pipeline.fleetFailure(liveFleet);
          if (fleetFailed) throw fleetFailed;
          const status = watch.pipeline;
          const backfilled = loadedRecord(status, (r) => r.window.from === historic.from);
          const liveWindow = loadedRecord(status, (r) => Date.parse(r.window.from) >= liveFrom);
          return backfilled && liveWindow ? { backfilled, liveWindow } : undefined;
        }),
      );
    } finally {
      watching = false;
      await refresh;
    }

    const html = join(config.dataDir, 'reports', 'demo.html');
    const { path, report } = await view.step('report', () => writeHtmlReport(config, html, { since: startedAt }));
    view.stop();
    console.log('');
    for (const line of renderTerminal(report)) console.log(line);
    console.log('');
    console.log('demo stages');
    for (const t of view.timings()) console.log(`  ${t.ok ? '✓' : '✗'} ${t.name.padEnd(50)} ${seconds(t.ms).padStart(6)}`);
    console.log(`\nHTML report: ${path} (self-contained; open it in a browser)`);
  } catch (err) {
    keep = false;
    view.stop();
    if (!interrupted) throw err;
    code = 130;
  } finally {
    offInterrupt();
    if (keep) {
      console.log(`\nStill running: the stack, the worker, the controller (1-minute windows) and the live fleet.`);
      console.log(`  Temporal Web UI   ${config.temporal.uiUrl}`);
      console.log(`  report            npm run cli -- report  (--json, --html FILE)`);
      console.log(`Stop all of it with: npm run cli -- demo --stop`);
    } else {
      const began = Date.now();
      const stopped = await pipeline.shutdown();
      if (stopped.length) console.log(`\nstopped in ${seconds(Date.now() - began)}: ${stopped.join(', ')} (npm run demo -- --keep leaves them running)`);
    }
  }
  return code;
}
