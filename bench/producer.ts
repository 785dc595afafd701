// Producer throughput: our EventProducer (kafkajs, idempotent, acks=all) against Kafka's own
// ProducerPerformance tool (the Java client behind kafka-producer-perf-test) on the same broker,
// with the same record count, record size, partitions and delivery guarantees.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../config';
import { createKafka, ensureTopics } from '../kafka/client';
import { EventProducer, type EventProducerOptions } from '../producers/event-producer';
import { fleetEvents } from '../producers/fleet';
import { SOURCES, type SmartCityEvent } from '../schemas';

export interface BenchProducerOptions {
  config?: Config;
  /** Events to produce, and records for the perf tool (default 150 000). */
  events?: number;
  /** Simulated vehicles the events come from (distinct keys; default 200). */
  vehicles?: number;
  /** Kafka's jars (kafka-tools, kafka-clients…); default <toolsDir>/kafka/libs. */
  kafkaLibsDir?: string;
  java?: string;
  /** Tuning passed to the EventProducer (batch sizes, linger…). */
  producer?: EventProducerOptions;
  /** Leave the bench topics on the broker afterwards. */
  keepTopics?: boolean;
  print?: (line: string) => void;
}

export interface Throughput {
  records: number;
  seconds: number;
  recordsPerSec: number;
  mbPerSec: number;
}

export interface BenchProducerResult {
  meanRecordBytes: number;
  partitions: number;
  ours: Throughput & { cpuSeconds: number };
  perfTest: Throughput & { avgLatencyMs: number; maxLatencyMs: number };
  /** ours.recordsPerSec / perfTest.recordsPerSec */
  ratio: number;
}

const MiB = 1024 * 1024;

/** The first `count` events of a simulated fleet, made before the clock starts. */
function fleetSample(count: number, vehicles: number): SmartCityEvent[] {
  const events: SmartCityEvent[] = [];
  for (const e of fleetEvents({ vehicles, seed: 7, start: new Date('2026-03-02T07:00:00Z') })) {
    if (events.length >= count) break;
    events.push(e);
  }
  return events;
}

function throughput(records: number, bytes: number, seconds: number): Throughput {
  return { records, seconds, recordsPerSec: records / seconds, mbPerSec: bytes / MiB / seconds };
}

/** Client settings for the Java tool, in a file so that no secret shows up in a process list. */
function perfToolProperties(config: Config): string {
  const lines = ['acks=all', 'enable.idempotence=true', `client.id=${config.kafka.clientId}-perf-test`];
  const sasl = config.kafka.sasl;
  if (config.kafka.ssl || sasl) lines.push(`security.protocol=${sasl ? (config.kafka.ssl ? 'SASL_SSL' : 'SASL_PLAINTEXT') : 'SSL'}`);
  if (sasl) {
    const module = sasl.mechanism === 'plain' ? 'org.apache.kafka.common.security.plain.PlainLoginModule' : 'org.apache.kafka.common.security.scram.ScramLoginModule';
    // JAAS strings are quoted with backslash escapes, and .properties files unescape backslashes once more.
    const jaasQuote = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
    const jaas = `${module} required username=${jaasQuote(sasl.username)} password=${jaasQuote(sasl.password)};`;
    lines.push(`sasl.mechanism=${sasl.mechanism.toUpperCase()}`, `sasl.jaas.config=${jaas.replaceAll('\\', '\\\\')}`);
  }
  return `${lines.join('\n')}\n`;
}

const SUMMARY = /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency/;

