import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { loadConfig } from '../config';
import type { fleetSimulation } from '../workflows';
import { renderTerminal, seconds } from '../report/terminal';
import { gatherReport, type PipelineReport } from '../report/model';
import { parseCommandLine, positiveInt, positiveNumber } from './args';
import { LiveView } from './live-view';
import { LocalPipeline, onInterrupt, PipelineWatch } from './local-run';

export const START_USAGE = `smartcity start [--vehicles N] [--speedup X]   (npm start)

  Runs the pipeline on the local target until Ctrl-C: the stack (Kafka, Temporal dev server and
  Web UI), a worker, the controller (5-minute windows, the defaults of \`pipeline start\`) with its
  Spark streaming job, and a live fleet simulation London → Birmingham (a new fleet departs when
  one has arrived). A live display shows the stages, events per topic, the streaming job and the
  windows. Ctrl-C stops the fleet, the controller and the streaming job, the worker and the stack
  (whatever was already running before is left running) and prints the report.

  --vehicles N   vehicles per fleet (default 3)
  --speedup X    simulated seconds per real second (default 1: event time = wall time)`;

const REFRESH_MS = 2_000;

export async function startCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(
    argv,
    { vehicles: { type: 'string' }, speedup: { type: 'string' } },
    z.object({ vehicles: positiveInt.max(10_000, 'must be at most 10000').default(3), speedup: positiveNumber.max(100_000).default(1) }),
  );
  const config = loadConfig();
  const view = new LiveView('smartcity start · Ctrl-C stops everything');
  const pipeline = new LocalPipeline(config, view.log);
  const stop = new AbortController();
  const offInterrupt = onInterrupt(
    () => {
      view.log('stopping… (Ctrl-C again to exit at once)');
      stop.abort();
    },
    () => {
      console.error('\nsecond Ctrl-C: exiting now; `npm run cli -- demo --stop` stops what is left');
      process.exit(130);
    },
  );
  let seed = Date.now() % 1_000_000;
  let report: PipelineReport | undefined;
  let code = 0;
  try {
    await view.step('local stack: Kafka, Temporal dev server + Web UI', () => pipeline.stackUp());
    if (!stop.signal.aborted) await view.step('worker (workflows + activities)', () => pipeline.workerUp(), (w) => `pid ${w.pid}, log ${w.log}`);
    if (!stop.signal.aborted) await view.step('controller + streaming job', () => pipeline.startController({}, { replace: false }), (h) => h.workflowId);
    const launch = () => pipeline.startFleet({ vehicles: values.vehicles, seed: seed++, start: new Date().toISOString(), speedup: values.speedup });
    let fleet: WorkflowHandle<typeof fleetSimulation> | undefined;
    if (!stop.signal.aborted) fleet = await view.step(`live fleet (${values.vehicles} vehicles, ${values.speedup}× real time)`, launch, (h) => h.workflowId);
    if (!stop.signal.aborted) view.log(`running; Temporal Web UI ${config.temporal.uiUrl}; Ctrl-C stops everything.`);

    const watch = new PipelineWatch(config, pipeline.client, pipeline.fleets);
    while (!stop.signal.aborted && fleet) {
      view.setStatus(await watch.lines().catch(() => []));
      const { status } = await fleet.describe();
      const failure = status.name === 'RUNNING' ? undefined : await pipeline.fleetFailure(fleet);
      if (failure) {
        view.log(failure.message);
        code = 1;
        break;
      }
      if (status.name !== 'RUNNING') {
        view.log(`${fleet.workflowId} ${status.name.toLowerCase()}; the next fleet departs`);
        fleet = await launch();
      }
      await sleep(REFRESH_MS, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    view.stop();
    const began = Date.now();
    // The report is read once everything is stopped but Temporal still answers (runs, timings, checks).
    const stopped = await pipeline.shutdown(async () => {
      report = await gatherReport(config).catch(() => undefined);
    });
    if (stopped.length) console.log(`stopped in ${seconds(Date.now() - began)}: ${stopped.join(', ')}`);
    offInterrupt();
  }
  if (report) console.log(['', ...renderTerminal(report)].join('\n'));
  return code;
}
