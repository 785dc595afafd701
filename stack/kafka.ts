// A single-node Apache Kafka broker in KRaft mode (broker + controller in one JVM), run from the
// jars scripts/setup.sh fetched. Data in <dataDir>/kafka/data; config rewritten on every start
// from the configured ports.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config';
import { createKafka } from '../kafka/client';
import { tools } from './tools';

function kafkaDir(config: Config): string {
  return join(config.dataDir, 'kafka');
}

function writeBrokerConfig(config: Config): { properties: string; log4j: string; dataDir: string } {
  const dir = kafkaDir(config);
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const { kafka: port, kafkaController: controllerPort } = config.ports;
  const properties = join(dir, 'server.properties');
  writeFileSync(
    properties,
    [
      '# Written by `smartcity stack up` from the configured ports; edits are overwritten.',
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${dataDir}`,
      `num.partitions=${config.kafka.partitions}`,
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=3',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      'log.retention.hours=168',
      '',
    ].join('\n'),
  );
  const log4j = join(dir, 'log4j2.properties');
  writeFileSync(
    log4j,
    [
      'appender.console.type=Console',
      'appender.console.name=STDOUT',
      'appender.console.layout.type=PatternLayout',
      'appender.console.layout.pattern=[%d] %p %m (%c)%n',
      'rootLogger.level=WARN',
      'rootLogger.appenderRef.stdout.ref=STDOUT',
      'logger.server.name=kafka.server.KafkaRaftServer',
      'logger.server.level=INFO',
      '',
    ].join('\n'),
  );
  return { properties, log4j, dataDir };
}

/**
 * A KRaft cluster id the way Kafka's own Uuid.randomUuid() makes one: base64url of 16 random bytes,
 * drawn again while it begins with '-' (Kafka's tools would read such an id as an option).
 */
export function newClusterId(random: () => Buffer = () => randomBytes(16)): string {
  for (;;) {
    const id = random().toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * Formats <dataDir>/kafka/data for a new cluster. `--cluster-id=<id>` keeps the id one argument
 * whatever its first character is.
 */
export function formatKafkaStorage(config: Config, clusterId: string): void {
  const { properties, log4j } = writeBrokerConfig(config);
  execFileSync('java', [`-Dlog4j2.configurationFile=${log4j}`, '-cp', tools.kafkaClasspath(config), 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', properties], {
    stdio: 'pipe',
  });
}

/** Formats the storage once (KRaft needs a cluster id) and returns the broker's command line. */
export function kafkaCommand(config: Config): string[] {
  const { properties, log4j, dataDir } = writeBrokerConfig(config);
  if (!existsSync(join(dataDir, 'meta.properties'))) formatKafkaStorage(config, newClusterId());
  return ['java', '-Xms256m', '-Xmx1g', `-Dlog4j2.configurationFile=${log4j}`, '-cp', tools.kafkaClasspath(config), 'kafka.Kafka', properties];
}

/** True once the broker answers metadata requests. */
export async function kafkaReady(config: Config): Promise<boolean> {
  const admin = createKafka(config, { connectionTimeoutMs: 1_000, retries: 0, log: () => {} }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } finally {
    await admin.disconnect();
  }
}
