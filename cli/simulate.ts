import { z } from 'zod';
import { loadConfig, type Config } from '../config';
import { connectClient, workerIsPolling } from '../temporal/connection';
import { fleetSimulation, fleetStatusQuery, type FleetSimulationInput, type FleetStatus } from '../workflows';
import { fleetSimulationWorkflowId } from '../workflows/ids';
import { parseRoute } from '../producers/route';
import { runSimulation, totalsTable, type SimulationProgress } from '../producers/simulation';
import { SOURCES, TOPICS } from '../schemas';
import { duration, isoTime, nonNegativeInt, parseCommandLine, positiveInt, positiveNumber, UsageError } from './args';

export const SIMULATE_USAGE = `smartcity simulate [options]

  Streams a simulated fleet (vehicle, GPS, traffic camera, weather, emergency events) into Kafka.

  --vehicles N            number of vehicles (default 3)
  --seed S                run seed: same seed and start → same events and event ids (default 1)
  --speedup X             simulated seconds per real second (default 1)
  --until-arrival         run until every vehicle has arrived (the default)
  --duration D            stop after D of simulated time, e.g. 30m, 2h
  --as-fast-as-possible   no pacing: produce the whole run now, with event times from --start
  --start TIME            simulated time of the first departure, ISO-8601 with zone
                          (default: now; with --as-fast-as-possible it must not be in the future)
  --route "lat,lon;…"     waypoints to drive (default London → Birmingham)
  --tick-seconds S        simulated seconds between two vehicle/GPS readings (default 5)
  --json                  print the totals as JSON
  --direct                produce from this process even when a worker is up

  When a smartcity worker polls the task queue, the run is a \`fleetSimulation\` workflow
  (pause/resume it from the Web UI or with \`temporal workflow signal\`); otherwise, or with
  --direct, this process produces the events itself.

  Ctrl-C stops early: buffered events are flushed and the totals printed.`;

const options = {
  vehicles: { type: 'string' },
  seed: { type: 'string' },
  speedup: { type: 'string' },
  'until-arrival': { type: 'boolean' },
  duration: { type: 'string' },
  'as-fast-as-possible': { type: 'boolean' },
  start: { type: 'string' },
  route: { type: 'string' },
  'tick-seconds': { type: 'string' },
  json: { type: 'boolean' },
  direct: { type: 'boolean' },
} as const;

const schema = z.object({
  vehicles: positiveInt.max(10_000, 'must be at most 10000').default(3),
  seed: nonNegativeInt.default(1),
  speedup: positiveNumber.default(1),
  'until-arrival': z.boolean().optional(),
  duration: duration.optional(),
  'as-fast-as-possible': z.boolean().optional(),
  start: isoTime.optional(),
  route: z.string().optional(),
  'tick-seconds': positiveNumber.optional(),
  json: z.boolean().optional(),
  direct: z.boolean().optional(),
});

