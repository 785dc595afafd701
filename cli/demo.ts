import { z } from 'zod';
import { loadConfig } from '../config';
import { runSimulation, totalsTable } from '../producers/simulation';
import { stackDown, stackUp } from '../stack';
import { parseCommandLine } from './args';
import { printStack } from './stack';

export const DEMO_USAGE = `smartcity demo [--keep]

  The quick start: brings the local stack up (Kafka broker, Temporal dev server and Web UI),
  replays an hour of history for three vehicles on London → Birmingham, then streams them live
  at 60× real time for 10 simulated minutes, and prints what Kafka acknowledged per topic.

  --keep   leave the stack running afterwards (stop it with \`npm run cli -- stack down\`)`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, { keep: { type: 'boolean' } }, z.object({ keep: z.boolean().optional() }));
  const config = loadConfig();
  const say = (line: string) => console.log(line);
  say('== 1/3 bringing the local stack up');
  printStack(await stackUp(config, say), say);

  const tty = process.stdout.isTTY;
  const progress = (label: string) => (p: { stats: { acked: number }; simTime: Date | undefined }) => {
    const line = `${label}: ${p.stats.acked} events acknowledged, simulated time ${p.simTime?.toISOString().slice(11, 19) ?? '—'}`;
    if (tty) process.stdout.write(`\r\x1b[2K${line}`);
    else say(line);
  };
  const endLine = () => tty && process.stdout.write('\n');

  const now = Date.now();
  say('\n== 2/3 historic data: one hour of driving, produced as fast as possible');
  const history = await runSimulation(
    config,
    { vehicles: 3, seed: 7, start: new Date(now - 2 * 3_600_000), durationMs: 3_600_000, speedup: 1, asFastAsPossible: true },
    { onProgress: progress('history'), progressEveryMs: tty ? 200 : 2_000 },
  );
  endLine();
  totalsTable(history).forEach((line) => say(`  ${line}`));

  say('\n== 3/3 live: 10 simulated minutes at 60× real time');
  const live = await runSimulation(
    config,
    { vehicles: 3, seed: 8, start: new Date(now), durationMs: 600_000, speedup: 60, asFastAsPossible: false },
    { onProgress: progress('live'), progressEveryMs: tty ? 200 : 2_000 },
  );
  endLine();
  totalsTable(live).forEach((line) => say(`  ${line}`));

  if (values.keep) {
    say(`\nThe stack keeps running. Temporal Web UI: ${config.temporal.uiUrl} · Kafka: ${config.kafka.brokers.join(',')}`);
    say('Stop it with: npm run cli -- stack down');
  } else {
    await stackDown(config);
    say('\nStack stopped (run `npm run demo -- --keep` to leave it running for exploring).');
  }
  return 0;
}
