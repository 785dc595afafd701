// `npm run bench -- <name…>`: benchmarks that print a ratio against a reference measured in the
// same run. They need the local stack; it is brought up if it is not running, and stopped again
// afterwards only if this run started it.
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../config';
import { stackDown, stackStatus, stackUp } from '../stack';
import { benchBackfill } from './backfill';
import { benchOrchestration } from './orchestration';
import { benchProducer } from './producer';
import { benchScale } from './scale';
import { benchStream } from './stream';

const BENCHES: Record<string, { summary: string; run: () => Promise<unknown> }> = {
  producer: { summary: 'smartcity EventProducer vs kafka-producer-perf-test (events/s, MB/s, acks=all)', run: () => benchProducer() },
  stream: { summary: 'Spark ingest job vs a bare Kafka → Parquet copy with the same layout, flat copy as floor, on local[2] (events/s, phases, freshness p50/p95/p99)', run: () => benchStream() },
  orchestration: { summary: 'one batch run through Temporal vs the same activities called directly (ratio, history events)', run: () => benchOrchestration() },
  backfill: { summary: 'a 6-hour backfill of 5-minute windows through the controller vs one spark-submit of curate over the range (ratio)', run: () => benchBackfill() },
  scale: { summary: 'the local pipeline with a fleet at real time grown 1,000 → 10,000 vehicles: the largest it sustains, what saturates first', run: () => benchScale() },
};

async function main(names: string[]): Promise<number> {
  const unknown = names.filter((n) => !BENCHES[n]);
  if (unknown.length > 0 || names.includes('--help')) {
    if (unknown.length > 0) console.error(`unknown benchmark: ${unknown.join(', ')}`);
    console.error(`usage: npm run bench -- [${Object.keys(BENCHES).join(' | ')}]…  (all when none is named)`);
    for (const [name, b] of Object.entries(BENCHES)) console.error(`  ${name.padEnd(10)} ${b.summary}`);
    return 2;
  }
  // Benches that run a worker would print the SDK's bundling details and state changes at INFO.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = loadConfig();
  const wasUp = (await stackStatus(config)).components.every((c) => c.state === 'running');
  await stackUp(config);
  try {
    for (const name of names.length ? names : Object.keys(BENCHES)) await BENCHES[name]!.run();
  } finally {
    if (!wasUp) await stackDown(config);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error((err as Error).message ?? err);
    process.exitCode = 1;
  },
);
