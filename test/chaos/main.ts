// `npm run test:chaos [-- --short]`: the chaos tier (see README.md here). On the real local stack,
// started by the tier on its own ports and data folder (.data/chaos), a paced replay of past
// driving runs through the pipeline while the broker, the Spark ingest driver, the worker (mid
// curate), the Temporal dev server and a curate job (mid write) are SIGKILLed in turn; then the
// lake, the quarantine and the warehouse are compared with the deterministic generator and the
// records the tier injected. Ends with `chaos: N passed, N failed`; exit code 1 when any failed.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { SOURCES, type Source } from '../../schemas';
import { fleetSimulation, PIPELINE_WORKFLOW_ID, STREAMING_WORKFLOW_ID, type PipelineStatus } from '../../workflows';
import { lakeIds, quarantineRows, warehouseContents, windowKey, type IdCounts } from '../helpers/lake';
import { BackfillFeeder } from './backfill';
import { FAULTS, RECOVERY_DEFINITIONS, runFault, type Fault, type FaultReport, type FaultSettings } from './faults';
import { controllerStatus, ingestJvm, injectMalformed, isLoaded, windowState, type Scenario } from './observe';
import { describe as describeProcess, killAll, processesOf } from '../helpers/processes';
import { until } from '../helpers/until';
import { seconds, Tier, TierAborted } from './tier';
import { compareIds, compareQuarantine, expectedEvents, label, total, windowsCovering, type Window } from './truth';

interface Variant {
  vehicles: number;
  durationMinutes: number;
  speedup: number;
  faults: readonly Fault[];
  settings: FaultSettings;
  /** Hard limit of the whole run; every wait also ends by it. */
  totalMinutes: number;
  /** How long the end waits for windows to load once nothing else is happening. */
  finalWaitMinutes: number;
}

const VARIANTS: Record<'full' | 'short', Variant> = {
  full: { vehicles: 4, durationMinutes: 40, speedup: 2, faults: FAULTS, settings: { brokerDownSeconds: 35, temporalDownSeconds: 15, alignWorkerKill: true }, totalMinutes: 120, finalWaitMinutes: 25 },
  // The short variant (CI) leaves out what a faster test proves alone: the broker kept down
  // (test/integration/broker-outage.test.ts) and a worker SIGKILLed mid-curate
  // (test/integration/curate-failover.test.ts).
  short: {
    vehicles: 2,
    durationMinutes: 15,
    speedup: 2,
    faults: ['ingest', 'temporal', 'curate'],
    settings: { brokerDownSeconds: 30, temporalDownSeconds: 10, alignWorkerKill: false },
    totalMinutes: 40,
    finalWaitMinutes: 12,
  },
};

const SEED = 1107;
const WINDOW_MINUTES = 5;
const LATENESS_SECONDS = 30;
const HOURS_AGO = 3;
/** No window loaded for this long while some still wait: the end stops waiting and says which. */
const STALL_MS = 6 * 60_000;

/** The replay's outcome in words; waits for it until `deadlineMs`. */
async function fleetOutcome(s: Scenario, deadlineMs: number): Promise<string> {
  const fleet = s.fleet!;
  try {
    const result = await s.tier.until('the fleet workflow to complete', async () => {
      const d = await s.tier.ask(() => fleet.describe());
      return d.status.name === 'RUNNING' ? undefined : d.status.name;
    }, { timeoutMs: Math.max(0, deadlineMs - Date.now()), everyMs: 5_000 });
    if (result !== 'COMPLETED') {
      const failure = await fleet.result().then(() => '', (err: unknown) => `: ${(err as Error).cause ? String((err as Error).cause) : (err as Error).message}`);
      return `the fleet workflow ended ${result}${failure}`;
    }
    return 'the fleet workflow completed';
  } catch (err) {
    return (err as Error).message;
  }
}

/** How long a live window has to load after closing before the end holds it against the run. */
const LIVE_GRACE_MS = 5 * 60_000;

/**
 * Waits until every backfilled replay window and every live window closed by then is loaded, or
 * no window loads for STALL_MS. Returns the windows owed (replay windows, and the live windows that
 * closed by the time the replay was done, or at least LIVE_GRACE_MS before the wait gave up) and,
 * when it gave up, why.
 */