async function runPerfTest(opts: { java: string; libsDir: string; config: Config; topic: string; records: number; recordSize: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'smartcity-bench-'));
  const props = join(dir, 'producer.properties');
  writeFileSync(props, perfToolProperties(opts.config), { mode: 0o600 });
  const args = [
    '-Xmx512m',
    '-cp',
    join(opts.libsDir, '*'),
    'org.apache.kafka.tools.ProducerPerformance',
    '--bootstrap-server', opts.config.kafka.brokers.join(','),
    '--topic', opts.topic,
    '--num-records', String(opts.records),
    '--record-size', String(opts.recordSize),
    '--throughput', '-1',
    '--command-config', props,
  ];
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(opts.java, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', (e) => reject(new Error(`cannot run ${opts.java}: ${e.message}`)));
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`ProducerPerformance exited with ${code}:\n${err.slice(-2000)}${out.slice(-2000)}`))));
    });
    // The last summary line is the whole run; earlier ones are periodic progress reports.
    const summary = output.split('\n').filter((l) => SUMMARY.test(l)).pop();
    const m = summary?.match(SUMMARY);
    if (!m) throw new Error(`no summary line in ProducerPerformance output:\n${output.slice(-2000)}`);
    const [records, perSec, mb, avg, max] = m.slice(1).map(Number) as [number, number, number, number, number];
    return { records, seconds: records / perSec, recordsPerSec: perSec, mbPerSec: mb, avgLatencyMs: avg, maxLatencyMs: max };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchProducer(opts: BenchProducerOptions = {}): Promise<BenchProducerResult> {
  const config = opts.config ?? loadConfig();
  const print = opts.print ?? ((line: string) => console.log(line));
  const count = opts.events ?? 150_000;
  const libsDir = opts.kafkaLibsDir ?? join(config.toolsDir, 'kafka', 'libs');
  if (!existsSync(libsDir) || !readdirSync(libsDir).some((f) => f.startsWith('kafka-tools-'))) {
    throw new Error(`Kafka jars not found in ${libsDir}: run the project setup, or pass kafkaLibsDir`);
  }

  const vehicles = opts.vehicles ?? 200;
  const events = fleetSample(count, vehicles);
  const valueBytes = events.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e)), 0);
  const meanRecordBytes = Math.round(valueBytes / events.length);
  const run = randomUUID().slice(0, 8);
  const ourTopic = `smartcity_bench_${run}_ours`;
  const perfTopic = `smartcity_bench_${run}_perf`;
  await ensureTopics(config, [ourTopic, perfTopic]);
  print(`producer bench: ${events.length} events from ${vehicles} simulated vehicles, mean value ${meanRecordBytes} B, ${config.kafka.partitions} partitions, acks=all, idempotent`);

  try {
    const producer = new EventProducer(config, {
      ...opts.producer,
      topics: Object.fromEntries(SOURCES.map((s) => [s, ourTopic])),
      ensureTopics: false,
    });
    await producer.connect();
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    for (const e of events) await producer.send(e);
    const stats = await producer.close();
    const ours = throughput(stats.acked, valueBytes, Number(process.hrtime.bigint() - started) / 1e9);
    const cpu = process.cpuUsage(cpuBefore);
    // CPU seconds close to the wall seconds mean the producer is bound by its own thread, not Kafka.
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    print(`  smartcity EventProducer : ${fmt(ours)}, ${cpuSeconds.toFixed(1)} s CPU`);

    const perfTest = await runPerfTest({ java: opts.java ?? 'java', libsDir, config, topic: perfTopic, records: events.length, recordSize: meanRecordBytes });
    print(`  kafka ProducerPerformance: ${fmt(perfTest)} (avg latency ${perfTest.avgLatencyMs} ms)`);
    const ratio = ours.recordsPerSec / perfTest.recordsPerSec;
    print(`  ratio ours / perf-test   : ${ratio.toFixed(2)}`);
    return { meanRecordBytes, partitions: config.kafka.partitions, ours: { ...ours, cpuSeconds }, perfTest, ratio };
  } finally {
    if (!opts.keepTopics) {
      const admin = createKafka(config).admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [ourTopic, perfTopic] }).finally(() => admin.disconnect());
    }
  }
}

function fmt(t: Throughput): string {
  return `${Math.round(t.recordsPerSec).toLocaleString('en-US')} events/s, ${t.mbPerSec.toFixed(1)} MB/s (${t.records} in ${t.seconds.toFixed(1)} s)`;
}