function progressLine(p: SimulationProgress): string {
  const counts = SOURCES.map((s) => `${s} ${p.sent[s]}`).join(' · ');
  const rate = p.elapsedMs > 0 ? Math.round((p.stats.acked * 1000) / p.elapsedMs) : 0;
  return `sim ${p.simTime?.toISOString().slice(0, 19) ?? '—'}Z | sent ${counts} | acked ${p.stats.acked} (${rate}/s)`;
}

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values: v } = parseCommandLine(argv, options, schema);
  if (v['until-arrival'] && v.duration !== undefined) throw new UsageError('--until-arrival and --duration exclude each other');
  const asFastAsPossible = v['as-fast-as-possible'] ?? false;
  if (asFastAsPossible && v.start && v.start.getTime() > Date.now()) {
    throw new UsageError('--start must not be in the future with --as-fast-as-possible (it generates past events)');
  }
  let route;
  try {
    route = v.route === undefined ? undefined : parseRoute(v.route);
  } catch (err) {
    throw new UsageError(`--route: ${(err as Error).message}`);
  }
  const config = loadConfig();
  const start = v.start ?? new Date();
  if (!v.direct && (await workerIsPolling(config))) {
    return simulateThroughWorkflow(config, {
      vehicles: v.vehicles,
      seed: v.seed,
      start: start.toISOString(),
      speedup: v.speedup,
      asFastAsPossible,
      ...(v.duration !== undefined && { durationMinutes: v.duration / 60_000 }),
      ...(v.route !== undefined && { route: v.route }),
      ...(v['tick-seconds'] !== undefined && { tickSeconds: v['tick-seconds'] }),
    }, v.json ?? false);
  }

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) {
      console.error('\nsecond Ctrl-C: exiting without waiting for Kafka (unacknowledged events may be lost)');
      process.exit(130);
    }
    console.error('\nstopping: flushing what was sent… (Ctrl-C again to exit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const tty = process.stderr.isTTY;
  console.error(
    `simulating ${v.vehicles} vehicle(s), seed ${v.seed}, from ${start.toISOString()}, ${asFastAsPossible ? 'as fast as possible' : `speed-up ×${v.speedup}`}, ` +
      `${v.duration === undefined ? 'until arrival' : `for ${v.duration / 1000}s of simulated time`} → ${config.kafka.brokers.join(',')}`,
  );
  try {
    const result = await runSimulation(
      config,
      { vehicles: v.vehicles, seed: v.seed, start, route, tickSeconds: v['tick-seconds'], speedup: v.speedup, asFastAsPossible, durationMs: v.duration },
      {
        signal: controller.signal,
        progressEveryMs: tty ? 250 : 5_000,
        onProgress: (p) => (tty ? process.stderr.write(`\r\x1b[2K${progressLine(p)}`) : console.error(progressLine(p))),
      },
    );
    if (tty) process.stderr.write('\r\x1b[2K');
    if (v.json) {
      console.log(JSON.stringify({ reason: result.reason, simEnd: result.simTime, sent: result.sent, topics: result.stats.topics, topicOf: TOPICS }, null, 2));
    } else {
      console.log(`${{ arrived: 'every vehicle arrived', duration: 'duration reached', stopped: 'stopped' }[result.reason]} after ${(result.elapsedMs / 1000).toFixed(1)}s`);
      for (const line of totalsTable(result)) console.log(line);
    }
    return result.reason === 'stopped' ? 130 : 0;
  } catch (err) {
    const partial = (err as { result?: SimulationProgress }).result;
    if (partial) for (const line of totalsTable(partial)) console.error(line);
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

/** The run as a fleetSimulation workflow on the worker: progress from its status query; Ctrl-C cancels it. */
async function simulateThroughWorkflow(config: Config, input: FleetSimulationInput & { seed: number; start: string }, json: boolean): Promise<number> {
  const { client, close } = await connectClient(config);
  try {
    const workflowId = `${fleetSimulationWorkflowId(input.seed, input.start)}-${Date.now()}`;
    const handle = await client.workflow.start(fleetSimulation, { taskQueue: config.temporal.taskQueue, workflowId, args: [input] });
    console.error(`a worker is up: running as workflow ${workflowId} (${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${workflowId}); Ctrl-C cancels it`);
    let cancelled = false;
    const onSigint = () => {
      if (cancelled) process.exit(130);
      cancelled = true;
      console.error('\ncancelling the workflow: running chunks flush what they sent… (Ctrl-C again to exit at once)');
      handle.cancel().catch((err: unknown) => console.error(`could not cancel ${workflowId}: ${(err as Error).message}`));
    };
    process.on('SIGINT', onSigint);
    const tty = process.stderr.isTTY;
    const timer = setInterval(() => {
      handle.query(fleetStatusQuery).then(
        (s) => (tty ? process.stderr.write(`\r\x1b[2K${fleetProgressLine(s)}`) : console.error(fleetProgressLine(s))),
        () => undefined, // not answering yet (no workflow task done) or closed: the next tick asks again
      );
    }, tty ? 500 : 5_000);
    let failure: Error | undefined;
    try {
      await handle.result().catch((err: Error) => {
        if (!cancelled) failure = err;
      });
    } finally {
      clearInterval(timer);
      process.off('SIGINT', onSigint);
      if (tty) process.stderr.write('\r\x1b[2K');
    }
    const status = await handle.query(fleetStatusQuery);
    const reason = failure !== undefined ? 'failed' : cancelled ? 'stopped' : 'done';
    if (json) console.log(JSON.stringify({ workflowId, reason, sent: status.totals, topicOf: TOPICS }, null, 2));
    else {
      console.log(
        { done: 'done: events acknowledged by Kafka per topic', stopped: 'cancelled: events acknowledged by Kafka per topic', failed: 'failed: events acknowledged by Kafka per topic before it failed' }[reason],
      );
      for (const source of SOURCES) console.log(`  ${TOPICS[source].padEnd(15)} ${status.totals[source]}`);
    }
    if (failure !== undefined) throw failure;
    return cancelled ? 130 : 0;
  } finally {
    await close();
  }
}

/** One line of a fleet's status: acknowledged events per source (running chunks included) and arrivals. */
export function fleetProgressLine(s: FleetStatus): string {
  const arrived = s.parts.reduce((n, p) => n + (p.arrived ? p.vehicles : 0), 0);
  const until = s.parts.reduce((min, p) => (p.producedUntil < min ? p.producedUntil : min), s.parts[0]?.producedUntil ?? s.start);
  return `acked ${SOURCES.map((src) => `${src} ${s.totals[src]}`).join(' · ')} | chunks done up to ${until.slice(0, 19)}Z | ${arrived}/${s.vehicles} arrived${s.paused ? ' | paused' : ''}`;
}