async function waitForWindows(s: Scenario, liveStartMs: number, feeder: BackfillFeeder, variant: Variant): Promise<{ status: PipelineStatus | undefined; due: Window[]; gaveUp: string }> {
  const { tier } = s;
  const liveClosedBy = (ms: number) => windowsCovering(liveStartMs, ms, s.windowMs).filter((w) => w.toMs + s.latenessMs <= ms);
  let due = s.windows;
  let liveFixed = false;
  let loadedBefore = -1;
  let changedAt = Date.now();
  let status: PipelineStatus | undefined;
  const giveUp = (gaveUp: string) => {
    if (!liveFixed) due = [...s.windows, ...liveClosedBy(Date.now() - LIVE_GRACE_MS)];
    const waiting = due.filter((w) => !status || !isLoaded(status, w));
    tier.log(`stopped waiting for windows (${gaveUp}); not loaded: ${waiting.map((w) => `${label(w)} (${windowState(status, w)})`).join(', ')}`);
    return { status, due, gaveUp };
  };
  const finalWaitOver = `the final wait of ${variant.finalWaitMinutes} min ran out`;
  return until(
    'every owed window to load',
    async () => {
      status = await controllerStatus(s).catch(() => status);
      const replayDone = s.windows.every((w) => !feeder.requested.has(w.key) || (status !== undefined && isLoaded(status, w)));
      if (replayDone && !liveFixed) {
        // The live windows that closed by now are owed too; later ones are not waited for.
        liveFixed = true;
        due = [...s.windows, ...liveClosedBy(Date.now())];
        tier.log(`replay windows done; waiting for the ${due.length - s.windows.length} live window(s) closed by now`);
      }
      // A replay window never backfilled cannot load: the checks name it, waiting for it is pointless.
      const owed = due.filter((w) => !s.windows.includes(w) || feeder.requested.has(w.key));
      const loaded = status ? owed.filter((w) => isLoaded(status!, w)).length : 0;
      if (loaded !== loadedBefore) changedAt = Date.now();
      loadedBefore = loaded;
      if (liveFixed && loaded === owed.length) return { status, due, gaveUp: '' };
      if (Date.now() - changedAt > STALL_MS) return giveUp(`no window loaded for ${seconds(STALL_MS)}`);
      return tier.aborted ? giveUp(finalWaitOver) : undefined;
    },
    { timeoutMs: variant.finalWaitMinutes * 60_000, everyMs: 5_000 },
  ).catch(() => giveUp(finalWaitOver));
}

/** The documented stop path: `pipeline stop`, then the worker's SIGTERM, then `stack down`. */
async function stopEverything(s: Scenario): Promise<string[]> {
  const { tier } = s;
  const notes: string[] = [];
  const stop = await tier.cli(['pipeline', 'stop'], 120_000);
  if (stop.code !== 0) notes.push(`pipeline stop exited ${stop.code}: ${stop.output}`);
  for (const id of [PIPELINE_WORKFLOW_ID, STREAMING_WORKFLOW_ID]) {
    await tier
      .until(`${id} to close after pipeline stop`, async () => {
        const d = await tier.ask((client) => client.workflow.getHandle(id).describe());
        return d.status.name === 'RUNNING' ? undefined : d.status.name;
      }, { timeoutMs: 3 * 60_000 })
      .catch(async (err: unknown) => {
        const d = await tier.ask((client) => client.workflow.getHandle(id).describe()).catch(() => undefined);
        const children = (d?.raw.pendingChildren ?? []).map((c) => c.workflowId).filter(Boolean);
        notes.push(`${(err as Error).message}${children.length ? ` (it still waits for ${children.join(', ')})` : ''}`);
      });
  }
  await tier.until('the ingest job to exit after pipeline stop', () => (ingestJvm(s) ? undefined : true), { timeoutMs: 2 * 60_000 }).catch((err: unknown) => notes.push((err as Error).message));
  notes.push(...(await tier.stopWorkers()));
  const down = await tier.cli(['stack', 'down'], 120_000);
  if (down.code !== 0) notes.push(`stack down exited ${down.code}: ${down.output}`);
  tier.log(`stopped: pipeline stop, worker SIGTERM, stack down${notes.length ? ` (${notes.join('; ')})` : ''}`);
  return notes;
}

