import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { loadConfig } from '../config';
import { queryActivities } from '../activities/queries';
import type { SourceCounts, TimeWindow } from '../activities/types';
import { renderTerminal, seconds } from '../report/terminal';
import { fleetEvents } from '../producers/fleet';
import { SOURCES } from '../schemas';
import { requestBackfillUpdate, type PipelineStatus, type smartCityPipeline, type WindowRecord } from '../workflows';
import { MINUTE_MS, windowAt } from '../workflows/windows';
import { parseCommandLine, UsageError } from './args';
import { LiveView } from './live-view';
import { LocalPipeline, onInterrupt, PipelineWatch } from './local-run';
import { writeHtmlReport } from './report';

export const DEMO_USAGE = `smartcity demo [--keep | --stop]

  The whole local pipeline in one command, in about 90 seconds: brings the stack up (Kafka,
  Temporal dev server and Web UI), starts a worker and the pipeline controller (1-minute windows)
  with its Spark streaming job, produces an hour-old minute of driving for three vehicles
  (London → Birmingham) and backfills it, streams a second fleet live at 30× real time, and waits
  until a live window and the backfilled window hold every event their fleets made. Then it
  prints the report (rows per source and layer, quality checks, stage timings, Web UI links), writes
  it as HTML to <data dir>/reports/demo.html and stops what it started.

  --keep   leave the stack, worker, controller and live fleet running for exploring
  --stop   stop what \`demo --keep\` left running (controller and streaming job, worker, stack)`;

const VEHICLES = 3;
const SPEEDUP = 30;
// Two in the backfill lane: the historic window's backfill and, when the live window closed before
// the streaming job landed its events, that window's late-data re-run.
const PIPELINE = { windowMinutes: 1, allowedLatenessSeconds: 5, tickSeconds: 5, backfillConcurrency: 2 };
/** Vehicles of a fleet depart within this many minutes of its start (producers/fleet.ts). */
const DEPARTURE_SPREAD_MIN = 10;
/** From the demo's start to the streaming job's first landed events, on 2 warm cores: 20–25 s. */
const STREAMING_LANDS_MS = 15_000;
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

/** Events per source the fleet's generator makes in `window` (producers/fleet.ts: what a fleet run sends, whatever its pace). */
function generatedCounts(vehicles: number, seed: number, start: string, window: TimeWindow): SourceCounts {
  const counts = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
  const [from, to] = [Date.parse(window.from), Date.parse(window.to)];
  for (const event of fleetEvents({ vehicles, seed, start: new Date(start) })) {
    const at = Date.parse(event.eventTime);
    if (at >= to) break;
    if (at >= from) counts[event.source] += 1;
  }
  return counts;
}

/**
 * The window's record once loaded with at least the events its fleet made (an earlier demo in this
 * data dir may have added its own) by a run that counted them in raw too; an error once the
 * controller gave up on it.
 */
function loadedRecord(status: PipelineStatus | undefined, window: TimeWindow, expected: SourceCounts): WindowRecord | undefined {
  const record = status?.windows.find((r) => r.window.from === window.from);
  if (record?.status === 'failed' && record.nextRetryAt === undefined) {
    throw new Error(`the batch run of ${record.window.from} failed: ${record.lastError?.type}: ${record.lastError?.message}`);
  }
  // Its raw count too: a run that counted raw before the last events landed is re-run for late data.
  const complete = (counts: SourceCounts | undefined) => SOURCES.every((s) => (counts?.[s] ?? 0) >= expected[s]);
  return record?.status === 'loaded' && complete(record.rows) && complete(record.rawRows) ? record : undefined;
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
      // The controller first: its streaming job (a JVM) starts while the fleets produce. The live
      // window is the one open STREAMING_LANDS_MS after the demo started, when the streaming job
      // has usually landed its first events; both fleets run ahead of the clock, so the window's
      // events are in Kafka within seconds. Should the window close before they landed, the
      // controller loads what is there and re-runs it when its late-data check finds more.
      const live = windowAt(startedAt.getTime() + STREAMING_LANDS_MS, MINUTE_MS);
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
      const liveSeed = seed + 1;
      const liveStart = new Date(Date.parse(live.from) - DEPARTURE_SPREAD_MIN * MINUTE_MS).toISOString();
      // An earlier demo in this data dir may have landed events in the same minutes.
      const queries = queryActivities(config);
      const [rawBefore] = await queries.countRawWindows({ windows: [produced] });
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
              seed: liveSeed,
              start: liveStart,
              speedup: SPEEDUP,
            }),
          (h) => h.workflowId,
        ),
      ]);
      checkInterrupt();

      await view.step('historic events landed in the raw lake', () =>
        until('the streaming job to land the historic events', async () => {
          checkInterrupt();
          const [raw] = await queries.countRawWindows({ windows: [produced] });
          return SOURCES.every((s) => raw![s] >= rawBefore![s] + history.totals[s]) ? raw : undefined;
        }),
      );
      const backfill = await view.step(`backfill of ${historic.from.slice(11, 16)} requested`, () =>
        controller.executeUpdate(requestBackfillUpdate, { args: [{ from: historic.from, to: historic.to }] }),
      );
      if (backfill.accepted.length === 0) throw new Error(`the backfill was not accepted: ${backfill.skipped.map((s) => s.reason).join('; ')}`);

      const expected = {
        live: generatedCounts(VEHICLES, liveSeed, liveStart, live),
        backfilled: generatedCounts(VEHICLES, seed, produced.from, historic),
      };
      await view.step('a live and the backfilled window loaded + checked', () =>
        until('a live window and the backfilled window to be loaded', async () => {
          checkInterrupt();
          const fleetFailed = await pipeline.fleetFailure(liveFleet);
          if (fleetFailed) throw fleetFailed;
          const status = watch.pipeline;
          const backfilled = loadedRecord(status, historic, expected.backfilled);
          const liveWindow = loadedRecord(status, live, expected.live);
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