async function scenario(tier: Tier, variant: Variant, reports: FaultReport[]): Promise<void> {
  const windowMs = WINDOW_MINUTES * 60_000;
  const start = new Date(Math.floor((Date.now() - HOURS_AGO * 3_600_000) / windowMs) * windowMs);
  const replay = { vehicles: variant.vehicles, seed: SEED, start, durationMinutes: variant.durationMinutes, speedup: variant.speedup };
  const expected = expectedEvents(replay);
  const windows = windowsCovering(start.getTime(), start.getTime() + variant.durationMinutes * 60_000, windowMs);
  const s: Scenario = { tier, replay, windows, windowMs, latenessMs: LATENESS_SECONDS * 1000, fleet: undefined, injected: [] };
  tier.log(
    `replay: ${replay.vehicles} vehicles, seed ${SEED}, from ${start.toISOString()}, ${replay.durationMinutes} min at ×${replay.speedup} ` +
      `(${seconds((replay.durationMinutes * 60_000) / replay.speedup)} of producing): ${total(expected)} events in ${windows.length} windows of ${WINDOW_MINUTES} min`,
  );

  tier.phase = 'setup';
  await tier.stackUp();
  tier.log(`stack up: Temporal ${tier.config.temporal.address}, Kafka ${tier.config.kafka.brokers.join(',')}, data ${tier.dataDir}`);
  await tier.startWorker();
  const started = await tier.cli(['pipeline', 'start', '--window-minutes', String(WINDOW_MINUTES), '--lateness-seconds', String(LATENESS_SECONDS), '--tick-seconds', '10', '--backfill-concurrency', '2']);
  if (started.code !== 0) throw new Error(`pipeline start failed: ${started.output}`);
  const liveStartMs = Date.parse((await tier.until('the controller answering its status query', () => controllerStatus(s), { timeoutMs: 3 * 60_000 })).cursor.from);
  await tier.until('the streaming job running (its spark-submit JVM)', () => ingestJvm(s), { timeoutMs: 5 * 60_000 });
  tier.log('controller and streaming job running');

  tier.phase = 'replay';
  const client = await tier.client();
  s.fleet = await client.workflow.start(fleetSimulation, {
    taskQueue: tier.config.temporal.taskQueue,
    workflowId: `chaos-fleet-${SEED}-${start.toISOString()}`,
    args: [{ vehicles: replay.vehicles, seed: SEED, start: start.toISOString(), speedup: replay.speedup, durationMinutes: replay.durationMinutes }],
  });
  const fleetDeadline = Date.now() + (replay.durationMinutes * 60_000) / replay.speedup + 10 * 60_000;
  tier.log(`fleet workflow ${s.fleet.workflowId} started`);
  await injectMalformed(s, 1);
  const feeder = new BackfillFeeder(s, expected);

  for (const fault of variant.faults) {
    tier.phase = fault;
    tier.log(`== fault: ${fault} — ${RECOVERY_DEFINITIONS[fault]}`);
    const report = await runFault(fault, s, variant.settings);
    reports.push(report);
    tier.check(`fault ${fault}`, report.passed, report.detail);
    tier.phase = 'between faults';
    if (tier.aborted) throw new TierAborted('interrupted');
  }
  // The ingest fault injects the second wave into the restarting job; without that fault it goes in now.
  if (!s.injected.some((r) => r.key.startsWith('chaos-malformed-2-'))) await injectMalformed(s, 2);

  tier.phase = 'final';
  const fleet = await fleetOutcome(s, fleetDeadline);
  tier.log(fleet);
  const fed = await tier
    .until('every replay window backfilled', () => {
      if (feeder.requested.size === windows.length) return '';
      if (Date.now() - feeder.progressAt > STALL_MS) return `raw gained no event of a waiting window for ${seconds(STALL_MS)}: ${feeder.waitingFor}`;
      return undefined;
    }, { timeoutMs: variant.finalWaitMinutes * 60_000, everyMs: 5_000 })
    .catch((err: unknown) => `${(err as Error).message}: ${feeder.waitingFor}`);
  feeder.stop();
  if (fed) tier.log(`backfill feeding stopped: ${fed}`);
  const windowsOutcome = await waitForWindows(s, liveStartMs, feeder, variant);
  const final = windowsOutcome.status;
  const stopNotes = await stopEverything(s);

  await tier.pause(2_000);
  const left = processesOf(tier.dataDir);
  tier.check(
    'stop: pipeline stop closes the pipeline; after worker SIGTERM and stack down no process of the data folder is left',
    left.length === 0 && stopNotes.length === 0,
    [
      ...stopNotes,
      left.length ? `still running: ${left.map((p) => `${describeProcess(p)}: ${p.argv.join(' ').slice(0, 160)}`).join('; ')}` : 'no process of the data folder left',
    ].join('; '),
  );

  const state = (w: Window) => windowState(final, w);
  const read = async (layer: 'raw' | 'curated') =>
    Object.fromEntries(await Promise.all(SOURCES.map(async (source) => [source, await lakeIds(tier.lakeRoot, layer, source)] as const))) as Record<Source, IdCounts>;
  const raw = compareIds(expected, await read('raw'), windows, state, 'at-least-once');
  const feeding = fed ? `; backfill feeding stopped: ${fed}` : '';
  tier.check('raw: every generated event landed (no acknowledged event lost)', raw.passed, `${fleet}; ${raw.detail}${raw.passed ? '' : feeding}`);
  const curated = compareIds(expected, await read('curated'), windows, state, 'exactly-once');
  tier.check('curated: each generated event exactly once', curated.passed, curated.detail);
  const warehouse = await warehouseContents(join(tier.dataDir, 'warehouse.duckdb'), SOURCES);
  const inWarehouse = compareIds(expected, warehouse.ids, windows, state, 'exactly-once');
  tier.check('warehouse: each generated event exactly once', inWarehouse.passed, inWarehouse.detail);
  const quarantine = compareQuarantine(s.injected, await quarantineRows(tier.lakeRoot, SOURCES));
  tier.check('quarantine: exactly the injected malformed records, each with its reason', quarantine.passed, quarantine.detail);

  const notLoaded = windowsOutcome.due.filter((w) => !final || !isLoaded(final, w));
  const notInWarehouse = windowsOutcome.due.filter((w) => SOURCES.some((source) => !warehouse.loadedWindows.get(windowKey(w.fromMs, w.toMs))?.has(source)));
  const live = windowsOutcome.due.length - windows.length;
  tier.check(
    'windows: every window of the run loaded (controller status and warehouse loaded_windows)',
    notLoaded.length === 0 && notInWarehouse.length === 0,
    notLoaded.length === 0 && notInWarehouse.length === 0
      ? `${windows.length} replay and ${live} live windows loaded`
      : [
          notLoaded.length ? `not loaded per the controller: ${notLoaded.map((w) => `${label(w)} (${state(w)})`).join(', ')}` : '',
          notInWarehouse.length ? `not in loaded_windows for every source: ${notInWarehouse.map(label).join(', ')}` : '',
          windowsOutcome.gaveUp ? `the end stopped waiting: ${windowsOutcome.gaveUp}` : '',
        ]
          .filter(Boolean)
          .join('; '),
  );
  const between = tier.incidents.filter((i) => !(FAULTS as readonly string[]).includes(i.phase));
  tier.check(
    'workers: no unplanned exit outside the faults',
    between.length === 0,
    between.length === 0 ? 'none' : between.map((i) => `${tier.when(i.at)} during ${i.phase}: ${i.what}; log ends: ${i.evidence.split('\n').slice(-4).join(' | ')}`).join('; '),
  );
}

function printSummary(tier: Tier, reports: FaultReport[]): void {
  console.log('\n== faults');
  for (const r of reports) {
    console.log(
      `${r.passed ? 'PASS' : 'FAIL'}  ${r.fault.padEnd(8)} killed ${r.victim} at ${r.killedAt ? tier.when(r.killedAt) : '—'}; ` +
        `recovery ${r.recoveryMs === undefined ? '—' : seconds(r.recoveryMs)} (${r.recovery})`,
    );
  }
  console.log('\nrecovery, as measured:');
  for (const fault of FAULTS) console.log(`  ${fault.padEnd(8)} ${RECOVERY_DEFINITIONS[fault]}`);
  console.log('\n== checks');
  for (const c of tier.checks) console.log(`${c.passed ? 'PASS' : 'FAIL'}  ${c.name}${c.passed ? '' : `\n      ${c.detail}`}`);
  const passed = tier.checks.filter((c) => c.passed).length;
  console.log(`\nlogs: ${join(tier.dataDir, 'logs')}`);
  console.log(`chaos: ${passed} passed, ${tier.checks.length - passed} failed`);
}

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => !['--short', '--cleanup'].includes(a));
  if (unknown.length > 0) {
    console.error(`unknown option ${unknown[0]}; usage: npm run test:chaos [-- --short | --cleanup]`);
    return 2;
  }
  const variant = VARIANTS[argv.includes('--short') ? 'short' : 'full'];
  const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
  if (!Number.isInteger(offset) || offset < 0 || offset > 1000) throw new Error(`SMARTCITY_TEST_PORT_OFFSET must be an integer from 0 to 1000, got ${process.env.SMARTCITY_TEST_PORT_OFFSET}`);
  const dataDir = join(PROJECT_ROOT, '.data', 'chaos');
  const leftovers = await killAll(dataDir);
  if (leftovers.length > 0) console.log(`stopped what an earlier run left: ${leftovers.join(', ')}`);
  if (argv.includes('--cleanup')) return 0;
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });

  const tier = new Tier(dataDir, offset, Date.now() + variant.totalMinutes * 60_000);
  const interrupt = () => {
    if (tier.aborted) process.exit(130);
    tier.aborted = true;
    tier.log('interrupted: cleaning up (again to exit at once)');
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  const reports: FaultReport[] = [];
  tier.log(`chaos tier (${argv.includes('--short') ? 'short' : 'full'}): faults ${variant.faults.join(', ')}`);
  try {
    await scenario(tier, variant, reports);
  } catch (err) {
    tier.check('the scenario ran to its end', false, `${tier.phase}: ${(err as Error).message}`);
  } finally {
    const killed = await tier.cleanUp();
    if (killed.length > 0) tier.log(`clean-up stopped: ${killed.join(', ')}`);
  }
  printSummary(tier, reports);
  return tier.checks.every((c) => c.passed) && !tier.aborted ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error((err as Error).message ?? err);
    process.exit(1);
  },
);
